"""End-to-end throughput of the streaming engine on Serengeti-size frames, next to the two baselines a user
would otherwise run, all in the same run on the same files and models.  Prints figures; no pass/fail.

    (new)  `hakuna predict` today: the engine (one decode per frame, stages overlapped)
    (a)    `hakuna predict` as it was before the engine (git ref --baseline-ref, run from a temporary worktree)
    (b)    ultralytics `YOLO.predict` on the files, crops cut with PIL from the re-opened frames, classified

Each runs in its own process; peak RSS is that process's.  ``--rss-frames N`` also runs the engine over N
frames (the generated files repeated under other names) and prints the RSS as the run goes, to show that
memory does not grow with the run.

Usage: python benchmarks/bench_engine.py [--models demo-out/models] [--sequences 450] [--size 2048x1536]
       [--device cpu|cuda] [--decoder auto|pil|torch] [--rss-frames 20000] [--repeat 3] [--skip-baselines]
Without --models (or where it lacks detector.pt/classifier.pt/fusion.json), a random-weight yolo11-tiny at
640 px and an ImageNet EfficientNet-Lite0 at 224 px are used: same compute as trained ones.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _status_mb(key: str) -> float:
    """A memory figure of this process from /proc (VmRSS: now, VmHWM: peak), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


PEAK = "round(int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024)"


def _make_models(folder: Path) -> Path:
    """A random-weight 640-px detector, an ImageNet Lite0 crop classifier at 224 px and an unfitted fusion file."""
    import torch

    from camtrap.labels import SPECIES
    from classifier.backbones import BACKBONES, create
    from classifier.spec import CHECKPOINT_FORMAT, ModelSpec, ResizePolicy
    from detector.model import DetectorSpec, offline_ultralytics, write_spec
    from detector.train import architecture
    from fusion import FusionModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    YOLO = offline_ultralytics()
    YOLO(architecture("yolo11-tiny", folder)).save(folder / "detector.pt")
    write_spec(folder / "detector.pt", DetectorSpec(name="bench-tiny", input_size=640, output_threshold=0.05,
                                                    typical_threshold=0.2, conservative_threshold=0.1))
    info = BACKBONES["efficientnet_lite0"]
    spec = ModelSpec("efficientnet_lite0", (224, 224), info.mean, info.std, ResizePolicy.PAD_SQUARE, SPECIES, False)
    model = create("efficientnet_lite0", len(SPECIES), pretrained=True)
    torch.save({"format": CHECKPOINT_FORMAT, "spec": spec.to_json(), "model": model.state_dict(), "history": []},
               folder / "classifier.pt")
    FusionModel(animal_threshold=0.2).save(folder / "fusion.json")
    return folder


def _old_compatible(models: Path, folder: Path) -> Path:
    """Copies of the models the pre-engine code can read (its spec and fusion readers know fewer fields)."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "detector.pt").write_bytes((models / "detector.pt").read_bytes())
    ckpt = torch.load(models / "classifier.pt", weights_only=True)
    spec = json.loads(ckpt["spec"])
    old = {k: spec[k] for k in ("backbone", "input_hw", "mean", "std", "resize", "classes", "multilabel", "training")}
    torch.save({"spec": json.dumps(old), "model": ckpt["model"], "history": []}, folder / "classifier.pt")
    fusion = json.loads((models / "fusion.json").read_text())
    fusion["config"].update(min_crop_conf=0.1, raw_empty_threshold=fusion.get("animal_threshold") or 0.2)
    fusion.pop("animal_threshold", None)
    (folder / "fusion.json").write_text(json.dumps(fusion))
    return folder


def _run(args: list[str], cwd: Path | None = None, env: dict | None = None, repeat: int = 1) -> tuple[dict, float]:
    """Run a child ``repeat`` times; returns (the JSON it printed last in the run of median wall time, the largest
    peak RSS in MB, which each child reports itself)."""
    runs = []
    for _ in range(repeat):
        proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not lines:
            raise SystemExit(f"{' '.join(args[:4])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        runs.append(json.loads(lines[-1]))
    runs.sort(key=lambda r: r["wall"])
    return runs[len(runs) // 2], max(r.get("peak_mb", float("nan")) for r in runs)


def _child_new(data: Path, models: Path, device: str | None, decoder: str, workers: int, batch: int) -> None:
    from camtrap.engine import EngineConfig
    from classifier.predict import load as load_classifier
    from detector.model import load as load_detector
    from fusion import FusionModel
    from hakuna.pipeline import PipelineConfig, StageTimes, predict_submission

    suffix = ".pt" if (models / "detector.pt").exists() else ".onnx"
    det = load_detector(models / f"detector{suffix}", device=device)
    clf = load_classifier(models / f"classifier{suffix}", device=device)
    cfg = PipelineConfig(engine=EngineConfig(detector_batch=batch, workers=workers, decoder=decoder))
    times, t0 = StageTimes(), time.perf_counter()
    predict_submission(data, det, clf, FusionModel.load(models / "fusion.json"), data.parent / "new.csv", cfg,
                       times=times)
    wall = time.perf_counter() - t0
    print(json.dumps({"frames": times.frames, "crops": times.crops, "wall": wall, "decode": times.decode,
                      "detect": times.detect, "classify": times.classify, "fuse": times.fuse,
                      "peak_mb": _status_mb("VmHWM")}))


def _child_ultralytics(data: Path, models: Path, device: str | None, batch: int) -> None:
    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image

    from camtrap.geometry import crop_box
    from classifier.predict import load as load_classifier
    from detector.model import offline_ultralytics, read_spec

    spec = read_spec(models / "detector.pt")
    clf = load_classifier(models / "classifier.pt", device=device)
    yolo = offline_ultralytics()(str(models / "detector.pt"))
    files = [str(data / f) for f in pd.read_csv(data / "test_metadata.csv")["file_name"]]
    t0, crops = time.perf_counter(), 0
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    for k in range(0, len(files), batch):
        chunk = files[k : k + batch]
        results = yolo.predict(chunk, imgsz=spec.input_size, conf=spec.conservative_threshold, batch=batch,
                               verbose=False, device=dev)
        pending = []
        for path, r in zip(chunk, results):
            boxes = [b for b, c in zip(r.boxes.xywhn.tolist(), r.boxes.cls.tolist()) if int(c) == 0]
            if not boxes:
                continue
            img = Image.open(path).convert("RGB")
            for cx, cy, w, h in boxes:
                x0, y0, side = crop_box((cx - w / 2, cy - h / 2, w, h), img.width, img.height, clf.spec.crop_margin)
                crop = img.crop((x0, y0, x0 + side, y0 + side)).resize(clf.spec.input_hw[::-1], Image.BILINEAR)
                pending.append(np.asarray(crop))
        if pending:
            clf.forward(np.stack(pending))
            crops += len(pending)
    wall = time.perf_counter() - t0
    print(json.dumps({"frames": len(files), "crops": crops, "wall": wall, "peak_mb": _status_mb("VmHWM")}))


def _child_rss(data: Path, models: Path, device: str | None, decoder: str, workers: int, batch: int,
               frames: int) -> None:
    import pandas as pd

    from camtrap.engine import EngineConfig, run
    from camtrap.frames import frame_ref
    from classifier.predict import CropClassifier
    from classifier.predict import load as load_classifier
    from detector.model import load as load_detector
    from detector.predict import FrameDetector

    meta = pd.read_csv(data / "test_metadata.csv")
    names = meta["file_name"].tolist()
    refs = [frame_ref(data, names[i % len(names)], f"seq{i // 3}") for i in range(frames)]
    det = load_detector(models / "detector.pt", device=device)
    clf = load_classifier(models / "classifier.pt", device=device)
    cfg = EngineConfig(detector_batch=batch, workers=workers, decoder=decoder)
    samples, t0 = [], time.perf_counter()
    crop = CropClassifier(clf, det.spec.conservative_threshold)
    for i, _ in enumerate(run(refs, detect=FrameDetector(det), crop=crop, cfg=cfg), 1):
        if i % max(1, frames // 10) == 0:
            samples.append([i, round(_status_mb("VmRSS"), 1)])
    print(json.dumps({"frames": frames, "wall": time.perf_counter() - t0, "rss_mb": samples,
                      "peak_mb": _status_mb("VmHWM")}))


def _old_baseline(args: argparse.Namespace, models: Path, data: Path, tmp: Path, rows: list, n: int) -> None:
    """Row (a): ``hakuna predict`` at --baseline-ref, from a temporary worktree (skipped where git cannot make one:
    a copy of the tree without its history, as on a GPU machine)."""
    try:
        tree = _old_worktree(args.baseline_ref, tmp / "old")
    except (OSError, subprocess.CalledProcessError):
        print(f"(a) not run: no git worktree of {args.baseline_ref} can be made here")
        return
    old_models = _old_compatible(models, tmp / "old-models")
    try:
        code = ("import json, sys, time; sys.path.insert(0, '.'); from hakuna.cli import main; "
                "t = time.perf_counter(); rc = main(sys.argv[1:]); "
                f"print(json.dumps({{'wall': time.perf_counter() - t, 'rc': rc, 'peak_mb': {PEAK}}}))")
        old_args = [sys.executable, "-c", code, "-q", "predict", "--data", str(data), "--detector",
                    str(old_models / "detector.pt"), "--classifier", str(old_models / "classifier.pt"),
                    "--fusion", str(old_models / "fusion.json"), "--out", str(tmp / "old.csv"), "--workers",
                    str(args.workers), "--batch-size", str(args.batch), "--no-progress"]
        old_args += ["--device", args.device] if args.device else []
        old, peak = _run(old_args, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, repeat=args.repeat)
        name = f"(a) hakuna predict before the engine ({args.baseline_ref})"
        rows.append((name, {**old, "frames": n}, peak))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       capture_output=True)  # fmt: skip


def _old_worktree(ref: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(where), ref], check=True,
                   capture_output=True)
    return where


def main() -> None:  # noqa: PLR0915 - a script: one table
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path)
    parser.add_argument("--sequences", type=int, default=450, help="half of them form the test season")
    parser.add_argument("--size", default="2048x1536")
    parser.add_argument("--device", choices=("cpu", "cuda"))
    parser.add_argument("--decoder", choices=("auto", "pil", "torch"), default="auto")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--baseline-ref", default="7fe0bf1", help="git ref of the pre-engine `hakuna predict`")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--rss-frames", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each path; the median wall time is shown")
    parser.add_argument("--child", choices=("new", "ultralytics", "rss"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "new":
            _child_new(args.data, args.models, args.device, args.decoder, args.workers, args.batch)
        elif args.child == "ultralytics":
            _child_ultralytics(args.data, args.models, args.device, args.batch)
        else:
            _child_rss(args.data, args.models, args.device, args.decoder, args.workers, args.batch, args.rss_frames)
        return
    from camtrap.synth import SynthConfig, generate

    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        out = generate(SynthConfig(sequences=args.sequences, seed=123, size=(w, h), train_seasons=1), tmp / "data",
                       workers=args.workers)
        print(f"synthetic data: {w}x{h}, made in {time.perf_counter() - t0:.0f} s")
        wanted = ("detector.pt", "classifier.pt", "fusion.json")
        have = args.models and all((args.models / f).exists() for f in wanted)
        models = args.models if have else _make_models(tmp / "models")
        me = [sys.executable, __file__, "--models", str(models), "--data", str(out.test_data), "--workers",
              str(args.workers), "--batch", str(args.batch), "--decoder", args.decoder]
        me += ["--device", args.device] if args.device else []
        rows = []
        new, peak = _run(me + ["--child", "new"], repeat=args.repeat)
        rows.append(("hakuna predict (engine)", new, peak))
        n = new["frames"]
        print(f"{n} frames, {new['crops']} crops; models {models}; {args.workers} decode threads, batch {args.batch}")
        print(f"engine stages: decode {new['decode']:.1f} s (thread-summed: {n / new['decode']:.1f} frames/s per "
              f"thread-second), detect {new['detect']:.1f} s ({n / new['detect']:.1f} frames/s), classify "
              f"{new['classify']:.1f} s ({new['crops'] / max(new['classify'], 1e-9):.1f} crops/s), fuse "
              f"{new['fuse']:.2f} s")
        if not args.skip_baselines:
            _old_baseline(args, models, out.test_data, tmp, rows, n)
            ul, peak = _run(me + ["--child", "ultralytics"], repeat=args.repeat)
            rows.append(("(b) ultralytics YOLO.predict + PIL crops + classifier", ul, peak))
        print(f"\nmedian of {args.repeat} runs each\n{'path':58s} {'frames/s':>9s} {'wall s':>7s} {'peak RSS MB':>12s}")
        for name, r, peak in rows:
            print(f"{name:58s} {r['frames'] / r['wall']:9.1f} {r['wall']:7.1f} {peak:12.0f}")
        for name, r, _ in rows[1:]:
            print(f"engine speed-up over {name[:3]}: {r['wall'] / new['wall']:.2f}x")
        if args.rss_frames:
            rss, peak = _run(me + ["--child", "rss", "--rss-frames", str(args.rss_frames)])
            print(f"\n{args.rss_frames} frames through the engine in {rss['wall']:.0f} s "
                  f"({args.rss_frames / rss['wall']:.1f} frames/s), peak RSS {peak:.0f} MB; RSS (MB) as it went: "
                  + ", ".join(f"{i}: {m}" for i, m in rss["rss_mb"]))


if __name__ == "__main__":
    main()
