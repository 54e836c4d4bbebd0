"""Arguments several subcommands share, and the configs built from them.  Light at import: no torch."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from camtrap.devices import DECODERS, DEVICES

__all__ = ["add_device", "add_engine", "add_trust", "add_outside_root", "engine_config", "device_of", "default_workers",
           "out_path"]


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=DEVICES, default="auto", help="where models run (auto: cuda if available)")


def add_engine(p: argparse.ArgumentParser, *, batch: int = 8) -> None:
    """Batch sizes, decoding threads and the decoder for commands that stream frames through the engine."""
    p.add_argument("--batch-size", type=int, default=batch, help="detector batch (frames)")
    p.add_argument("--classifier-batch", type=int, default=64, help="classifier batch (crops)")
    p.add_argument("--workers", type=int, default=default_workers(), help="decoding threads")
    p.add_argument("--decoder", choices=DECODERS, default="auto",
                   help="pil: CPU decode at reduced size; torch: torchvision/nvJPEG batches on the model's device; "
                        "auto: torch on CUDA, else pil")
    p.add_argument("--max-pixels", type=int, default=100_000_000, help="larger images are refused (a failure record)")


def add_trust(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-model", action="store_true",
                   help="load .pt files even if they need unrestricted pickle (can run code: only for files you trust)")


def add_outside_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-outside-root", action="store_true",
                   help="let image names (and symbolic links) lead outside the data folder")


def engine_config(args: argparse.Namespace, **overrides):
    """The :class:`camtrap.engine.EngineConfig` the engine arguments describe."""
    from camtrap.engine import EngineConfig

    values = {"detector_batch": args.batch_size, "classifier_batch": args.classifier_batch, "workers": args.workers,
              "decoder": args.decoder, "max_pixels": args.max_pixels}  # fmt: skip
    values.update(overrides)
    return EngineConfig(**values)


def device_of(args: argparse.Namespace) -> str | None:
    return None if args.device == "auto" else args.device


def out_path(path: Path, what: str = "output") -> Path:
    """Check ``path`` can be written before any work starts (see :func:`camtrap.fileio.check_writable`)."""
    from camtrap.fileio import check_writable

    return check_writable(path, what=what)
