"""``hakuna train``: detector, crop classifier, fusion, ONNX and ``submission.zip`` from one training layout."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from hakuna.commands import UsageError
from hakuna.commands.common import add_device, add_engine, device_of, engine_config, int_in

__all__ = ["register"]

RECIPES = ("auto", "fewshot", "full")


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to the ``hakuna`` parser."""
    p = sub.add_parser("train", help="train the whole system on a training layout: detect -> classifier -> fusion "
                                     "-> ONNX -> submission.zip -> report.md (resumable, finished steps skipped)")
    p.add_argument("--data", required=True, type=Path, help="dataset folder with train/ (`data lila` or `synth`)")
    p.add_argument("--detector",
                   help="mdv5a, mdv5b (or another release of `weights list`: fetched into the cache) or a detector "
                        "file; default: train a YOLO on the layout's boxes")
    p.add_argument("--boxes", type=Path,
                   help="boxes to train a detector on (default: DATA/lila/SnapshotSerengetiBboxes_*.json)")
    p.add_argument("--out", required=True, type=Path, help="models folder (MODELS): every step's output, report.md")
    p.add_argument("--recipe", choices=RECIPES, default="auto", help="crop classifier recipe (auto: by data size)")
    p.add_argument("--val-seasons", type=int_in(1, 999), nargs="+", metavar="N",
                   help="seasons kept for fitting fusion (default: the latest training season)")
    p.add_argument("--one-stage", action="store_true", help="also train the one-stage whole-frame baseline")
    p.add_argument("--classifier-epochs", type=int_in(1, 10_000), default=10, help="full recipe: epochs")
    p.add_argument("--classifier-size", type=int_in(16, 2048), help="classifier input (default: the backbone's)")
    p.add_argument("--detector-epochs", type=int_in(1, 10_000), default=40, help="when training a detector")
    p.add_argument("--detector-imgsz", type=int_in(32, 4096), default=320, help="when training a detector")
    add_device(p)
    add_engine(p)
    p.set_defaults(handler=_train)


def _config(args: argparse.Namespace):
    from classifier.config import ClassifierTrainConfig
    from detector.train import DetectorTrainConfig
    from hakuna.train import TrainConfig

    if args.classifier_epochs < 1 or args.detector_epochs < 1:
        raise UsageError("--classifier-epochs and --detector-epochs must be at least 1")
    clf = ClassifierTrainConfig(recipe=args.recipe, epochs=args.classifier_epochs, input_size=args.classifier_size)
    device = device_of(args)
    det = DetectorTrainConfig(epochs=args.detector_epochs, imgsz=args.detector_imgsz, device=device or "cpu")
    if device is None:
        from camtrap.devices import resolve_device

        det = dataclasses.replace(det, device=resolve_device(None))
    return TrainConfig(detector=args.detector, boxes=args.boxes, val_seasons=tuple(args.val_seasons or ()),
                       detector_train=det, classifier=clf,
                       one_stage=dataclasses.replace(clf, recipe="full") if args.one_stage else None,
                       engine=engine_config(args), device=device)  # fmt: skip


def _train(args: argparse.Namespace) -> int:
    from hakuna.train import run_training

    paths = run_training(args.data, args.out, _config(args))
    print(f"submission.zip -> {paths['zip']}")
    print(f"report -> {paths['report']}")
    return 0
