"""Detector subcommands: ``detect``, ``crops``, ``detector train``, ``detector export-onnx``, ``weights``."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from tqdm import tqdm

from camtrap.dataset import read_metadata, read_train
from detector.crops import CropConfig, export_crops
from detector.mdjson import read_results
from detector.model import default_device, export_onnx, load
from detector.predict import DetectConfig, detect_files, list_images
from detector.train import ARCHITECTURES, DetectorTrainConfig, train
from detector.weights import REGISTRY, fetch
from submission.commands import UsageError

__all__ = ["register"]

log = logging.getLogger(__name__)
DEVICES = ("auto", "cpu", "cuda")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the detector's subcommands to the ``hakuna`` parser."""
    p = sub.add_parser("detect", help="run a detector over images and write MegaDetector-format results JSON")
    p.add_argument("--model", required=True, type=Path, help=".pt (ultralytics) or .onnx detector")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", type=Path, help="a folder of images")
    src.add_argument("--metadata", type=Path, help="a competition-style *_metadata.csv (with --image-root)")
    p.add_argument("--image-root", type=Path, help="folder the metadata's file_name values are relative to")
    p.add_argument("--recursive", action="store_true", help="with --images: include sub-folders")
    p.add_argument("--out", required=True, type=Path, help="results JSON to write")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="decoding processes")
    p.add_argument("--checkpoint-every", type=int, default=0, metavar="N", help="write partial results every N images")
    p.add_argument("--resume", action="store_true", help="continue from a checkpoint (or finished file) at --out")
    p.add_argument("--threshold", type=float, help="lowest confidence written (default: the model's)")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_detect)

    p = sub.add_parser("crops", help="cut square crops of detections and write them with a JSON map back")
    p.add_argument("--detections", required=True, type=Path, help="results JSON")
    p.add_argument("--images", required=True, type=Path, help="image root the results' file names are relative to")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--threshold", type=float, default=CropConfig.threshold)
    p.add_argument("--margin", type=float, default=CropConfig.margin)
    p.set_defaults(handler=_crops)

    det = sub.add_parser("detector", help="train or export a detector").add_subparsers(dest="action", required=True)
    p = det.add_parser("train", help="train a YOLO on LILA-format boxes of a competition-layout dataset")
    p.add_argument("--data", required=True, type=Path, help="dataset folder (as `hakuna synth` writes)")
    p.add_argument("--boxes", type=Path, help="LILA boxes JSON (default: DATA/lila/SnapshotSerengetiBboxes_*.json)")
    p.add_argument("--out", required=True, type=Path, help="model .pt to write")
    p.add_argument("--architecture", default=DetectorTrainConfig.architecture,
                   help=f"{', '.join(ARCHITECTURES)}, an ultralytics yaml (yolo11n.yaml) or a .pt to fine-tune")
    p.add_argument("--epochs", type=int, default=DetectorTrainConfig.epochs)
    p.add_argument("--imgsz", type=int, default=DetectorTrainConfig.imgsz)
    p.add_argument("--batch", type=int, default=DetectorTrainConfig.batch)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--work-dir", type=Path, help="scratch folder (default: next to --out)")
    p.set_defaults(handler=_train)
    p = det.add_parser("export-onnx", help="export a .pt detector to ONNX (spec kept in the metadata)")
    p.add_argument("model", type=Path)
    p.add_argument("--out", type=Path, help="default: MODEL with .onnx")
    p.set_defaults(handler=_export)

    w = sub.add_parser("weights", help="known MegaDetector releases").add_subparsers(dest="action", required=True)
    p = w.add_parser("list", help="list known releases")
    p.set_defaults(handler=_weights_list)
    p = w.add_parser("fetch", help="download a release into the cache (resumable, verified)")
    p.add_argument("name", choices=sorted({r.name for r in REGISTRY.values()}))
    p.add_argument("--cache", type=Path, help="cache folder (default $HAKUNA_CACHE or ~/.cache/hakuna)")
    p.add_argument("--url", help="download from this address instead (a mirror)")
    p.set_defaults(handler=_weights_fetch)


def _device(name: str) -> str | None:
    return None if name == "auto" else name


def _files(args: argparse.Namespace) -> tuple[list[tuple[str, Path]], Path]:
    if args.images is not None:
        if not args.images.is_dir():
            raise UsageError(f"--images {args.images} is not a folder")
        return list_images(args.images, args.recursive), args.images
    if args.image_root is None:
        raise UsageError("--metadata needs --image-root")
    frames = read_metadata(args.metadata)
    return [(f, args.image_root / f) for f in frames["file_name"]], args.image_root


def _detect(args: argparse.Namespace) -> int:
    files, _ = _files(args)
    detector = load(args.model, device=_device(args.device))
    cfg = DetectConfig(batch_size=args.batch_size, workers=args.workers, checkpoint_every=args.checkpoint_every,
                       output_threshold=args.threshold)  # fmt: skip
    with tqdm(total=len(files), desc="detect", unit="img", disable=args.no_progress) as bar:
        results = detect_files(detector, files, cfg, out=args.out, resume=args.resume, progress=bar.update)
    failed = sum(1 for f in results.frames if not f.ok)
    print(f"{len(results.frames)} images, {failed} failed to load -> {args.out}")
    return 0


def _crops(args: argparse.Namespace) -> int:
    results = read_results(args.detections)
    n = export_crops(results, args.images, args.out, CropConfig(threshold=args.threshold, margin=args.margin))
    print(f"{n} crops -> {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    data = read_train(args.data / "train" / "train_metadata.csv", args.data / "train" / "train_labels.csv",
                      args.data / "train")  # fmt: skip
    boxes = args.boxes or next(iter(sorted((args.data / "lila").glob("SnapshotSerengetiBboxes_*.json"))), None)
    if boxes is None:
        raise UsageError(f"no --boxes given and none found under {args.data / 'lila'}")
    device = _device(args.device) or default_device()
    cfg = DetectorTrainConfig(architecture=args.architecture, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                              device=device)  # fmt: skip
    out = train(data, boxes, args.out, cfg, work_dir=args.work_dir or args.out.with_suffix(".work"))
    print(f"detector -> {out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    out = export_onnx(args.model, args.out or args.model.with_suffix(".onnx"))
    print(f"ONNX -> {out}")
    return 0


def _weights_list(args: argparse.Namespace) -> int:
    for r in sorted({r.name: r for r in REGISTRY.values()}.values(), key=lambda r: r.name):
        runs = "runs here" if r.fmt == "ultralytics" else "YOLOv5 format: not loadable here"
        print(f"{r.name:16s} {r.spec.input_size:5d}px  thresholds {r.spec.typical_threshold}/"
              f"{r.spec.conservative_threshold}  {runs}  {r.url}")  # fmt: skip
    return 0


def _weights_fetch(args: argparse.Namespace) -> int:
    with tqdm(unit="B", unit_scale=True, desc=args.name) as bar:
        def progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        path = fetch(args.name, cache=args.cache, url=args.url, progress=progress)
    print(path)
    return 0
