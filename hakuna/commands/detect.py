"""Detector subcommands: ``detect``, ``crops``, ``detector train``, ``detector export-onnx``, ``weights``.

Heavy modules (torch, ultralytics) are imported inside the handlers, so ``hakuna weights list`` starts fast.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from camtrap.geometry import MAX_CROP_MARGIN
from hakuna.commands import UsageError
from hakuna.commands.common import (
    add_device,
    add_engine,
    add_outside_root,
    add_ray,
    add_trust,
    detector_file,
    device_of,
    engine_config,
    float_in,
    int_in,
    out_path,
    ray_source,
)

__all__ = ["register", "frames_of", "results_frames"]

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the detector's subcommands to the ``hakuna`` parser."""
    from detector.weights import REGISTRY

    p = sub.add_parser("detect", help="run a detector over images and write MegaDetector-format results JSON")
    p.add_argument("--model", "--detector", dest="model", required=True, type=detector_file,
                   help=".pt (ultralytics or YOLOv5) or .onnx detector, or a release fetched by `hakuna weights fetch`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=Path, help="a folder of images")
    src.add_argument("--metadata", type=Path, help="a competition-style *_metadata.csv (with --image-root)")
    p.add_argument("--image-root", type=Path,
                   help="folder the metadata's file_name values are under (flat, or in per-season folders "
                        "SnapshotSerengeti_S01_v2_0/ as the competition's training part)")
    p.add_argument("--recursive", action="store_true", help="with --images: include sub-folders")
    p.add_argument("--out", required=True, type=Path, help="results JSON to write")
    add_engine(p)
    p.add_argument("--checkpoint-every", type=int_in(0, 10**9), default=0, metavar="N",
                   help="write partial results every N images")
    p.add_argument("--resume", action="store_true", help="continue from a checkpoint (or finished file) at --out")
    p.add_argument("--threshold", type=float_in(0, 1), help="lowest confidence written (default: the model's)")
    add_device(p)
    add_trust(p)
    add_outside_root(p)
    add_ray(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_detect)

    p = sub.add_parser("crops", help="cut square crops of detections and write them with a JSON map back")
    p.add_argument("--detections", required=True, type=Path, help="results JSON")
    p.add_argument("--images", required=True, type=Path, help="image root the results' file names are relative to")
    p.add_argument("--metadata", type=Path,
                   help="the images' *_metadata.csv: places them in per-season folders under --images as detect does")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threshold", type=float_in(0, 1),
                   help="animal confidence (default: the detector's, from the results)")
    p.add_argument("--margin", type=float_in(0, MAX_CROP_MARGIN), default=0.1,
                   help="fraction of the box's longer side added on every side")
    add_outside_root(p)
    p.set_defaults(handler=_crops)

    det = sub.add_parser("detector", help="train or export a detector").add_subparsers(dest="action", required=True)
    p = det.add_parser("train", help="train a YOLO on LILA-format boxes of a competition-layout dataset")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (as `hakuna synth` writes)")
    p.add_argument("--boxes", type=Path, help="LILA boxes JSON (default: DATA/lila/SnapshotSerengetiBboxes_*.json)")
    p.add_argument("--out", required=True, type=Path, help="model .pt to write")
    p.add_argument("--architecture", default="yolo11-tiny",
                   help="yolo11-tiny, an ultralytics yaml (yolo11n.yaml) or a .pt to fine-tune")
    p.add_argument("--epochs", type=int_in(1, 100_000), default=40)
    p.add_argument("--imgsz", type=int_in(32, 4096), default=320)
    p.add_argument("--batch", type=int_in(1, 4096), default=16)
    add_device(p)
    p.add_argument("--gpus", help="several GPUs for ultralytics' own multi-GPU training, e.g. 0,1 (overrides --device)")
    p.add_argument("--work-dir", type=Path, help="scratch folder (default: next to --out)")
    p.set_defaults(handler=_train)
    p = det.add_parser("export-onnx", help="export a .pt detector to ONNX (spec kept in the metadata)")
    p.add_argument("model", type=Path)
    p.add_argument("--out", type=Path, help="default: MODEL with .onnx")
    add_trust(p)
    p.set_defaults(handler=_export)

    w = sub.add_parser("weights", help="known MegaDetector releases").add_subparsers(dest="action", required=True)
    p = w.add_parser("list", help="list known releases")
    p.set_defaults(handler=_weights_list)
    p = w.add_parser("fetch", help="download a release into the cache (resumable, verified)")
    p.add_argument("name", choices=sorted({r.name for r in REGISTRY.values()}))
    p.add_argument("--cache", type=Path, help="cache folder (default $HAKUNA_CACHE or ~/.cache/hakuna)")
    p.add_argument("--url", help="download from this address instead (a mirror)")
    p.set_defaults(handler=_weights_fetch)


def frames_of(args: argparse.Namespace) -> list:
    """The frame source the arguments name: a folder listing, or a metadata table under an image root."""
    from camtrap.dataset import read_metadata_part
    from camtrap.frames import folder_frames

    allow = args.allow_outside_root
    if args.images is not None:
        if not args.images.is_dir():
            raise UsageError(f"--images {args.images} is not a folder")
        return folder_frames(args.images, recursive=args.recursive, allow_outside_root=allow)
    if args.image_root is None:
        raise UsageError("--metadata needs --image-root")
    return read_metadata_part(args.metadata, args.image_root, allow_outside_root=allow).frame_refs()


def results_frames(args: argparse.Namespace, results) -> list:
    """The frames a results file names, under ``args.images``: through ``args.metadata`` (per-season folders
    resolved as ``detect --metadata`` does) when given, else as names relative to ``args.images``."""
    from camtrap.dataset import read_metadata_part
    from camtrap.frames import folder_frames

    allow = args.allow_outside_root
    if getattr(args, "metadata", None) is None:
        return folder_frames(args.images, [f.file for f in results.frames], allow_outside_root=allow)
    refs = {r.file: r for r in read_metadata_part(args.metadata, args.images, allow_outside_root=allow).frame_refs()}
    missing = [f.file for f in results.frames if f.file not in refs]
    if missing:
        raise UsageError(f"{len(missing)} image(s) of the results are not in --metadata {args.metadata} "
                         f"(first: {missing[0]!r})")  # fmt: skip
    return [refs[f.file] for f in results.frames]


def _detect(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from detector.model import load
    from detector.predict import DetectConfig, detect_files

    out_path(args.out, "results file")
    frames = frames_of(args)
    detector = load(args.model, device=device_of(args), trust_model=args.trust_model)
    cfg = DetectConfig(engine=engine_config(args, read_datetime=True), checkpoint_every=args.checkpoint_every,
                       output_threshold=args.threshold)  # fmt: skip
    with tqdm(total=len(frames), desc="detect", unit="img", disable=args.no_progress) as bar:
        if args.engine == "ray":
            from camtrap.mdjson import write_results
            from detector.predict import results_for

            outcomes = ray_source(args, detector, None, progress=bar.update, detector_path=args.model)(frames)
            results = results_for(detector, [o.frame for o in outcomes])
            write_results(args.out, results)
        else:
            results = detect_files(detector, frames, cfg, out=args.out, resume=args.resume, progress=bar.update)
    failed = sum(1 for f in results.frames if not f.ok)
    print(f"{len(results.frames)} images, {failed} failed to load -> {args.out}")
    from camtrap.failures import report_failures

    return report_failures([(f.file, f.failure) for f in results.frames if not f.ok], len(results.frames))


def _crops(args: argparse.Namespace) -> int:
    from camtrap.mdjson import read_results
    from detector.crops import export_crops
    from detector.weights import results_threshold

    results = read_results(args.detections)
    threshold = args.threshold if args.threshold is not None else results_threshold(results, args.detections)
    refs = results_frames(args, results)
    n = export_crops(results, {r.file: r for r in refs}, args.out, threshold=threshold, margin=args.margin)
    print(f"{n} crops -> {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from camtrap.dataset import read_train
    from camtrap.devices import resolve_device
    from detector.train import DetectorTrainConfig, train
    from hakuna.train import find_boxes

    out_path(args.out, "model file")
    data = read_train(args.data / "train" / "train_metadata.csv", args.data / "train" / "train_labels.csv",
                      args.data / "train")  # fmt: skip
    boxes = find_boxes(args.data, args.boxes)
    device = args.gpus or resolve_device(device_of(args))  # "0,1": ultralytics runs its DDP over those GPUs
    cfg = DetectorTrainConfig(architecture=args.architecture, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                              device=device)  # fmt: skip
    out = train(data, boxes, args.out, cfg, work_dir=args.work_dir or args.out.with_suffix(".work"))
    print(f"detector -> {out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from detector.model import export_onnx

    out = out_path(args.out or args.model.with_suffix(".onnx"), "ONNX file")
    print(f"ONNX -> {export_onnx(args.model, out, trust_model=args.trust_model)}")
    return 0


def _weights_list(args: argparse.Namespace) -> int:
    from detector import yolov5
    from detector.weights import REGISTRY

    v5 = "YOLOv5 format" + ("" if yolov5.available() else ": needs `pip install hakuna[mdv5]`")
    for r in sorted({r.name: r for r in REGISTRY.values()}.values(), key=lambda r: r.name):
        runs = "ultralytics" if r.fmt == "ultralytics" else v5
        print(f"{r.name:16s} {r.spec.input_size:5d}px  thresholds {r.spec.typical_threshold}/"
              f"{r.spec.conservative_threshold}  {runs}  {r.url}")  # fmt: skip
    return 0


def _weights_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from detector.weights import fetch

    bars: list = []  # the bar appears once bytes arrive, so a refused download is a single line

    def progress(done: int, total: int | None) -> None:
        if not bars:
            bars.append(tqdm(unit="B", unit_scale=True, desc=args.name))
        bars[0].total = total
        bars[0].update(done - bars[0].n)

    try:
        path = fetch(args.name, cache=args.cache, url=args.url, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    print(path)
    return 0
