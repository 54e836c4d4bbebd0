"""Frames/s of ``hakuna predict`` on this machine: the single-process engine next to ``--engine ray`` with 1 and 2
workers per model (actor pools), in the same run on the same files and models, and Ray's overhead per frame.
Prints figures; no pass/fail.  Ray starts a local cluster of its own (this machine's CPUs).

Usage: python benchmarks/bench_scale.py [--models demo-out/models] [--sequences 160] [--size 1024x768]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _models(args: argparse.Namespace, tmp: Path) -> Path:
    wanted = ("detector.pt", "classifier.pt", "fusion.json")
    if args.models and all((args.models / f).exists() for f in wanted):
        return args.models
    from bench_engine import _make_models  # the same stand-in models as the engine benchmark

    return _make_models(tmp / "models")


def _predict(data: Path, models: Path, out: Path, *extra: str) -> float:
    from hakuna.cli import main

    t0 = time.perf_counter()
    code = main(["-q", "predict", "--data", str(data), "--detector", str(models / "detector.pt"), "--classifier",
                 str(models / "classifier.pt"), "--fusion", str(models / "fusion.json"), "--out", str(out), "--device",
                 "cpu", "--no-progress", *extra])  # fmt: skip
    if code:
        raise SystemExit(f"predict failed ({code})")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path)
    parser.add_argument("--sequences", type=int, default=160, help="half of them form the test season")
    parser.add_argument("--size", default="1024x768")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import pandas as pd

    from camtrap.synth import SynthConfig, generate
    from hakuna.ray_runner import connect

    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        tmp = Path(tmp)
        out = generate(SynthConfig(sequences=args.sequences, seed=77, size=(w, h), train_seasons=1), tmp / "data",
                       workers=2)  # fmt: skip
        frames = len(pd.read_csv(out.test_data / "test_metadata.csv"))
        models = _models(args, tmp)
        _predict(out.test_data, models, tmp / "warm.csv")  # page cache and model files warm for every row
        rows = [("single-process engine", _predict(out.test_data, models, tmp / "local.csv"))]
        connect(None)  # a local Ray cluster, started once (its start-up is not counted)
        for n in (1, 2):
            wall = _predict(out.test_data, models, tmp / f"ray{n}.csv", "--engine", "ray", "--address", "local",
                            "--max-actors", str(n), "--shards-dir", str(tmp / f"shards{n}"))  # fmt: skip
            rows.append((f"Ray Data, {n} worker(s) per model", wall))
        print(f"{frames} frames of {w}x{h}, models {models}, {os.cpu_count()} CPUs")
        print(f"{'run':36s} {'frames/s':>9s} {'wall s':>8s}")
        for name, wall in rows:
            print(f"{name:36s} {frames / wall:9.1f} {wall:8.1f}")
        overhead = (rows[1][1] - rows[0][1]) / frames * 1000
        print(f"Ray overhead per frame (1 worker vs single process): {overhead:.1f} ms")


if __name__ == "__main__":
    main()
