"""Classifier subcommands: ``classifier train``, ``classifier export-onnx`` and ``classify``."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from camtrap.dataset import read_train
from camtrap.fileio import atomic_write_csv
from classifier.backbones import BACKBONES, DEFAULT_BACKBONE
from classifier.data import crop_samples, csv_samples, frame_samples
from classifier.onnx import export_onnx
from classifier.predict import (
    classify_detections,
    classify_paths,
    load,
    with_classifications,
    write_predictions,  # fmt: skip
)
from classifier.train import BALANCE_CHOICES, ClassifierTrainConfig, train
from detector.crops import CropConfig
from detector.mdjson import read_results, write_results
from submission.commands import UsageError

__all__ = ["register"]
SOURCES = ("crops", "frames", "csv")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the classifier's subcommands to the ``hakuna`` parser."""
    clf = sub.add_parser("classifier", help="train or export a species classifier").add_subparsers(
        dest="action", required=True)  # fmt: skip
    p = clf.add_parser("train", help="train a classifier on crops, whole frames or a path,label CSV")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="competition-layout dataset folder (as `hakuna synth` writes)")
    src.add_argument("--images-csv", type=Path, help="CSV with path,label[,group_id] columns")
    p.add_argument("--detections", type=Path, help="detector results JSON for the training images (crops mode)")
    p.add_argument("--source", choices=SOURCES[:2], default="crops", help="with --data: crops (two-stage) or frames")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (.pt)")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default=DEFAULT_BACKBONE)
    p.add_argument("--input-size", type=int, help="input width in pixels (default: the backbone's)")
    p.add_argument("--no-pretrained", action="store_true", help="random initialisation (ablations)")
    p.add_argument("--pretrained-weights", type=Path, help="ImageNet weights file for torchvision backbones")
    p.add_argument("--epochs", type=int, default=ClassifierTrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=ClassifierTrainConfig.batch_size)
    p.add_argument("--lr", type=float, default=ClassifierTrainConfig.lr)
    p.add_argument("--balance", choices=BALANCE_CHOICES, default=ClassifierTrainConfig.balance)
    p.add_argument("--det-threshold", type=float, default=CropConfig.threshold, help="detections kept as crops")
    p.add_argument("--resume", action="store_true", help="continue from OUT.last.pt")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--cache-dir", type=Path, help="decoded-image cache (default: next to --out)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_train)

    p = clf.add_parser("export-onnx", help="export a classifier to ONNX (probabilities out, spec in metadata)")
    p.add_argument("model", type=Path)
    p.add_argument("--out", type=Path)
    p.set_defaults(handler=_export)

    p = sub.add_parser("classify", help="classify detection crops (or whole images) with a trained classifier")
    p.add_argument("--model", required=True, type=Path, help="classifier .pt or .onnx")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--detections", type=Path, help="results JSON; its crops are classified")
    src.add_argument("--images-csv", type=Path, help="CSV with a path column; whole images are classified")
    p.add_argument("--images", type=Path, help="image root of the results JSON")
    p.add_argument("--out", required=True, type=Path, help="predictions CSV")
    p.add_argument("--results-out", type=Path, help="also write the results JSON with classifications added")
    p.add_argument("--threshold", type=float, default=CropConfig.threshold, help="detections classified")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped crop")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_classify)


def _samples(args: argparse.Namespace, threshold: float, margin: float):
    if args.images_csv is not None:
        return csv_samples(args.images_csv)
    data = read_train(args.data / "train" / "train_metadata.csv", args.data / "train" / "train_labels.csv",
                      args.data / "train")  # fmt: skip
    if args.source == "frames":
        return frame_samples(data)
    if args.detections is None:
        raise UsageError("crops mode needs --detections (run `hakuna detect` on the training images first)")
    return crop_samples(data, read_results(args.detections), threshold=threshold, margin=margin)


def _train(args: argparse.Namespace) -> int:
    pretrained = False if args.no_pretrained else (str(args.pretrained_weights) if args.pretrained_weights else True)
    cfg = ClassifierTrainConfig(backbone=args.backbone, input_size=args.input_size, pretrained=pretrained,
                                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, balance=args.balance,
                                device=None if args.device == "auto" else args.device)  # fmt: skip
    samples = _samples(args, args.det_threshold, cfg.margin)
    bars: list[tqdm] = []

    def progress(stage: str, epoch: int, total: int):
        for b in bars:
            b.close()
        bars[:] = [tqdm(total=total, desc=f"{stage} {epoch}" if epoch else stage, unit="img", disable=args.no_progress)]
        return bars[0].update

    result = train(samples, args.out, cfg, cache_dir=args.cache_dir or args.out.with_suffix(".cache"),
                   resume=args.resume, progress=progress)  # fmt: skip
    for b in bars:
        b.close()
    last = result.history[-1]
    print(f"classifier -> {result.model_path} (val top-1 {last['val_top1']:.3f} after epoch {last['epoch']})")
    return 0


def _export(args: argparse.Namespace) -> int:
    print(f"ONNX -> {export_onnx(args.model, args.out or args.model.with_suffix('.onnx'))}")
    return 0


def _classify(args: argparse.Namespace) -> int:
    clf = load(args.model, device=None if args.device == "auto" else args.device)
    if args.images_csv is not None:
        import pandas as pd

        paths = [args.images_csv.parent / p for p in pd.read_csv(args.images_csv, dtype=str)["path"]]
        with tqdm(total=len(paths), desc="classify", unit="img", disable=args.no_progress) as bar:
            preds = classify_paths(clf, paths, batch_size=args.batch_size, tta=args.tta, progress=bar.update)
        rows = [{"path": p.path, "failure": p.failure or "",
                 **dict(zip(clf.spec.classes, p.probs or [float("nan")] * len(clf.spec.classes)))} for p in preds]
        atomic_write_csv(args.out, pd.DataFrame(rows), index=False)
        print(f"{len(preds)} images ({sum(p.probs is None for p in preds)} unreadable) -> {args.out}")
        return 0
    if args.images is None:
        raise UsageError("--detections needs --images (the image root)")
    results = read_results(args.detections)
    crop_cfg = CropConfig(threshold=args.threshold)
    with tqdm(desc="classify", unit="crop", disable=args.no_progress) as bar:
        preds = classify_detections(clf, results, args.images, crop_cfg, batch_size=args.batch_size, tta=args.tta,
                                    progress=bar.update)  # fmt: skip
    write_predictions(args.out, preds, clf.spec.classes, args.top_k)
    if args.results_out:
        write_results(args.results_out, with_classifications(results, preds, clf.spec.classes, args.top_k))
    print(f"{len(preds)} crops -> {args.out}")
    return 0
