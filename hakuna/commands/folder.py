"""Folder mode of ``hakuna predict``: ``--images DIR`` and the options that form sequences and call species."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hakuna.commands import UsageError

__all__ = ["add_folder_args", "predict_folder_command", "summary_line"]


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
        return value

    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text}")
    return value


def add_folder_args(p: argparse.ArgumentParser) -> None:
    """Options of folder mode (``--images``)."""
    g = p.add_argument_group("folder mode (--images)")
    g.add_argument("--recursive", action="store_true", help="also read the photos in sub-folders")
    g.add_argument("--camera-depth", type=_positive(int), metavar="N",
                   help="the camera is the first N folders of a photo's path (default: its whole folder)")
    g.add_argument("--sequence-gap", type=_positive(float), default=60.0, metavar="SECONDS",
                   help="a new sequence starts when a camera's next photo is more than this later (default 60)")
    g.add_argument("--max-frames", type=_positive(int), metavar="N",
                   help="bursts longer than N photos are cut into sequences of at most N (reported)")
    g.add_argument("--sequences", type=Path, metavar="CSV",
                   help="take sequences from a file,seq_id CSV (file relative to --images) instead of forming them")
    g.add_argument("--no-mtime", action="store_true",
                   help="photos without EXIF DateTimeOriginal get no time (each its own sequence), not the file's "
                        "modification time")
    g.add_argument("--species-threshold", type=_fraction, default=0.5,
                   help="a class is listed in sequences.csv's species when its probability is at least this "
                        "(default 0.5; the most probable class when none is and the sequence is not empty)")
    g.add_argument("--empty-threshold", type=_fraction, default=0.5,
                   help="a sequence is called empty when P(empty) is at least this (default 0.5)")
    g.add_argument("--no-review", action="store_true", help="do not build review/index.html")


def _folder_cfg(args: argparse.Namespace):
    from hakuna.folder import FolderConfig

    if args.max_frames == 0:
        raise UsageError("--max-frames must be at least 1")
    return FolderConfig(recursive=args.recursive, camera_depth=args.camera_depth, gap_s=args.sequence_gap,
                        max_frames=args.max_frames, sequences_csv=args.sequences, use_mtime=not args.no_mtime,
                        species_threshold=args.species_threshold, empty_threshold=args.empty_threshold,
                        review=not args.no_review)  # fmt: skip


def summary_line(run, cfg, out: Path) -> str:
    """``"4 of 22 sequences with an animal, 2 unreadable; outputs in out/: sequences.csv, ..., review/index.html"``
    (the real paths, relative to ``out``)."""
    unreadable = len(run.unreadable)
    files = ", ".join(Path(p).relative_to(out).as_posix() for p in run.outputs.values())
    return (f"{run.with_animal(cfg)} of {len(run.sequences)} sequences with an animal"
            f"{f', {unreadable} unreadable (no frame could be read)' if unreadable else ''}; "
            f"outputs in {out}/: {files}")


def predict_folder_command(args: argparse.Namespace) -> int:
    """``hakuna predict --images DIR ... --out OUTDIR``."""
    from tqdm import tqdm

    from camtrap.failures import report_failures
    from fusion import FusionModel
    from hakuna.commands.common import engine_config
    from hakuna.commands.run import load_models, print_times
    from hakuna.folder import predict_folder
    from hakuna.pipeline import PipelineConfig

    if args.engine == "ray" or args.resume or args.time_budget is not None:
        raise UsageError("folder mode (--images) runs on this machine: no --engine ray, --resume or --time-budget")
    if not args.images.is_dir():
        raise UsageError(f"--images {args.images}: not a folder")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: with --images, --out is a folder")
    cfg = _folder_cfg(args)
    detector, classifier = load_models(args)
    fusion = FusionModel.load(args.fusion) if args.fusion else None
    pipeline = PipelineConfig(engine=engine_config(args), tta=args.tta)
    start = time.perf_counter()
    with tqdm(desc="predict", unit="seq", disable=args.no_progress) as bar:
        run = predict_folder(args.images, args.out, detector, classifier, fusion, cfg, pipeline,
                             progress=bar.update, on_total=lambda n: setattr(bar, "total", n))  # fmt: skip
    print(run.report.summary())
    print(f"fusion: {run.fusion}")
    print_times(run.times, time.perf_counter() - start)
    print(summary_line(run, cfg, args.out))
    failures = [(f.file, f.failure) for f in run.results.frames if not f.ok]
    return report_failures(failures, len(run.results.frames))
