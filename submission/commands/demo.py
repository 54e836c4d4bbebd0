"""``hakuna demo``: the README's main command, on an embedded default that needs no data or weights."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from camtrap.synth import SynthConfig
from submission.commands.data import print_summary, read_synth_dataset, synthesize

__all__ = ["register"]

DEMO_SYNTH = SynthConfig(sequences=400, seed=0, size=(1024, 768))


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``hakuna`` parser."""
    p = sub.add_parser("demo", help="generate a synthetic Serengeti dataset and run Hakuna on it")
    p.add_argument("--out", type=Path, default=Path("demo-out"), help="folder for everything the demo makes")
    p.add_argument("--sequences", type=int, default=DEMO_SYNTH.sequences)
    p.add_argument("--seed", type=int, default=DEMO_SYNTH.seed)
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    cfg = SynthConfig(sequences=args.sequences, seed=args.seed, size=DEMO_SYNTH.size)
    out = synthesize(cfg, args.out / "data", workers=args.workers, progress=not args.no_progress)
    print(f"synthetic dataset: {out.root}")
    print_summary(read_synth_dataset(out.root))
    return 0
