"""``hakuna demo``: the README's main command, on an embedded default that needs no data or weights."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from hakuna.commands.common import int_in
from hakuna.demo import DemoConfig, format_scores, run_demo

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``hakuna`` parser."""
    p = sub.add_parser("demo", help="synthetic data -> train detector + classifier -> fuse -> package -> run -> score")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for everything the demo makes")
    p.add_argument("--sequences", type=int_in(1, 10**6), default=DemoConfig.synth.sequences)
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=DemoConfig.synth.seed)
    p.add_argument("--detector-epochs", type=int_in(1, 100_000), default=DemoConfig.detector_epochs)
    p.add_argument("--classifier-epochs", type=int_in(1, 100_000), default=DemoConfig.classifier_epochs)
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    synth = dataclasses.replace(DemoConfig.synth, sequences=args.sequences, seed=args.seed)
    cfg = dataclasses.replace(DemoConfig(), synth=synth, detector_epochs=args.detector_epochs,
                              classifier_epochs=args.classifier_epochs)  # fmt: skip
    scores = run_demo(args.out, cfg)
    print(format_scores(scores))
    print(f"everything is under {args.out}/ (scores.json, submission.csv, models/ with submission.zip and report.md, "
          "data/)")
    return 0
