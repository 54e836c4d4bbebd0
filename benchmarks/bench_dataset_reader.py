"""Reading speed of the metadata and labels tables at competition scale (prints rows/s; no pass/fail).

Usage: python benchmarks/bench_dataset_reader.py [--rows 2600000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.dataset import read_labels, read_metadata
from camtrap.labels import COLUMNS


def write_tables(folder: Path, rows: int) -> tuple[Path, Path]:
    """Competition-shaped CSVs: ``rows`` images in 3-frame sequences, and one label row per sequence."""
    n_seq = rows // 3 + 1
    seq = np.repeat(np.arange(n_seq), 3)[:rows]
    season = 1 + seq % 10
    seq_ids = pd.Series([f"SER_S{s}#B{q % 97:02d}#1#{q}" for s, q in zip(season, seq)])
    frame = np.arange(rows) % 3 + 1
    files = [f"S{s}/B{q % 97:02d}/B{q % 97:02d}_R1/S{s}_B{q % 97:02d}_R1_PICT{q * 3 + f:07d}.JPG"
             for s, q, f in zip(season, seq, frame)]  # fmt: skip
    meta = pd.DataFrame({"seq_id": seq_ids, "file_name": files, "datetime": "2010-07-18 16:26:14"})
    meta.to_csv(folder / "train_metadata.csv", index=False)
    rng = np.random.default_rng(0)
    labels = np.zeros((n_seq, len(COLUMNS)), np.int8)
    labels[np.arange(n_seq), rng.integers(0, len(COLUMNS), n_seq)] = 1
    ids = pd.Index(seq_ids.drop_duplicates().to_numpy(), name="seq_id")
    pd.DataFrame(labels[: len(ids)], index=ids, columns=list(COLUMNS)).to_csv(folder / "train_labels.csv")
    return folder / "train_metadata.csv", folder / "train_labels.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_600_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        meta_path, labels_path = write_tables(Path(tmp), args.rows)
        print(f"wrote {args.rows:,} metadata rows in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        meta = read_metadata(meta_path, require_season=True)
        dt = time.perf_counter() - t0
        print(f"read_metadata: {len(meta):,} rows in {dt:.2f} s = {len(meta) / dt:,.0f} rows/s")
        t0 = time.perf_counter()
        labels = read_labels(labels_path)
        dt = time.perf_counter() - t0
        print(f"read_labels:   {len(labels):,} rows in {dt:.2f} s = {len(labels) / dt:,.0f} rows/s")


if __name__ == "__main__":
    main()
