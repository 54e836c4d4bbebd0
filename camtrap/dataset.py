"""Reader for the Hakuna Ma-data data layout (training and test parts) and the season-based split.

Training part: ``train_metadata.csv`` (``seq_id, file_name, datetime``; one row per image) and
``train_labels.csv`` (``seq_id`` + the 54 0/1 columns; several may be 1).  Images live under per-season
folders, ``<root>/SnapshotSerengeti_S01_v2_0/S1/B04/B04_R1/S1_B04_R1_PICT0003.JPG``, or flat under the root.

Test part: ``<data>/test_metadata.csv`` and ``<data>/submission_format.csv``; images at ``<data>/<file_name>``.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.fileio import DataError, read_csv
from camtrap.frames import FrameRef, frame_ref
from camtrap.labels import COLUMNS, check_columns

__all__ = [
    "ImageLayout",
    "SequenceSet",
    "read_metadata",
    "check_metadata",
    "frame_number",
    "season_of",
    "read_labels",
    "read_train",
    "read_test",
    "season_split",
    "season_folder",
    "read_metadata_part",
    "SplitError",
]

log = logging.getLogger(__name__)

METADATA_COLUMNS = ("seq_id", "file_name", "datetime")
MAX_FRAME_NUMBER = 10**12


class ImageLayout(enum.Enum):
    """Where a part's images are, relative to its image root."""

    FLAT = "flat"  # <root>/<file_name>  (the test part, LILA's unzipped tree)
    SEASON_FOLDERS = "season-folders"  # <root>/SnapshotSerengeti_S01_v2_0/<file_name>  (competition training)


def season_folder(season: int) -> str:
    """The competition's per-season image folder name, e.g. ``SnapshotSerengeti_S01_v2_0``."""
    return f"SnapshotSerengeti_S{season:02d}_v2_0"


@dataclass(frozen=True)
class SequenceSet:
    """Frames (and, for training data, labels) of one dataset part.

    Attributes:
        frames: one row per image, columns ``seq_id, file_name, datetime, season, frame``, sorted by sequence
            then frame number.  ``season`` is <NA> where the seq_id carries none.
        labels: index ``seq_id``, the 54 columns as int8; None for an unlabelled (test) part.
        image_root: folder the ``file_name``s are relative to.
        layout: how ``file_name`` maps to a path under ``image_root``.
        allow_outside_root: let ``file_name``s (and symbolic links) lead outside ``image_root``; by default such
            frames are failures (see :mod:`camtrap.frames`).
    """

    frames: pd.DataFrame
    labels: pd.DataFrame | None
    image_root: Path
    layout: ImageLayout = ImageLayout.FLAT
    allow_outside_root: bool = False

    @property
    def seq_ids(self) -> pd.Index:
        """Sequence ids: the label order for labelled parts, first-appearance order otherwise."""
        if self.labels is not None:
            return self.labels.index
        return pd.Index(self.frames["seq_id"].unique(), name="seq_id")

    def frame_ref(self, file_name: str, seq_id: str = "", season: int | None = None) -> FrameRef:
        """Where one image is: the only place a ``file_name`` becomes a path (flat and season layouts alike)."""
        folder = None
        if self.layout is ImageLayout.SEASON_FOLDERS:
            if season is None or pd.isna(season):
                raise ValueError(f"season needed to place {file_name!r} under a season folder")
            folder = season_folder(int(season))
        return frame_ref(self.image_root, file_name, seq_id, folder=folder, allow_outside_root=self.allow_outside_root)

    def frame_refs(self) -> list[FrameRef]:
        """Every frame, in ``frames`` order (sequence by sequence, frames in order)."""
        cols = (self.frames[c].tolist() for c in ("file_name", "seq_id", "season"))
        return [self.frame_ref(f, q, s) for f, q, s in zip(*cols)]

    def subset(self, seq_ids: pd.Index | list[str]) -> SequenceSet:
        """The same part restricted to ``seq_ids`` (order kept from this set)."""
        keep = set(seq_ids)
        frames = self.frames[self.frames["seq_id"].isin(keep)].reset_index(drop=True)
        labels = None if self.labels is None else self.labels[self.labels.index.isin(keep)]
        return dataclasses.replace(self, frames=frames, labels=labels)

    def summary(self) -> dict[str, object]:
        """Counts for humans: sequences, images, seasons, frames per sequence, label frequencies."""
        per_seq = self.frames.groupby("seq_id", sort=False).size()
        out: dict[str, object] = {
            "sequences": int(self.frames["seq_id"].nunique()),
            "images": int(len(self.frames)),
            "seasons": sorted(int(s) for s in self.frames["season"].dropna().unique()),
            "frames_per_sequence": {int(k): int(v) for k, v in per_seq.value_counts().sort_index().items()},
        }
        if self.labels is not None:
            counts = self.labels.sum(axis=0)
            out["label_counts"] = {c: int(n) for c, n in counts[counts > 0].sort_values(ascending=False).items()}
            out["empty_fraction"] = float(self.labels["empty"].mean()) if len(self.labels) else 0.0
            out["multi_species_sequences"] = int(((self.labels.drop(columns="empty").sum(axis=1)) > 1).sum())
        return out


def _first_bad(mask: pd.Series | np.ndarray) -> int:
    """Position of the first True in a boolean mask."""
    return int(np.flatnonzero(np.asarray(mask))[0])


def read_metadata(path: str | os.PathLike[str], *, require_season: bool = False) -> pd.DataFrame:
    """Read a ``*_metadata.csv`` (one row per image) into the frames table of :class:`SequenceSet`.

    Raises:
        DataError: a missing column, an empty ``seq_id`` or ``file_name``, a repeated image, or (with
            ``require_season``) a ``seq_id`` without a season, naming the file and line.
    """
    path = Path(path)
    df = read_csv(path, dtype=str, keep_default_na=False, engine="c")
    return check_metadata(df, path, require_season=require_season)


def check_metadata(df: pd.DataFrame, source: Path, *, require_season: bool = False,
                   row_name: str | None = None) -> pd.DataFrame:
    """Validate and order an image table (columns ``seq_id, file_name[, datetime]``, str values).

    Errors name ``source`` and the CSV line (row + 2), or ``row_name[i]`` when the table came from JSON.
    """

    def bad(i: int, message: str) -> DataError:
        if row_name is None:
            return DataError(source, message, line=i + 2)
        return DataError(source, f"{row_name}[{i}]: {message}")

    for col in ("seq_id", "file_name"):
        if col not in df.columns:
            raise DataError(source, f"missing column {col!r} (has {list(df.columns)})", line=1)
        blank = df[col].astype(str).str.len() == 0
        if blank.any():
            raise bad(_first_bad(blank), f"empty {col}")
    df = df.assign(datetime=df["datetime"] if "datetime" in df.columns else "")[list(METADATA_COLUMNS)]
    dup = df["file_name"].duplicated()
    if dup.any():
        i = _first_bad(dup)
        first = _first_bad(df["file_name"] == df["file_name"].iat[i])
        raise bad(i, f"image {df['file_name'].iat[i]!r} listed twice (first for {df['seq_id'].iat[first]!r})")
    codes, uniques = pd.factorize(df["seq_id"])
    df["season"] = pd.array([season_of(u) for u in uniques], dtype="Int16")[codes]
    if require_season and df["season"].isna().any():
        i = _first_bad(df["season"].isna())
        raise bad(i, f"seq_id {df['seq_id'].iat[i]!r} has no season (expected 'SER_S<n>#...')")
    df["frame"] = np.fromiter((frame_number(f) for f in df["file_name"].tolist()), np.int64, len(df))
    # Stable sort keeps the file's sequence order while ordering each sequence's frames.
    df = df.assign(_o=codes).sort_values(["_o", "frame"], kind="stable")
    return df.drop(columns="_o").reset_index(drop=True)


def frame_number(file_name: str) -> int:
    """Trailing digits of a file name's stem (``S1_B04_R1_PICT0003.JPG`` -> 3); 0 when there are none; at most
    :data:`MAX_FRAME_NUMBER` (longer digit runs are not frame numbers, and must fit the frames table)."""
    dot = file_name.rfind(".")
    stem = file_name[:dot] if dot > max(file_name.rfind("/"), file_name.rfind("\\")) else file_name
    digits = len(stem) - len(stem.rstrip("0123456789"))
    return min(int(stem[len(stem) - digits :]), MAX_FRAME_NUMBER) if digits else 0


def season_of(seq_id: str) -> int | None:
    """Season number of a seq_id (``SER_S10#B03#1#4`` -> 10); None when it carries none (or more than three
    digits: no such season)."""
    if not seq_id.startswith("SER_S"):
        return None
    end = seq_id.find("#", 5)
    digits = seq_id[5:end] if end > 5 else ""
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 3:
        return None
    return int(digits)


def read_labels(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a labels CSV (``seq_id`` + 54 0/1 columns, in any order) into a seq_id-indexed int8 frame.

    Raises:
        DataError: missing or unknown columns, a repeated ``seq_id``, a value other than 0/1, or a row with
            no class set, naming the file and line.
    """
    path = Path(path)
    try:  # fast path: a well-formed file where every class column parses as a small integer
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pandas warns on its way to refusing "inf"
            df = pd.read_csv(path, dtype={"seq_id": str, **{c: np.int8 for c in COLUMNS}}, engine="c")
    except Exception:  # noqa: BLE001 - the slow path below reads it again and names what is wrong
        df = read_csv(path, dtype=str, keep_default_na=False, engine="c")
    if "seq_id" not in df.columns:
        raise DataError(path, f"missing column 'seq_id' (has {list(df.columns)[:5]}...)", line=1)
    classes = [c for c in df.columns if c != "seq_id"]
    unknown = [c for c in classes if c not in COLUMNS]
    if unknown:
        raise DataError(path, f"unknown class column(s) {unknown}", line=1)
    missing = [c for c in COLUMNS if c not in classes]
    if missing:
        raise DataError(path, f"missing class column(s) {missing}", line=1)
    dup = df["seq_id"].duplicated(keep="first")
    if dup.any():
        i = _first_bad(dup)
        first = _first_bad(df["seq_id"] == df["seq_id"].iat[i])
        raise DataError(path, f"duplicate seq_id {df['seq_id'].iat[i]!r} (first on line {first + 2})", i + 2)
    values = df[list(COLUMNS)]
    if not all(pd.api.types.is_integer_dtype(t) for t in values.dtypes):  # blanks and words become NaN: refused
        values = values.apply(lambda col: pd.to_numeric(col.astype(str).str.strip(), errors="coerce"))
    bad = (values != 0) & (values != 1)
    if bad.to_numpy().any():
        i = _first_bad(bad.any(axis=1))
        col = bad.columns[_first_bad(bad.iloc[i])]
        value, seq = str(df[col].iat[i]), df["seq_id"].iat[i]
        what = f"blank {col}" if not value.strip() or value == "nan" else f"{col}={value!r}"
        raise DataError(path, f"{what} for {seq!r}; labels must be 0 or 1", i + 2)
    none = values.sum(axis=1) == 0
    if none.any():
        i = _first_bad(none)
        raise DataError(path, f"seq_id {df['seq_id'].iat[i]!r} has no class set (use empty=1)", i + 2)
    labels = values.astype(np.int8)
    labels.index = pd.Index(df["seq_id"], name="seq_id")
    check_columns(labels.columns, source=str(path))
    return labels


def _join(frames: pd.DataFrame, labels: pd.DataFrame, labels_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check labels against frames: every label row needs images; unlabelled sequences are dropped."""
    has_images = labels.index.isin(frames["seq_id"].unique())
    if not has_images.all():
        i = _first_bad(~has_images)
        raise DataError(labels_path, f"seq_id {labels.index[i]!r} has a label row but no images", i + 2)
    labelled = frames["seq_id"].isin(labels.index)
    if not labelled.all():
        n = frames.loc[~labelled, "seq_id"].nunique()
        log.warning("%d sequence(s) have images but no label row; they are left out", n)
        frames = frames[labelled].reset_index(drop=True)
    return frames, labels


def read_train(
    metadata_csv: str | os.PathLike[str],
    labels_csv: str | os.PathLike[str],
    image_root: str | os.PathLike[str],
    layout: ImageLayout = ImageLayout.SEASON_FOLDERS,
) -> SequenceSet:
    """Read the training part: metadata + labels, checked against each other."""
    frames = read_metadata(metadata_csv, require_season=layout is ImageLayout.SEASON_FOLDERS)
    labels = read_labels(labels_csv)
    frames, labels = _join(frames, labels, Path(labels_csv))
    return SequenceSet(frames, labels, Path(image_root), layout)


def read_test(data_dir: str | os.PathLike[str]) -> tuple[SequenceSet, pd.DataFrame]:
    """Read the test part (``test_metadata.csv`` + ``submission_format.csv`` under ``data_dir``).

    Returns the frames (images at ``data_dir/<file_name>``) and the submission format, indexed by seq_id.
    A sequence in the format with no image row still gets a submission row later (class priors).
    """
    data_dir = Path(data_dir)
    frames = read_metadata(data_dir / "test_metadata.csv")
    fmt_path = data_dir / "submission_format.csv"
    fmt = read_csv(fmt_path, dtype={"seq_id": str})
    if "seq_id" not in fmt.columns:
        raise DataError(fmt_path, f"no 'seq_id' column (first columns: {list(fmt.columns)[:3]})", line=1)
    fmt = fmt.set_index("seq_id")
    try:
        check_columns(fmt.columns, source=str(fmt_path))
    except ValueError as exc:
        raise DataError(fmt_path, str(exc).split(": ", 1)[1], line=1) from exc
    dup = fmt.index.duplicated()
    if dup.any():
        i = _first_bad(dup)
        raise DataError(fmt_path, f"duplicate seq_id {fmt.index[i]!r}", i + 2)
    return SequenceSet(frames, None, data_dir, ImageLayout.FLAT), fmt


def read_metadata_part(metadata_csv: str | os.PathLike[str], image_root: str | os.PathLike[str], *,
                       allow_outside_root: bool = False) -> SequenceSet:
    """The frames of a ``*_metadata.csv`` under ``image_root``, placed as :func:`read_train` and
    :func:`read_test` place them: under per-season folders when every ``seq_id`` names a season whose folder
    (``SnapshotSerengeti_S01_v2_0``) is under ``image_root`` (the training layout), else flat (the test layout)."""
    frames = read_metadata(metadata_csv)
    root = Path(image_root)
    seasons = [int(s) for s in frames["season"].dropna().unique()]
    per_season = bool(seasons) and bool(frames["season"].notna().all()) and all(
        (root / season_folder(s)).is_dir() for s in seasons)  # fmt: skip
    layout = ImageLayout.SEASON_FOLDERS if per_season else ImageLayout.FLAT
    return SequenceSet(frames, None, root, layout, allow_outside_root)


class SplitError(ValueError):
    """Validation seasons that cannot split the data (none of them there, or all of them); a one-line message."""


def season_split(data: SequenceSet, val_seasons: list[int] | None = None) -> tuple[SequenceSet, SequenceSet]:
    """Split by season: ``val_seasons`` (default: the latest season) against all the others.

    The test seasons of the competition are unseen, so validating on whole seasons measures what matters.
    """
    seasons = sorted(int(s) for s in data.frames["season"].dropna().unique())
    if not seasons:
        raise SplitError("no seasons in the data; cannot split by season")
    val = set(val_seasons or seasons[-1:])
    if unknown := val - set(seasons):
        raise SplitError(f"validation season(s) {sorted(unknown)} not in the data (has {seasons})")
    if val >= set(seasons):
        raise SplitError(f"validation seasons {sorted(val)} leave nothing to train on")
    is_val = data.frames["season"].isin(val).to_numpy()
    val_ids = data.frames.loc[is_val, "seq_id"].unique()
    train_ids = data.frames.loc[~is_val, "seq_id"].unique()
    return data.subset(list(train_ids)), data.subset(list(val_ids))
