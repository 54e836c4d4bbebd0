"""``make gpu-check``: one prepared run on a bare GPU machine (what ``make wheelhouse`` packed, installed offline).

In order, each step's output printed as it comes, GPU utilisation sampled throughout (NVML, every 0.2 s):

1. parity: crops of the generator's boxes classified from nvJPEG + ``roi_align`` crops against PIL + OpenCV crops
   (probabilities within 0.02, as the CPU test of the same code); the detector's FP16 head output on the GPU
   against FP32 on the CPU for the same letterboxed batch, and the classifier's bf16 probabilities on the GPU
   against FP32 on the CPU;
2. ``bench_engine.py --device cuda`` with its baselines (frames/s end to end and per stage);
3. ``bench_scale.py --device cuda --gpu-actor``: the local engine against one Ray actor holding the GPU.

Then a summary: GPU utilisation (mean and peak) per step.  ``--device cpu --quick`` runs the same steps small on
a machine without a GPU (to check the script, not to measure).  Prints figures; exits non-zero if a parity
check fails or a step breaks.

Usage: python benchmarks/gpu_check.py [--device cuda] [--quick] [--budget-s 450]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


class GpuSampler:
    """GPU utilisation (%) sampled in a thread, by step."""

    def __init__(self, period_s: float = 0.2) -> None:
        self.samples: dict[str, list[int]] = {}
        self.step, self.period, self.stop = "start", period_s, threading.Event()
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception as exc:  # noqa: BLE001 - no GPU, no NVML: report it and go on
            print(f"GPU utilisation not sampled: {exc}")
            self.nvml = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.nvml is not None and not self.stop.wait(self.period):
            util = self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu
            self.samples.setdefault(self.step, []).append(int(util))

    def report(self) -> None:
        self.stop.set()
        print("\nGPU utilisation by step (mean / peak %, samples every 0.2 s):")
        for step, s in self.samples.items():
            print(f"  {step:28s} {np.mean(s):5.1f} / {max(s):3d}  ({len(s)} samples)")


def _data(tmp: Path, sequences: int, size: tuple[int, int]):
    from camtrap.synth import SynthConfig, generate

    return generate(SynthConfig(sequences=sequences, seed=5, size=size, train_seasons=1), tmp / "data",
                    workers=min(8, os.cpu_count() or 1))  # fmt: skip


def _crop_parity(out, models: Path, device: str) -> float:
    """Largest |probability difference| between the torch (nvJPEG on CUDA) and PIL decode paths, oracle boxes."""
    from camtrap.dataset import read_test
    from camtrap.engine import EngineConfig, run
    from camtrap.lila import read_lila_boxes
    from camtrap.mdjson import results_from_boxes
    from classifier.predict import CropClassifier, load

    refs = read_test(out.test_data)[0].frame_refs()
    known = results_from_boxes([r.file for r in refs], read_lila_boxes(out.boxes_json)).by_file()
    crop = CropClassifier(load(models / "classifier.pt", device=device), 0.5)
    runs = [list(run(refs, crop=crop, detections=known, cfg=EngineConfig(decoder=d))) for d in ("pil", "torch")]
    diffs = [np.abs(np.subtract(a.probs, b.probs)).max() for x, y in zip(*runs) for a, b in zip(x.crops, y.crops)]
    n = sum(len(o.crops) for o in runs[0])
    print(f"  nvJPEG/PIL: {len(refs)} frames, {n} crops; largest |probability difference| "
          f"{max(diffs, default=0):.4f} (limit 0.02)")  # fmt: skip
    return max(diffs, default=0.0)


def _precision_parity(out, models: Path, device: str) -> tuple[float, float]:
    """FP16 detector head (GPU) vs FP32 (CPU) on one letterboxed batch; bf16 classifier (GPU) vs FP32 (CPU)."""
    from camtrap.dataset import read_test
    from camtrap.engine import DecodePlan, EngineConfig, decode_frame
    from classifier.predict import load as load_classifier
    from classifier.predict import predict_uint8
    from detector.model import load as load_detector

    refs = read_test(out.test_data)[0].frame_refs()[:8]
    gpu, cpu = load_detector(models / "detector.pt", device=device), load_detector(models / "detector.pt", device="cpu")
    plan = DecodePlan(gpu.spec.letterbox, None)
    batch = np.stack([decode_frame(r, plan, EngineConfig()).model_input for r in refs])
    a, b = np.asarray(gpu.forward(batch)), np.asarray(cpu.forward(batch))
    det = float(np.abs(a - b).max() / max(1e-9, np.abs(b).max()))
    clf_gpu = load_classifier(models / "classifier.pt", device=device)
    clf_cpu = load_classifier(models / "classifier.pt", device="cpu")
    h, w = clf_gpu.spec.input_hw
    crops = np.random.default_rng(0).integers(0, 256, (16, h, w, 3), dtype=np.uint8)
    clf = float(np.abs(predict_uint8(clf_gpu, crops) - predict_uint8(clf_cpu, crops)).max())
    print(f"  detector {'FP16' if getattr(gpu, 'half', False) else 'FP32'} on {device} vs FP32 on cpu: largest "
          f"|difference| {det:.4f} of the output's range (limit 0.01); classifier on {device} vs cpu: largest "
          f"|probability difference| {clf:.4f} (limit 0.02)")  # fmt: skip
    return det, clf


def _step(cmd: list[str], timeout: float) -> int:
    print("$ " + " ".join(cmd), flush=True)
    try:
        return subprocess.run(cmd, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        print(f"  stopped after {timeout:.0f} s")
        return 124


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--quick", action="store_true", help="small data (a check of the script, not a measurement)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="the whole run's time; steps are cut to fit")
    args = parser.parse_args()
    start = time.monotonic()
    import torch

    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}, {os.cpu_count()} CPUs")
    sampler, failed = GpuSampler(), []
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        tmp = Path(tmp)
        from bench_engine import _make_models

        sampler.step = "parity"
        models = _make_models(tmp / "models")
        out = _data(tmp, 12 if args.quick else 40, (640, 480) if args.quick else (2048, 1536))
        print("\n1. parity")
        if _crop_parity(out, models, args.device) > 0.02:
            failed.append("nvJPEG/PIL crop parity")
        det, clf = _precision_parity(out, models, args.device)
        failed += [name for name, bad in (("detector FP16/FP32", det > 0.01), ("classifier bf16/FP32", clf > 0.02))
                   if bad]  # fmt: skip
        py, left = sys.executable, lambda: args.budget_s - (time.monotonic() - start)
        seq, size = ("24", "640x480") if args.quick else ("450", "2048x1536")
        print("\n2. engine benchmark")
        sampler.step = "bench_engine"
        rc = _step([py, str(ROOT / "benchmarks/bench_engine.py"), "--device", args.device, "--models", str(models),
                    "--sequences", seq, "--size", size, "--repeat", "1"], timeout=max(30.0, left() * 0.6))  # fmt: skip
        failed += ["bench_engine"] if rc else []
        print("\n3. one Ray actor on the GPU")
        sampler.step = "ray actor"
        gpu = ["--gpu-actor"] if args.device == "cuda" else ["--skip-small-cluster"]
        seq = "24" if args.quick else "200"
        rc = _step([py, str(ROOT / "benchmarks/bench_scale.py"), "--device", args.device, "--models", str(models),
                    "--sequences", seq, "--size", size, *gpu], timeout=max(30.0, left() - 10))  # fmt: skip
        failed += ["bench_scale"] if rc else []
    sampler.report()
    print(f"\ngpu-check: {time.monotonic() - start:.0f} s; " + (f"FAILED: {', '.join(failed)}" if failed else "all ok"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
