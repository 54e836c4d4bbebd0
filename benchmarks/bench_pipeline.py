"""Throughput of `hakuna predict` (the whole two-stage pipeline) on this machine: sequences/s, images/s and
seconds per stage.  Prints figures; no pass/fail.

Usage: python benchmarks/bench_pipeline.py [--models demo-out/models] [--sequences 200] [--size 2048x1536]
Uses the demo's models by default (run `make demo` first), on fresh synthetic full-size frames.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from camtrap.synth import SynthConfig, generate
from classifier.predict import load as load_classifier
from detector.model import load as load_detector
from detector.predict import DetectConfig
from fusion import FusionModel
from hakuna.commands.run import print_times
from hakuna.pipeline import PipelineConfig, StageTimes, predict_submission


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path, default=Path("demo-out/models"))
    parser.add_argument("--sequences", type=int, default=200)
    parser.add_argument("--size", default="2048x1536")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None)
    parser.add_argument("--onnx", action="store_true", help="use ONNX exports (as the packaged runner does)")
    args = parser.parse_args()
    suffix = ".onnx" if args.onnx else ".pt"
    det_path, clf_path = args.models / f"detector{suffix}", args.models / f"classifier{suffix}"
    if not det_path.exists() or not clf_path.exists():
        raise SystemExit(f"no models in {args.models} (run `make demo` first, or export ONNX with hakuna)")
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        out = generate(SynthConfig(sequences=args.sequences, seed=123, size=(w, h), train_seasons=1), Path(tmp),
                       workers=args.workers)  # fmt: skip
        detector = load_detector(det_path, device=args.device)
        classifier = load_classifier(clf_path, device=args.device)
        fusion = FusionModel.load(args.models / "fusion.json")
        cfg = PipelineConfig(detect=DetectConfig(batch_size=8, workers=args.workers, read_datetime=False))
        print(f"{detector.backend} detector ({detector.spec.input_size} px), {classifier.backend} classifier "
              f"({classifier.spec.input_hw}), {w}x{h} frames, {args.workers} decode workers")  # fmt: skip
        times, start = StageTimes(), time.perf_counter()
        predict_submission(out.test_data, detector, classifier, fusion, Path(tmp) / "submission.csv", cfg, times=times)
        print_times(times, time.perf_counter() - start)


if __name__ == "__main__":
    main()
