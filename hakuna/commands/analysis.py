"""Subcommands for ecologists and research: ``review`` (static crop review site), ``ablate`` (one-stage vs
two-stage), ``evaluate`` (the full pipeline on labelled photos)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from hakuna.commands import UsageError
from hakuna.commands.common import (
    add_device,
    add_engine,
    add_outside_root,
    add_trust,
    detector_file,
    engine_config,
    int_in,
)

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``review``, ``ablate`` and ``evaluate`` to the ``hakuna`` parser."""
    p = sub.add_parser("review", help="write a static HTML review site of crops, sequences and failures")
    p.add_argument("--results", required=True, type=Path, help="results JSON (with classifications)")
    p.add_argument("--images", required=True, type=Path, help="image root of the results")
    p.add_argument("--predictions", type=Path, help="fused sequence probabilities (submission.csv)")
    p.add_argument("--metadata", type=Path,
                   help="the images' *_metadata.csv: file -> seq_id, and per-season folders under --images resolved "
                        "as detect --metadata does (default: IMAGES/test_metadata.csv if present, for sequences)")
    p.add_argument("--out", required=True, type=Path)
    add_outside_root(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_review)

    p = sub.add_parser("ablate", help="one-stage vs two-stage (and fusion ablated) on the same season split")
    p.add_argument("--data", required=True, type=Path,
                   help="dataset folder with train/ and a labelled test/ (as `synth` writes), or only train/ (as "
                        "`data lila` writes: its latest season is held out for evaluation)")
    p.add_argument("--models", type=Path, help="models folder (default OUT/models; missing models are trained)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0,
                   help="recorded with the run; training is seeded with it")
    p.add_argument("--detector", help="release name or detector file (default: train one on the layout's boxes)")
    p.add_argument("--boxes", type=Path, help="boxes to train a detector on (default: DATA/lila/SnapshotSerengeti"
                                              "Bboxes_*.json, as `data lila --boxes` writes)")
    p.set_defaults(handler=_ablate)

    p = sub.add_parser("evaluate", help="run the full pipeline on labelled photos (path,label[,seq_id][,group_id] CSV)")
    p.add_argument("--images-csv", required=True, type=Path)
    p.add_argument("--root", type=Path, help="folder the CSV's paths are relative to (default: the CSV's folder)")
    p.add_argument("--detector", required=True, type=detector_file)
    p.add_argument("--classifier", required=True, type=Path)
    p.add_argument("--fusion", required=True, type=Path)
    add_device(p)
    add_engine(p)
    add_trust(p)
    add_outside_root(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_evaluate)


def _review(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from camtrap.dataset import read_metadata
    from camtrap.mdjson import read_results
    from camtrap.metric import read_submission
    from hakuna.commands.detect import results_frames
    from hakuna.review import ReviewConfig, build_review

    results = read_results(args.results)
    meta_path = args.metadata or (args.images / "test_metadata.csv")
    seq_of, frames = None, None
    if meta_path.exists():
        meta = read_metadata(meta_path)
        seq_of = dict(zip(meta["file_name"], meta["seq_id"]))
    elif args.metadata:
        raise UsageError(f"--metadata {args.metadata} not found")
    if args.metadata:  # the frame source detect --metadata reads: per-season folders resolved the same way
        frames = {ref.file: ref for ref in results_frames(args, results)}
    preds = read_submission(args.predictions) if args.predictions else None
    with tqdm(total=len(results.frames), desc="review", unit="img", disable=args.no_progress) as bar:
        index = build_review(results, args.images, args.out, seq_of=seq_of, predictions=preds, progress=bar.update,
                             cfg=ReviewConfig(allow_outside_root=args.allow_outside_root),
                             frames=frames)  # fmt: skip
    print(f"review site -> {index}")
    return 0


def _ablate(args: argparse.Namespace) -> int:
    from hakuna.ablate import run_ablation
    from hakuna.demo import DemoConfig
    from hakuna.report import ablation_table

    cfg = DemoConfig()
    cfg = dataclasses.replace(cfg, synth=dataclasses.replace(cfg.synth, seed=args.seed))
    training = dataclasses.replace(cfg.training(), detector=args.detector, boxes=args.boxes)
    rows = run_ablation(args.data, args.models or args.out / "models", args.out, cfg, training=training)
    print(ablation_table(rows))
    print(f"report -> {args.out / 'report.md'}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from camtrap.failures import report_failures
    from fusion import FusionModel
    from hakuna.bindings import check_fusion
    from hakuna.commands.run import load_models
    from hakuna.evaluate import evaluate_predictions, images_csv_as_sequences
    from hakuna.pipeline import PipelineConfig, StageTimes, predict_sequences

    detector, classifier = load_models(args)
    fusion = check_fusion(FusionModel.load(args.fusion), detector, classifier)
    part = images_csv_as_sequences(args.images_csv, args.root, fusion.classes)
    cfg = PipelineConfig(engine=engine_config(args))
    times = StageTimes()
    with tqdm(total=len(part.seq_ids), desc="evaluate", unit="seq", disable=args.no_progress) as bar:
        pred, results = predict_sequences(part, detector, classifier, fusion, cfg, keep_results=True, times=times,
                                          progress=bar.update)  # fmt: skip
    print(evaluate_predictions(pred, part.labels).summary())
    return report_failures([(f.file, f.failure) for f in results.frames if not f.ok], len(results.frames))
