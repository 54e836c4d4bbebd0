"""Data subcommands: ``synth`` (make a synthetic dataset), ``summary`` (inspect a dataset), ``score``, and
``data lila`` / ``data test-part`` / ``data speciesnet``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hakuna.commands import UsageError
from hakuna.commands.common import default_workers, float_in, int_in

__all__ = ["register", "parse_size", "synthesize", "read_synth_dataset", "print_summary"]


def parse_size(text: str) -> tuple[int, int]:
    """``"512x384"`` -> (512, 384)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x384, got {text!r}") from None
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise argparse.ArgumentTypeError(f"width and height must be within 16..16384, got {text!r}")
    return w, h


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``synth``, ``summary`` and ``score`` to the ``hakuna`` parser."""
    p = sub.add_parser("synth", help="write a synthetic camera-trap dataset in the competition layout")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--sequences", type=int_in(1, 10**7), default=200, help="number of sequences (default 200)")
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    p.add_argument("--size", type=parse_size, default=(2048, 1536), help="frame size WxH (default 2048x1536)")
    p.add_argument("--train-seasons", type=int_in(1, 99), default=4,
                   help="seasons 1..N for training, N+1 is the test season")
    p.add_argument("--workers", type=int_in(1, 256), default=default_workers(), help="rendering processes")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_synth)

    p = sub.add_parser("summary", help="read a dataset (competition layout) and print what it holds")
    p.add_argument("--data", required=True, type=Path, help="a folder with train/ and/or test/data/ as `synth` writes")
    p.add_argument("--layout", choices=("season-folders", "flat"), default="season-folders",
                   help="where training images are under train/")
    p.set_defaults(handler=_summary)

    data = sub.add_parser("data", help="get real data and other tools' outputs").add_subparsers(dest="action",
                                                                                                 required=True)
    p = data.add_parser("lila", help="build the competition's training layout from LILA's Snapshot Serengeti release")
    p.add_argument("--out", required=True, type=Path, help="dataset folder to write (train/ and lila/ inside)")
    p.add_argument("--seasons", required=True, type=int, nargs="+", choices=range(1, 12), metavar="N",
                   help="seasons 1..11 to take")
    p.add_argument("--species", nargs="+", metavar="COLUMN", help="species columns to keep (default: all)")
    p.add_argument("--per-class", type=int_in(1, 10**9), help="at most this many sequences per species (seeded sample)")
    p.add_argument("--empty", type=float_in(0, 10**9), default=0.1,
                   help="empty sequences to keep: a fraction (<= 1) or a number (> 1); default 0.1")
    p.add_argument("--boxes", action="store_true", help="also write LILA's boxes of the chosen images")
    p.add_argument("--mirror", choices=("azure", "gcp", "aws"), default="azure", help="which of LILA's copies to read")
    p.add_argument("--base-url", default=None,
                   help="the container root of another mirror (what holds snapshotserengeti-v-2-0/ and "
                        "snapshotserengeti-unzipped/, e.g. https://.../lila-wildlife/); overrides --mirror")
    p.add_argument("--all-seasons-file", action="store_true",
                   help="read SnapshotSerengeti_S1-11_v2_1.json.zip (5.2 GB unzipped) instead of one file per season")
    p.add_argument("--dry-run", action="store_true",
                   help="fetch the metadata only; print how many sequences and images would be fetched (and GB)")
    p.add_argument("--workers", type=int_in(1, 256), default=8, help="concurrent downloads")
    p.add_argument("--retries", type=int_in(0, 100), default=3)
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=_lila)

    p = data.add_parser("test-part", help="turn one season of a training layout into the competition's test part "
                                          "(test_metadata.csv, submission_format.csv) and its answers")
    p.add_argument("--data", required=True, type=Path, help="dataset folder with train/ (`data lila` or `synth`)")
    p.add_argument("--season", required=True, type=int_in(1, 999), help="the season to hold out as the test part")
    p.add_argument("--labels", required=True, type=Path, help="where to write its answers (a labels CSV for score)")
    p.set_defaults(handler=_test_part)

    p = data.add_parser("speciesnet", help="turn SpeciesNet's predictions.json into a MegaDetector results file")
    p.add_argument("--predictions", required=True, type=Path, help="SpeciesNet's predictions.json")
    p.add_argument("--out", required=True, type=Path, help="results JSON to write")
    p.add_argument("--base-folder", help="leading folder to cut from SpeciesNet's file paths (makes them relative)")
    p.set_defaults(handler=_speciesnet)

    p = sub.add_parser("score", help="score a submission against labels (mean binary log loss over 54 columns)")
    p.add_argument("submission", type=Path)
    p.add_argument("labels", type=Path)
    p.add_argument("--per-class", action="store_true", help="also print each column's log loss")
    p.set_defaults(handler=_score)


def synthesize(cfg, out: Path, *, workers: int, progress: bool = True):
    """Generate with a tqdm bar; returns :class:`camtrap.synth.SynthOutput`."""
    from tqdm import tqdm

    from camtrap.synth import generate

    with tqdm(total=cfg.sequences, desc="synth", unit="seq", disable=not progress) as bar:
        return generate(cfg, out, workers=workers, progress=bar.update)


def read_synth_dataset(root: Path, layout: str = "season-folders") -> dict:
    """The parts found under ``root``: ``train`` (labelled), ``test`` (labelled when ``test_labels.csv`` exists)."""
    from camtrap.dataset import ImageLayout, SequenceSet, read_labels, read_test, read_train

    layout = ImageLayout(layout)
    parts: dict[str, SequenceSet] = {}
    if (root / "train" / "train_metadata.csv").exists():
        parts["train"] = read_train(root / "train" / "train_metadata.csv", root / "train" / "train_labels.csv",
                                    root / "train", layout)  # fmt: skip
    if (root / "test" / "data" / "test_metadata.csv").exists():
        test, _ = read_test(root / "test" / "data")
        if (root / "test" / "test_labels.csv").exists():
            test = SequenceSet(test.frames, read_labels(root / "test" / "test_labels.csv"), test.image_root)
        parts["test"] = test
    if not parts:
        raise UsageError(f"{root}: no train/train_metadata.csv nor test/data/test_metadata.csv")
    return parts


def print_summary(parts: dict) -> None:
    """What each part holds, one ``key: value`` line per figure."""
    for name, part in parts.items():
        print(f"[{name}]")
        for key, value in part.summary().items():
            print(f"  {key}: {json.dumps(value)}")


def _synth(args: argparse.Namespace) -> int:
    from camtrap.synth import SynthConfig

    if args.sequences < 1:
        raise UsageError("--sequences must be at least 1")
    cfg = SynthConfig(sequences=args.sequences, seed=args.seed, size=args.size, train_seasons=args.train_seasons)
    out = synthesize(cfg, args.out, workers=args.workers, progress=not args.no_progress)
    print_summary(read_synth_dataset(out.root))
    return 0


def _summary(args: argparse.Namespace) -> int:
    print_summary(read_synth_dataset(args.data, args.layout))
    return 0


def _score(args: argparse.Namespace) -> int:
    from camtrap.dataset import read_labels
    from camtrap.metric import per_class_log_loss, read_submission

    labels = read_labels(args.labels)
    losses = per_class_log_loss(read_submission(args.submission), labels)
    if args.per_class:
        for name, value in losses.items():
            print(f"{name:16s} {value:.6f}")
    print(f"{losses.mean():.10f}")
    return 0


def _lila_request(args: argparse.Namespace):
    from camtrap.labels import SPECIES
    from camtrap.lila_fetch import LILA_MIRRORS, LilaRequest

    unknown = [s for s in args.species or () if s not in SPECIES]
    if unknown:
        raise UsageError(f"--species {unknown} are not species columns")
    base = args.base_url or LILA_MIRRORS[args.mirror]
    return LilaRequest(tuple(args.seasons), tuple(args.species or ()), args.per_class, args.empty, args.boxes,
                       base if base.endswith("/") else base + "/", args.all_seasons_file, args.workers, args.retries,
                       seed=args.seed)  # fmt: skip


def _lila(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from camtrap.lila_fetch import build_lila_layout, plan_lila_layout

    req = _lila_request(args)
    if args.dry_run:
        plan = plan_lila_layout(req, args.out)
        print(f"would fetch {plan.missing_images} of {len(plan.part.frames)} images "
              f"({len(plan.part.seq_ids)} sequences), about {plan.estimated_gb:.2f} GB "
              f"(at Snapshot Serengeti's average 0.9 MB per image) from {req.base_url}")  # fmt: skip
        return 0
    with tqdm(desc="images", unit="img", disable=args.no_progress) as bar:
        def progress(p) -> None:
            bar.total = p.images
            bar.n = p.done
            bar.set_postfix_str(f"{p.mb_per_s:.1f} MB/s, about {p.estimated_total_gb:.2f} GB in all, {p.failed} failed",
                                refresh=False)  # fmt: skip
            bar.refresh()

        build = build_lila_layout(req, args.out, on_progress=progress)
    print(f"{build.sequences} sequences, {build.images} images ({build.failed_images} could not be fetched: "
          f"{args.out / 'train' / 'download_failures.csv'}) -> {args.out}")
    if build.images == 0:
        print(f"hakuna data lila: nothing was fetched from {req.base_url} (is it a LILA container root?)",
              file=sys.stderr)  # fmt: skip
        return 1
    print_summary(read_synth_dataset(args.out))
    return 0


def _test_part(args: argparse.Namespace) -> int:
    """The season's folder becomes a test part in place (its images already sit at ``<folder>/<file_name>``)."""
    import pandas as pd

    from camtrap.dataset import read_test, season_folder
    from camtrap.fileio import atomic_write_csv, read_csv
    from camtrap.labels import COLUMNS
    from hakuna.commands.common import out_path
    from hakuna.train import read_layout

    data = read_layout(args.data)  # checked: metadata, labels, per-season folders
    seq_ids = list(data.frames.loc[data.frames["season"] == args.season, "seq_id"].unique())
    folder = args.data / "train" / season_folder(args.season)
    if not seq_ids or not folder.is_dir():
        seasons = sorted(int(s) for s in data.frames["season"].dropna().unique())
        raise UsageError(f"--season {args.season}: no such season in {args.data}/train (has {seasons})")
    out_path(args.labels, "labels file")
    meta = read_csv(args.data / "train" / "train_metadata.csv", dtype=str, keep_default_na=False)
    atomic_write_csv(folder / "test_metadata.csv", meta[meta["seq_id"].isin(set(seq_ids))], index=False)
    atomic_write_csv(folder / "submission_format.csv", pd.DataFrame(0.0, index=pd.Index(seq_ids, name="seq_id"),
                                                                    columns=list(COLUMNS)))  # fmt: skip
    assert data.labels is not None
    atomic_write_csv(args.labels, data.labels.loc[seq_ids, list(COLUMNS)])
    part, _ = read_test(folder)
    print(f"season {args.season}: {len(seq_ids)} sequences, {len(part.frames)} frames -> {folder} (test_metadata.csv, "
          f"submission_format.csv); answers -> {args.labels}")  # fmt: skip
    print(f"next: hakuna run-submission MODELS/submission.zip --data {folder} --labels {args.labels} --out OUT.csv")
    return 0


def _speciesnet(args: argparse.Namespace) -> int:
    from camtrap.mdjson import write_results
    from camtrap.speciesnet import read_speciesnet
    from hakuna.commands.common import out_path

    out_path(args.out, "results file")
    results = read_speciesnet(args.predictions, base_folder=args.base_folder)
    write_results(args.out, results)
    print(f"{len(results.frames)} images ({sum(not f.ok for f in results.frames)} failed) -> {args.out}")
    return 0
