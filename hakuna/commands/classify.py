"""Classifier subcommands: ``classifier train``, ``classifier export-onnx``, ``classifier convert`` and ``classify``.

Heavy modules (torch) are imported inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from classifier.backbones import BACKBONES, DEFAULT_BACKBONE
from classifier.config import BALANCE_CHOICES as BALANCE
from classifier.config import RECIPES
from classifier.cv import CV_RECIPES, OPTION_NAMES
from hakuna.commands import UsageError
from hakuna.commands.common import (
    add_device,
    add_engine,
    add_outside_root,
    add_ray,
    add_trust,
    device_of,
    engine_config,
    float_in,
    int_in,
    out_path,
    ray_source,
)

__all__ = ["register"]
SOURCES = ("crops", "frames")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the classifier's subcommands to the ``hakuna`` parser."""
    clf = sub.add_parser("classifier", help="train, export or convert a species classifier").add_subparsers(
        dest="action", required=True)  # fmt: skip
    _add_train(clf)
    _add_cv(clf)
    _add_tools(clf)
    _add_classify(sub)


def _add_train(clf: argparse._SubParsersAction) -> None:
    p = clf.add_parser("train", help="train a classifier on crops, whole frames or a path,label CSV")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, help="competition-layout dataset folder (as `hakuna synth` writes)")
    src.add_argument("--images-csv", type=Path, help="CSV with path,label[,seq_id][,group_id] columns (with "
                     "--corrections: the labelled photos the corrections are added to)")
    p.add_argument("--corrections", type=Path, help="corrections.csv downloaded from a review site (with --images); "
                                                    "alone or added to --images-csv")
    p.add_argument("--images", type=Path, help="with --corrections: the image root the review site was built from")
    p.add_argument("--root", type=Path, help="with --images-csv: folder its paths are relative to (default: the CSV's)")
    p.add_argument("--include-unreviewed", action="store_true",
                   help="with --corrections: also learn from crops nobody reviewed (their predicted label, or their "
                        "sequence's one-species verdict); default: only crops a person confirmed or relabelled")
    p.add_argument("--reviewed-only", action="store_true", help=argparse.SUPPRESS)  # the default now; older scripts
    p.add_argument("--review", type=Path,
                   help="with --corrections: the review site (its folder) the corrections came from: warn about the "
                        "classes of its classifier that the new model would not learn")
    p.add_argument("--detections", type=Path, help="detector results JSON for the training images (crops mode)")
    p.add_argument("--source", choices=SOURCES, default="crops", help="with --data: crops (two-stage) or frames")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (.pt)")
    p.add_argument("--backbone", choices=sorted(BACKBONES), default=DEFAULT_BACKBONE)
    p.add_argument("--input-size", type=int_in(16, 4096), help="input width in pixels (default: the backbone's)")
    p.add_argument("--no-pretrained", action="store_true", help="random initialisation (ablations)")
    p.add_argument("--pretrained-weights", type=Path, help="ImageNet weights file for torchvision backbones")
    p.add_argument("--epochs", type=int_in(1, 100_000), default=10)
    p.add_argument("--batch-size", type=int_in(1, 4096), default=32)
    p.add_argument("--lr", type=float_in(0, 10, low_open=True), default=1e-3)
    p.add_argument("--balance", choices=BALANCE, default="sqrt")
    p.add_argument("--recipe", choices=RECIPES, default="auto",
                   help="fewshot: frozen backbone + head chosen by group CV (few hundred photos); full: fine-tune "
                        "everything; auto: fewshot while the median class has at most 50 samples")
    _fewshot_backbones(p)
    p.add_argument("--det-threshold", type=float_in(0, 1),
                   help="detections kept as crops (default: the detector's animal threshold, from the results file)")
    p.add_argument("--resume", action="store_true", help="continue from OUT.last.pt")
    p.add_argument("--nproc-per-node", type=int_in(1, 1024), default=1,
                   help="train with N processes (DistributedDataParallel: gloo on CPU, NCCL with one GPU each)")
    add_device(p)
    p.add_argument("--cache-dir", type=Path, help="decoded-image cache (default: next to --out)")
    add_outside_root(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_train)


def _add_cv(clf: argparse._SubParsersAction) -> None:
    p = clf.add_parser("cv", help="group-aware K-fold comparison of training recipes on labelled photos")
    p.add_argument("--images-csv", required=True, type=Path, help="CSV with path,label[,seq_id][,group_id] columns")
    p.add_argument("--root", type=Path, help="folder the CSV's paths are relative to (default: the CSV's folder)")
    p.add_argument("--folds", type=int_in(2, 1000), default=5)
    p.add_argument("--recipes", nargs="+", choices=CV_RECIPES, default=list(CV_RECIPES))
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    _fewshot_backbones(p)
    p.add_argument("--cache-dir", type=Path, help="decoded images and features (default: ~/.cache/hakuna/cv)")
    p.add_argument("--json", type=Path, help="also write every figure (per-class recall, choices per fold) here")
    p.add_argument("--options", nargs="*", choices=OPTION_NAMES, metavar="NAME",
                   help="also cross-validate the few-shot recipe under each option (all without names: "
                        f"{', '.join(OPTION_NAMES)}): one table")
    p.add_argument("--unlabelled-rows", action="store_true",
                   help="self-training also pseudo-labels the CSV's rows whose label is not a class (more features "
                        "to extract); without it, only the held-out photos are its unlabelled pool")
    p.add_argument("--boxes", type=Path, metavar="JSON",
                   help="a MegaDetector results file or COCO Camera Traps boxes: photos it covers become crops of "
                        "their best box; the recipes also run on whole photos and both are scored on those photos")
    p.add_argument("--no-progress", action="store_true")
    add_device(p)
    add_outside_root(p)
    p.set_defaults(handler=_cv)


def _add_tools(clf: argparse._SubParsersAction) -> None:
    p = clf.add_parser("export-onnx", help="export a classifier to ONNX (probabilities out, spec in metadata)")
    p.add_argument("model", type=Path)
    p.add_argument("--out", type=Path)
    p.set_defaults(handler=_export)

    p = clf.add_parser("convert", help="rewrite a classifier checkpoint that needs pickle as plain tensors + spec")
    p.add_argument("model", type=Path)
    p.add_argument("--out", type=Path, help="default: MODEL with .converted.pt")
    add_trust(p)
    p.set_defaults(handler=_convert)


def _add_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify detection crops (or whole images) with a trained classifier")
    p.add_argument("--model", "--classifier", dest="model", required=True, type=Path, help="classifier .pt or .onnx")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--detections", type=Path, help="results JSON; its crops are classified")
    src.add_argument("--images-csv", type=Path, help="CSV with a path column; whole images are classified")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--images", type=Path, help="image root of the results JSON (files directly under it)")
    where.add_argument("--data", type=Path, help="dataset folder whose train/ part the results describe")
    p.add_argument("--root", type=Path, help="with --images-csv: folder its relative paths are under (default: "
                                             "--images, else the CSV's folder); absolute paths are used as given")
    p.add_argument("--metadata", type=Path,
                   help="with --images: the images' *_metadata.csv (per-season folders resolved as detect does)")
    p.add_argument("--out", required=True, type=Path, help="predictions CSV")
    p.add_argument("--results-out", type=Path, help="also write the results JSON with classifications added")
    p.add_argument("--threshold", type=float_in(0, 1),
                   help="detections classified (default: the detector's, from the results)")
    p.add_argument("--top-k", type=int_in(1, 10_000), default=3)
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped crop")
    add_engine(p, batch=32)
    add_device(p)
    add_trust(p)
    add_outside_root(p)
    add_ray(p)
    p.add_argument("--resume", action="store_true", help="with --engine ray: skip the shards already finished")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_classify)


def _fewshot_backbones(p: argparse.ArgumentParser) -> None:
    from classifier.config import FewShotConfig

    p.add_argument("--fewshot-backbones", nargs="+", choices=sorted(BACKBONES), default=list(FewShotConfig.backbones),
                   help="few-shot: backbones to try (EfficientNet-Lite0/1/2 install with Hakuna; others are skipped "
                        "when their weights are not installed)")
    p.add_argument("--fewshot-finetune-epochs", type=int_in(0, 10_000), default=None, metavar="N",
                   help="few-shot: then fine-tune the backbone gently for up to N epochs, the count (0 keeps the "
                        "probe) chosen by group CV (LP-FT; minutes on a CPU; train default 0 = off, cv's "
                        "fewshot-ft recipe default 3)")


def _fewshot_cfg(args: argparse.Namespace):
    from classifier.config import FewShotConfig

    epochs = args.fewshot_finetune_epochs
    if epochs is not None and epochs < 0:
        raise UsageError(f"--fewshot-finetune-epochs must be 0 or more, not {epochs}")
    return FewShotConfig(backbones=tuple(args.fewshot_backbones), finetune_epochs=epochs or 0)


def _train_data(args: argparse.Namespace):
    from camtrap.dataset import read_train

    data = read_train(args.data / "train" / "train_metadata.csv", args.data / "train" / "train_labels.csv",
                      args.data / "train")  # fmt: skip
    if args.allow_outside_root:
        import dataclasses

        data = dataclasses.replace(data, allow_outside_root=True)
    return data


def _samples(args: argparse.Namespace):
    from camtrap.mdjson import read_results
    from classifier.data import crop_samples, csv_samples, frame_samples
    from detector.weights import results_threshold

    if args.corrections is not None:
        from hakuna.commands.corrections import correction_set

        return correction_set(args)
    if args.images_csv is not None:
        return csv_samples(args.images_csv, args.root)
    if args.data is None:
        raise UsageError("one of --data, --images-csv or --corrections is required")
    data = _train_data(args)
    if args.source == "frames":
        return frame_samples(data)
    if args.detections is None:
        raise UsageError("crops mode needs --detections (run `hakuna detect` on the training images first)")
    results = read_results(args.detections)
    threshold = args.det_threshold if args.det_threshold is not None else results_threshold(
        results, args.detections, "--det-threshold")
    return crop_samples(data, results, threshold=threshold)


def _train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from classifier.predict import read_checkpoint
    from classifier.recipes import resolve_recipe
    from classifier.train import ClassifierTrainConfig, train

    out_path(args.out, "checkpoint")
    pretrained = False if args.no_pretrained else (str(args.pretrained_weights) if args.pretrained_weights else True)
    cfg = ClassifierTrainConfig(backbone=args.backbone, input_size=args.input_size, pretrained=pretrained,
                                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, balance=args.balance,
                                device=device_of(args), recipe=args.recipe, fewshot=_fewshot_cfg(args))  # fmt: skip
    samples = _samples(args)
    bars: list = []

    def progress(stage: str, epoch: int, total: int):
        for b in bars:
            b.close()
        bars[:] = [tqdm(total=total, desc=f"{stage} {epoch}" if epoch else stage, unit="img", disable=args.no_progress)]
        return bars[0].update

    cache = args.cache_dir or args.out.with_suffix(".cache")
    if args.nproc_per_node > 1 and resolve_recipe(samples, cfg) == "full":
        from classifier.distributed import launch
        from classifier.spec import ModelSpec
        from classifier.train import TrainResult

        launch(args.nproc_per_node, samples, args.out, cfg, cache_dir=cache, resume=args.resume)
        saved = read_checkpoint(args.out)
        result = TrainResult(args.out, ModelSpec.from_json(saved["spec"]), tuple(saved["history"]))
    else:
        result = train(samples, args.out, cfg, cache_dir=cache, resume=args.resume, progress=progress)
    for b in bars:
        b.close()
    last = result.history[-1]
    if result.spec.training.get("recipe") == "fewshot":
        t = result.spec.training
        tuned = f", fine-tuned {t['finetune_epochs']} epoch(s)" if t.get("finetune_epochs") else ""
        views = t.get("views", t["resize"])
        print(f"classifier -> {result.model_path} (few-shot: {t['backbone']}, views {views}, L2 {t['l2']}{tuned}; "
              f"cross-validated top-1 {t['cv_top1']:.3f}, temperature {result.spec.temperature:.2f})")
    else:
        print(f"classifier -> {result.model_path} (val top-1 {last['val_top1']:.3f} after epoch {last['epoch']})")
    return 0


def _cv(args: argparse.Namespace) -> int:
    import functools
    import json
    import os

    from tqdm import tqdm

    from camtrap.fileio import atomic_write_json
    from classifier.cv import cross_validate, format_table, option_table
    from classifier.data import csv_samples, csv_unlabelled

    if args.json:
        out_path(args.json, "JSON file")
    samples = csv_samples(args.images_csv, args.root, skip_unknown=True)
    cache = args.cache_dir or Path(os.environ.get("HAKUNA_CACHE", Path.home() / ".cache" / "hakuna")) / "cv"
    cfg, bars = _fewshot_cfg(args), []

    def bar(stage: str, _epoch: int, total: int):
        quiet = True if args.no_progress else None  # None: a bar on a terminal only
        bars.append(tqdm(total=total, desc=stage, unit="img", disable=quiet))
        return bars[-1].update

    unlabelled = csv_unlabelled(args.images_csv, args.root, samples.classes,
                                allow_outside_root=args.allow_outside_root) if args.unlabelled_rows else None
    run = functools.partial(cross_validate, recipes=tuple(args.recipes), folds=args.folds, seed=args.seed,
                            cache_dir=cache, device=device_of(args), fewshot=cfg, say=print, bar=bar,
                            unlabelled=unlabelled)  # fmt: skip
    boxed = None
    if args.boxes:
        from classifier.boxes import read_box_file, with_boxes

        cropped, boxed = with_boxes(samples, read_box_file(args.boxes))
        whole = run(samples, subset=boxed)
        samples = cropped
    options = {k: v for k, v in option_table(cfg).items() if not args.options or k in args.options}
    results = run(samples, options=options if args.options is not None else None, subset=boxed)
    for b in bars:
        b.close()
    if boxed is not None:
        for w, c in zip(whole, results):
            a, b = w.notes.get("subset"), c.notes.get("subset")
            if a and b:
                print(f"{c.recipe} on the {b['photos']} photo(s) with boxes: top-1 {a['top1']:.3f} -> {b['top1']:.3f}, "
                      f"log loss {a['log_loss']:.3f} -> {b['log_loss']:.3f} (whole photo -> crop)")
    print(format_table(results))
    if args.json:
        atomic_write_json(args.json, json.loads(json.dumps([r.__dict__ for r in results], default=str)))
    return 0


def _export(args: argparse.Namespace) -> int:
    from classifier.onnx import export_onnx

    out = out_path(args.out or args.model.with_suffix(".onnx"), "ONNX file")
    print(f"ONNX -> {export_onnx(args.model, out)}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from classifier.predict import convert_checkpoint

    out = out_path(args.out or args.model.with_suffix(".converted.pt"), "checkpoint")
    if not args.trust_model:
        raise UsageError("converting unpickles the file, which can run code: pass --trust-model if you trust it")
    print(f"checkpoint -> {convert_checkpoint(args.model, out)}")
    return 0


def _classify_csv(args: argparse.Namespace, clf) -> int:
    import pandas as pd
    from tqdm import tqdm

    from camtrap.failures import report_failures
    from camtrap.fileio import DataError, atomic_write_csv, read_csv, spreadsheet_safe_table
    from camtrap.frames import frame_ref
    from classifier.predict import classify_paths

    table = read_csv(args.images_csv, dtype=str, keep_default_na=False)
    if "path" not in table.columns:
        raise DataError(args.images_csv, f"missing column 'path' (has {list(table.columns)})", line=1)
    root = args.root or args.images or args.images_csv.parent
    refs = [frame_ref(root, p, allow_outside_root=True) for p in table["path"]]
    with tqdm(total=len(refs), desc="classify", unit="img", disable=args.no_progress) as bar:
        preds = classify_paths(clf, refs, batch_size=args.batch_size, tta=args.tta, workers=args.workers,
                               progress=bar.update)  # fmt: skip
    columns = [f"p_{c}" for c in clf.spec.classes]  # p_: a class named path or failure cannot collide
    rows = [{"path": p.path, "failure": p.failure or "", **dict(zip(columns, p.probs or [""] * len(columns)))}
            for p in preds]  # fmt: skip
    table = pd.DataFrame(rows, columns=["path", "failure", *columns])
    atomic_write_csv(args.out, spreadsheet_safe_table(table), index=False)
    print(f"{len(preds)} images ({sum(p.probs is None for p in preds)} unreadable) -> {args.out}")
    return report_failures([(str(p.path), p.failure or "unreadable") for p in preds if p.probs is None], len(preds))


def _frame_source(args: argparse.Namespace, results) -> dict:
    if args.data is not None:
        refs = _train_data(args).frame_refs()
    elif args.images is not None:
        from hakuna.commands.detect import results_frames

        refs = results_frames(args, results)
    else:
        raise UsageError("--detections needs --images (the image root) or --data (a dataset folder)")
    return {r.file: r for r in refs}


def _classify_on_ray(args: argparse.Namespace, clf, results, frames: dict, threshold: float, progress) -> list:
    """The crops of ``results`` classified on a Ray cluster (decode tasks + a classifier actor pool)."""
    from camtrap.engine import wanted_detections
    from classifier.predict import CropClassifier, framing_notice

    if args.tta:
        raise UsageError("--engine ray does not take --tta")
    framing_notice(clf.spec, "crops")
    limit = CropClassifier(clf, threshold).max_crops_per_frame
    todo = [frames[f.file] for f in results.frames
            if f.file in frames and wanted_detections(f.detections, threshold, limit)]  # fmt: skip
    source = ray_source(args, None, clf, progress=progress, classifier_path=args.model,
                        detections=results.by_file(), crop_threshold=threshold)  # fmt: skip
    return [c for outcome in source(todo) for c in outcome.crops]


def _classify(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from camtrap.engine import wanted_detections
    from camtrap.failures import report_failures
    from camtrap.mdjson import read_results, write_results
    from classifier.predict import (
        CropClassifier,
        classify_detections,
        load,
        with_classifications,
        write_predictions,
    )
    from detector.weights import results_threshold

    out_path(args.out, "predictions file")
    if args.results_out:
        out_path(args.results_out, "results file")
    clf = load(args.model, device=device_of(args), trust_model=args.trust_model)
    if args.images_csv is not None:
        if args.engine == "ray":
            raise UsageError("--engine ray classifies the crops of --detections; --images-csv runs on this machine")
        return _classify_csv(args, clf)
    results = read_results(args.detections)
    threshold = args.threshold if args.threshold is not None else results_threshold(results, args.detections)
    frames = _frame_source(args, results)
    limit = CropClassifier(clf, threshold).max_crops_per_frame
    total = sum(1 for f in results.frames if f.file in frames and wanted_detections(f.detections, threshold, limit))
    failures: list[tuple[str, str]] = []
    with tqdm(total=total, desc="classify", unit="frame", disable=args.no_progress) as bar:
        if args.engine == "ray":
            preds = _classify_on_ray(args, clf, results, frames, threshold, bar.update)
        else:
            preds = classify_detections(clf, results, frames, threshold=threshold, tta=args.tta,
                                        cfg=engine_config(args), progress=bar.update, failures=failures)  # fmt: skip
    write_predictions(args.out, preds, clf.spec.classes, args.top_k)
    if args.results_out:
        write_results(args.results_out, with_classifications(results, preds, clf.spec.classes, args.top_k,
                                                             classifier=args.model.name))  # fmt: skip
    print(f"{len(preds)} crops -> {args.out}")
    return report_failures(failures, total, what="images with crops")
