"""Pipeline subcommands: ``fit-fusion``, ``predict``, ``package`` and ``run-submission``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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
from hakuna.commands.folder import add_folder_args, predict_folder_command
from submission.harness import COMPETITION_TIME_LIMIT_S

__all__ = ["register", "print_times", "load_models"]
POOLING = ("mean", "max", "gmean")


def _models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", required=True, type=detector_file,
                   help="detector .pt or .onnx, or a release fetched by `hakuna weights fetch` (e.g. mdv1000-sorrel)")
    p.add_argument("--classifier", required=True, type=Path, help="classifier .pt or .onnx")
    add_device(p)
    add_engine(p)
    add_trust(p)
    add_outside_root(p)
    p.add_argument("--no-progress", action="store_true")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the pipeline's subcommands to the ``hakuna`` parser."""
    p = sub.add_parser("fit-fusion", help="fit fusion's calibration on a validation season of a training set, or on "
                                          "labelled photos (--images-csv) for a classifier of your own classes")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="dataset folder with train/ (competition layout)")
    src.add_argument("--images-csv", type=Path, help="labelled photos: path,label[,seq_id][,group_id] (labels: the "
                                                     "classifier's classes or empty/blank; other rows are skipped)")
    src.add_argument("--corrections", type=Path, help="a review site's corrections.csv: the sequences a person "
                                                      "confirmed or relabelled (with --images, the photo folder)")
    p.add_argument("--images", type=Path, help="with --corrections: the folder the review site was built from")
    p.add_argument("--root", type=Path, help="with --images-csv: folder its relative paths are under (default: the "
                                             "CSV's folder); absolute paths are used as given")
    _models(p)
    p.add_argument("--val-seasons", type=int_in(1, 999), nargs="*", help="default: the latest training season")
    p.add_argument("--species-pooling", choices=POOLING, default="mean")
    p.add_argument("--empty-pooling", choices=POOLING, default="gmean")
    p.add_argument("--out", required=True, type=Path, help="fusion JSON to write")
    p.set_defaults(handler=_fit_fusion)

    p = sub.add_parser("predict", help="the whole pipeline on a folder of photos (--images: species per sequence) "
                                       "or a competition test folder (--data: submission.csv)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path, help="competition mode: folder with test_metadata.csv, "
                                                 "submission_format.csv")
    where.add_argument("--images", type=Path, help="folder mode: a folder of photos (see the folder options)")
    _models(p)
    p.add_argument("--fusion", type=Path, help="fusion JSON (hakuna fit-fusion); required with --data, optional with "
                                               "--images (default: an unfitted fusion, stated in the summary)")
    p.add_argument("--out", required=True, type=Path, help="submission CSV (--data) or output folder (--images)")
    add_folder_args(p)
    p.add_argument("--results", type=Path, help="also write MegaDetector-format results JSON with classifications")
    p.add_argument("--tta", action="store_true", help="horizontal-flip test-time augmentation for crops")
    p.add_argument("--time-budget", type=float_in(0), help="seconds; sequences not reached get the class priors")
    add_ray(p)
    p.add_argument("--resume", action="store_true", help="with --engine ray: skip the shards already finished")
    p.set_defaults(handler=_predict)

    p = sub.add_parser("package", help="build submission.zip (main.py + code + ONNX weights) for the offline runner")
    p.add_argument("--detector", required=True, type=Path)
    p.add_argument("--classifier", required=True, type=Path)
    p.add_argument("--fusion", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(handler=_package)

    p = sub.add_parser("run-submission", help="run a submission.zip as the competition container would")
    p.add_argument("zip", type=Path)
    p.add_argument("--data", required=True, type=Path, help="the data/ folder to mount (read-only)")
    p.add_argument("--out", type=Path, default=Path("submission.csv"))
    p.add_argument("--labels", type=Path, help="score the result against these labels")
    p.add_argument("--time-budget", type=float_in(0), help="HAKUNA_TIME_BUDGET_S for the run")
    p.add_argument("--time-limit", type=float_in(0, low_open=True), default=COMPETITION_TIME_LIMIT_S,
                   help="seconds; past it main.py and everything it started is killed (default: the competition's 8 h)")
    p.add_argument("--allow-network", action="store_true",
                   help="run even where the run cannot be isolated (no network namespace; data not mounted read-only)")
    p.set_defaults(handler=_run_submission)


def print_times(times, wall: float) -> None:
    """One line of throughput and per-stage seconds."""
    print(f"{times.sequences} sequences, {times.frames} frames ({times.failed} unreadable), {times.crops} crops in "
          f"{wall:.1f} s: {times.sequences / wall:.2f} seq/s, {times.frames / wall:.2f} frames/s; decode "
          f"{times.decode:.1f} s (summed over threads), detect {times.detect:.1f} s, classify {times.classify:.1f} s, "
          f"fuse {times.fuse:.2f} s")  # fmt: skip


def load_models(args: argparse.Namespace):
    """The detector and classifier the arguments name (refusing untrusted .pt files unless --trust-model)."""
    from classifier.predict import load as load_classifier
    from detector.model import load as load_detector

    device = device_of(args)
    return (load_detector(args.detector, device=device, trust_model=args.trust_model),
            load_classifier(args.classifier, device=device, trust_model=args.trust_model))  # fmt: skip


def _pipeline_cfg(args: argparse.Namespace, **extra):
    from hakuna.pipeline import PipelineConfig

    return PipelineConfig(engine=engine_config(args), **extra)


def _fit_fusion(args: argparse.Namespace) -> int:
    import dataclasses

    from tqdm import tqdm

    from camtrap.dataset import read_train, season_split
    from camtrap.failures import report_failures
    from fusion import FusionConfig, Pooling, fit
    from fusion.fit import class_priors
    from hakuna.bindings import fingerprints, output_columns
    from hakuna.evaluate import corrections_as_sequences, images_csv_as_sequences
    from hakuna.pipeline import collect_evidence

    out_path(args.out, "fusion file")
    labelled = args.images_csv is not None or args.corrections is not None
    if labelled and args.corrections is not None and args.images is None:
        raise UsageError("--corrections needs --images (the folder the review site was built from)")
    if not labelled:  # the data and its seasons are checked before any model is loaded
        data = read_train(args.data / "train" / "train_metadata.csv", args.data / "train" / "train_labels.csv",
                          args.data / "train")  # fmt: skip
        data = dataclasses.replace(data, allow_outside_root=args.allow_outside_root)
        _, val_part = season_split(data, args.val_seasons or None)
        priors = class_priors(data.labels)
    detector, classifier = load_models(args)
    columns = output_columns(classifier.spec.classes)
    if labelled:
        val_part = (images_csv_as_sequences(args.images_csv, args.root, columns) if args.images_csv is not None
                    else corrections_as_sequences(args.corrections, args.images, columns))  # fmt: skip
        priors = class_priors(val_part.labels, columns=columns)
    species = tuple(c for c in columns if c != "empty")
    with tqdm(total=len(val_part.seq_ids), desc="fit-fusion", unit="seq", disable=args.no_progress) as bar:
        evidence, results = collect_evidence(val_part, detector, classifier, _pipeline_cfg(args), species=species,
                                             progress=bar.update)  # fmt: skip
    cfg = FusionConfig(species_pooling=Pooling(args.species_pooling), empty_pooling=Pooling(args.empty_pooling))
    model = fit(evidence, val_part.labels, cfg, animal_threshold=detector.spec.typical_threshold, priors=priors,
                classes=columns, fitted_for=fingerprints(detector, classifier))  # fmt: skip
    failures = [(f.file, f.failure) for f in results.frames if not f.ok]
    if failures and len(failures) == len(results.frames):
        return report_failures(failures, len(results.frames))  # nothing was read: no fusion file
    model.save(args.out)
    crops = sum(len(ev.crop_probs) for ev in evidence)
    print(f"fusion -> {args.out} (temperature {model.temperature}, prior mix {model.prior_mix}, "
          f"{model.fit_summary()}, {crops} crops)")  # fmt: skip
    return report_failures(failures, len(results.frames))


def _predict(args: argparse.Namespace) -> int:
    if args.images is not None:
        return predict_folder_command(args)
    if args.fusion is None:
        raise UsageError("--data needs --fusion (fit one with `hakuna fit-fusion`)")
    from tqdm import tqdm

    from camtrap.failures import report_failures
    from camtrap.mdjson import write_results
    from fusion import FusionModel
    from hakuna.bindings import check_fusion
    from hakuna.pipeline import StageTimes, predict_submission

    out_path(args.out, "submission file")
    if args.results:
        out_path(args.results, "results file")
    detector, classifier = load_models(args)
    fusion = check_fusion(FusionModel.load(args.fusion), detector, classifier)
    print(f"fusion: {fusion.fit_summary()}")
    cfg = _pipeline_cfg(args, tta=args.tta, time_budget_s=args.time_budget)
    times, start = StageTimes(), time.perf_counter()
    if args.engine == "ray" and (args.tta or args.time_budget is not None):
        raise UsageError("--engine ray does not take --tta or --time-budget")
    source = (ray_source(args, detector, classifier, detector_path=args.detector, classifier_path=args.classifier)
              if args.engine == "ray" else None)  # fmt: skip
    with tqdm(total=_format_rows(args.data), desc="predict", unit="seq", disable=args.no_progress) as bar:
        _, results = predict_submission(args.data, detector, classifier, fusion, args.out, cfg, progress=bar.update,
                                        times=times, keep_results=args.results is not None,
                                        source=source)  # fmt: skip
    if args.results:
        write_results(args.results, results)
    print_times(times, time.perf_counter() - start)
    print(f"submission -> {args.out}")
    return report_failures(times.failures, times.frames)


def _format_rows(data: Path) -> int | None:
    """Sequences in ``data/submission_format.csv`` (its lines less the header), for the progress bar's total."""
    try:
        with open(data / "submission_format.csv", "rb") as f:
            return max(0, sum(1 for line in f if line.strip()) - 1)
    except OSError:
        return None


def _package(args: argparse.Namespace) -> int:
    from submission.package import build_package

    out = build_package(args.detector, args.classifier, args.fusion, out_path(args.out, "package"))
    print(f"package -> {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _run_submission(args: argparse.Namespace) -> int:
    from camtrap.dataset import read_labels
    from camtrap.metric import per_class_log_loss, read_submission
    from submission.harness import Limits, run_submission

    out_path(args.out, "submission file")
    out = run_submission(args.zip, args.data, args.out, allow_network=args.allow_network,
                         time_budget_s=args.time_budget, limits=Limits(time_s=args.time_limit))  # fmt: skip
    print(f"submission -> {out}")
    if args.labels:
        losses = per_class_log_loss(read_submission(out), read_labels(args.labels))
        print(f"{losses.mean():.10f}")
    return 0
