"""Pipeline subcommands: ``fit-fusion``, ``predict``, ``package`` and ``run-submission``."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tqdm import tqdm

from camtrap.dataset import read_train, season_split
from camtrap.metric import per_class_log_loss, read_submission
from classifier.predict import load as load_classifier
from detector.mdjson import write_results
from detector.model import load as load_detector
from detector.predict import DetectConfig
from fusion import FusionConfig, FusionModel, Pooling, fit
from fusion.fit import class_priors
from submission.package import build_package, run_submission
from submission.pipeline import PipelineConfig, StageTimes, collect_evidence, predict_submission

__all__ = ["register", "print_times"]
DEVICES = ("auto", "cpu", "cuda")


def _device(args: argparse.Namespace) -> str | None:
    return None if args.device == "auto" else args.device


def _models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", required=True, type=Path, help="detector .pt or .onnx")
    p.add_argument("--classifier", required=True, type=Path, help="classifier .pt or .onnx")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="image decoding processes")
    p.add_argument("--batch-size", type=int, default=8, help="detector batch")
    p.add_argument("--no-progress", action="store_true")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the pipeline's subcommands to the ``hakuna`` parser."""
    p = sub.add_parser("fit-fusion", help="fit fusion's calibration on a validation season of a training set")
    p.add_argument("--data", required=True, type=Path, help="dataset folder with train/ (competition layout)")
    _models(p)
    p.add_argument("--val-seasons", type=int, nargs="*", help="default: the latest training season")
    p.add_argument("--species-pooling", choices=[x.value for x in Pooling], default=FusionConfig.species_pooling.value)
    p.add_argument("--empty-pooling", choices=[x.value for x in Pooling], default=FusionConfig.empty_pooling.value)
    p.add_argument("--out", required=True, type=Path, help="fusion JSON to write")
    p.set_defaults(handler=_fit_fusion)

    p = sub.add_parser("predict", help="run the whole pipeline on a test folder and write submission.csv")
    p.add_argument("--data", required=True, type=Path, help="folder with test_metadata.csv, submission_format.csv")
    _models(p)
    p.add_argument("--fusion", required=True, type=Path, help="fusion JSON (hakuna fit-fusion)")
    p.add_argument("--out", required=True, type=Path, help="submission CSV to write")
    p.add_argument("--results", type=Path, help="also write MegaDetector-format results JSON with classifications")
    p.add_argument("--tta", action="store_true", help="horizontal-flip test-time augmentation for crops")
    p.add_argument("--time-budget", type=float, help="seconds; sequences not reached get the class priors")
    p.set_defaults(handler=_predict)

    p = sub.add_parser("package", help="build submission.zip (main.py + code + ONNX weights) for the offline runner")
    p.add_argument("--detector", required=True, type=Path)
    p.add_argument("--classifier", required=True, type=Path)
    p.add_argument("--fusion", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(handler=_package)

    p = sub.add_parser("run-submission", help="run a submission.zip as the competition container would")
    p.add_argument("zip", type=Path)
    p.add_argument("--data", required=True, type=Path, help="the data/ folder to mount")
    p.add_argument("--out", type=Path, default=Path("submission.csv"))
    p.add_argument("--labels", type=Path, help="score the result against these labels")
    p.add_argument("--time-budget", type=float, help="HAKUNA_TIME_BUDGET_S for the run")
    p.add_argument("--allow-network", action="store_true", help="do not isolate the run from the network")
    p.set_defaults(handler=_run_submission)


def print_times(times: StageTimes, wall: float) -> None:
    """One line of throughput and per-stage seconds."""
    print(f"{times.sequences} sequences, {times.images} images ({times.failed_images} unreadable), {times.crops} crops "
          f"in {wall:.1f} s: {times.sequences / wall:.2f} seq/s, {times.images / wall:.2f} img/s; detect "
          f"{times.detect:.1f} s, classify {times.classify:.1f} s, fuse {times.fuse:.2f} s")  # fmt: skip


def _pipeline_cfg(args: argparse.Namespace, **extra) -> PipelineConfig:
    return PipelineConfig(detect=DetectConfig(batch_size=args.batch_size, workers=args.workers, read_datetime=False),
                          **extra)  # fmt: skip


def _fit_fusion(args: argparse.Namespace) -> int:
    data = read_train(args.data / "train" / "train_metadata.csv", args.data / "train" / "train_labels.csv",
                      args.data / "train")  # fmt: skip
    train_part, val_part = season_split(data, args.val_seasons or None)
    detector, classifier = load_detector(args.detector, device=_device(args)), load_classifier(args.classifier)
    evidence, _ = collect_evidence(val_part, detector, classifier, _pipeline_cfg(args))
    cfg = FusionConfig(species_pooling=Pooling(args.species_pooling), empty_pooling=Pooling(args.empty_pooling))
    model = fit(evidence, val_part.labels, cfg, priors=class_priors(data.labels))
    model.save(args.out)
    print(f"fusion -> {args.out} (temperature {model.temperature}, prior mix {model.prior_mix}, "
          f"{len(evidence)} validation sequences)")  # fmt: skip
    return 0


def _predict(args: argparse.Namespace) -> int:
    detector = load_detector(args.detector, device=_device(args))
    classifier = load_classifier(args.classifier, device=_device(args))
    fusion = FusionModel.load(args.fusion)
    cfg = _pipeline_cfg(args, tta=args.tta, time_budget_s=args.time_budget)
    times, start = StageTimes(), time.perf_counter()
    with tqdm(desc="predict", unit="seq", disable=args.no_progress) as bar:
        _, results = predict_submission(args.data, detector, classifier, fusion, args.out, cfg, progress=bar.update,
                                        times=times)  # fmt: skip
    if args.results:
        write_results(args.results, results)
    print_times(times, time.perf_counter() - start)
    print(f"submission -> {args.out}")
    return 0


def _package(args: argparse.Namespace) -> int:
    out = build_package(args.detector, args.classifier, args.fusion, args.out)
    print(f"package -> {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _run_submission(args: argparse.Namespace) -> int:
    out = run_submission(args.zip, args.data, args.out, offline=not args.allow_network, time_budget_s=args.time_budget)
    print(f"submission -> {out}")
    if args.labels:
        losses = per_class_log_loss(read_submission(out), read_submission(args.labels))
        print(f"{losses.mean():.10f}")
    return 0
