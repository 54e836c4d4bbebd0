"""Detector throughput on this machine: decode, detect (model only) and end to end, images/s, next to plain
ultralytics ``YOLO.predict`` on the same images and model.  Prints figures; no pass/fail.

Usage: python benchmarks/bench_detector.py [--model M.pt] [--images 64] [--size 2048x1536] [--batch 8]
Without --model, an untrained yolo11-tiny at 640 px is used (same compute as a trained one).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from camtrap.synth import SynthConfig, generate
from detector.model import DetectorSpec, load, offline_ultralytics, write_spec
from detector.predict import DetectConfig, detect_batch, detect_files, list_images, prepare
from detector.train import architecture


def _model(folder: Path, size: int) -> Path:
    YOLO = offline_ultralytics()
    path = folder / "bench.pt"
    YOLO(architecture("yolo11-tiny", folder)).save(path)
    write_spec(path, DetectorSpec(name="bench-tiny", input_size=size))
    return path


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:8.1f} img/s ({seconds:.2f} s for {n})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", default="2048x1536")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = generate(SynthConfig(sequences=max(1, args.images // 3 + 1), seed=0, size=(w, h), train_seasons=1),
                       tmp / "data", workers=args.workers)  # fmt: skip
        files = (list_images(out.train_image_root, recursive=True) + list_images(out.test_data, recursive=True))
        files = files[: args.images]
        model_path = args.model or _model(tmp, 640)
        det = load(model_path, device=args.device)
        spec = det.spec
        print(f"{len(files)} images of {w}x{h}, model {model_path.name} ({det.backend}, {spec.input_size} px), "
              f"batch {args.batch}, {args.workers} decode workers")  # fmt: skip
        t0 = time.perf_counter()
        prepared = [prepare((f, str(p), spec.input_size, spec.stride, False)) for f, p in files]
        print("decode + letterbox, 1 process:", _rate(len(files), time.perf_counter() - t0))
        detect_batch(det, prepared[: args.batch])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(prepared), args.batch):
            detect_batch(det, prepared[i : i + args.batch])
        print("detect (model + NMS):        ", _rate(len(files), time.perf_counter() - t0))
        t0 = time.perf_counter()
        detect_files(det, files, DetectConfig(batch_size=args.batch, workers=args.workers))
        print("hakuna end to end:           ", _rate(len(files), time.perf_counter() - t0))
        YOLO = offline_ultralytics()
        yolo = YOLO(str(model_path))
        paths = [str(p) for _, p in files]
        yolo.predict(paths[:2], imgsz=spec.input_size, verbose=False, device=args.device or None)
        t0 = time.perf_counter()
        for i in range(0, len(paths), args.batch):
            yolo.predict(paths[i : i + args.batch], imgsz=spec.input_size, batch=args.batch, verbose=False,
                         conf=spec.output_threshold, device=args.device or None)  # fmt: skip
        print("ultralytics YOLO.predict:    ", _rate(len(files), time.perf_counter() - t0))


if __name__ == "__main__":
    main()
