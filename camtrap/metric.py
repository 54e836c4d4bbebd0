"""The competition's score and the checks a submission must pass before it is scored or written.

Score = mean over the 54 columns of the binary log loss, predictions clipped to [1e-15, 1 - 1e-15].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.fileio import DataError, read_csv
from camtrap.labels import COLUMNS, check_columns

__all__ = [
    "CLIP_EPS",
    "SubmissionError",
    "read_submission",
    "validate_submission",
    "per_class_log_loss",
    "score",
]

CLIP_EPS = 1e-15
_SHOW = 5  # how many offending seq_ids an error message lists


class SubmissionError(ValueError):
    """A submission that cannot be scored; the message names the problem."""


def _few(items: list[str] | pd.Index) -> str:
    items = list(items)
    more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return ", ".join(repr(x) for x in items[:_SHOW]) + more


def read_submission(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a submission or labels CSV indexed by ``seq_id`` (values left as read; validate separately)."""
    path = Path(path)
    df = read_csv(path, dtype={"seq_id": str})
    if "seq_id" not in df.columns:
        raise DataError(path, f"no 'seq_id' column (first columns: {list(df.columns)[:3]})", line=1)
    return df.set_index("seq_id")


def validate_submission(sub: pd.DataFrame, expected_seq_ids: pd.Index, *, source: str = "submission") -> None:
    """Raise :class:`SubmissionError` unless ``sub`` is a complete, well-formed submission.

    Checks: the 54 columns in order, one row per expected ``seq_id`` (none missing, none extra, none twice),
    numeric values, no NaN, every value within [0, 1].
    """
    try:
        check_columns(sub.columns, source=source)
    except ValueError as exc:
        raise SubmissionError(str(exc)) from exc
    dup = sub.index[sub.index.duplicated()]
    if len(dup):
        raise SubmissionError(f"{source}: seq_id repeated: {_few(dup.unique())}")
    missing = expected_seq_ids.difference(sub.index)
    if len(missing):
        raise SubmissionError(f"{source}: {len(missing)} seq_id(s) missing: {_few(missing)}")
    extra = sub.index.difference(expected_seq_ids)
    if len(extra):
        raise SubmissionError(f"{source}: {len(extra)} unexpected seq_id(s): {_few(extra)}")
    non_numeric = [c for c in sub.columns if not pd.api.types.is_numeric_dtype(sub[c])]
    if non_numeric:
        raise SubmissionError(f"{source}: non-numeric values in column(s) {non_numeric}")
    values = sub.to_numpy(dtype=np.float64)
    nan_rows = np.isnan(values).any(axis=1)
    if nan_rows.any():
        raise SubmissionError(f"{source}: NaN in {int(nan_rows.sum())} row(s): {_few(sub.index[nan_rows])}")
    out = ((values < 0) | (values > 1)).any(axis=1)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        j = int(np.flatnonzero((values[i] < 0) | (values[i] > 1))[0])
        raise SubmissionError(
            f"{source}: values outside [0, 1] in {int(out.sum())} row(s), "
            f"e.g. {sub.index[i]!r} {COLUMNS[j]}={float(values[i, j])!r}"
        )


def per_class_log_loss(sub: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """Binary log loss of each of the 54 columns (rows aligned by ``seq_id``), as a Series."""
    validate_submission(sub, labels.index)
    p = np.clip(sub.loc[labels.index, list(COLUMNS)].to_numpy(np.float64), CLIP_EPS, 1 - CLIP_EPS)
    y = labels[list(COLUMNS)].to_numpy(np.float64)
    loss = -(y * np.log(p) + (1 - y) * np.log1p(-p)).mean(axis=0)
    return pd.Series(loss, index=list(COLUMNS), name="log_loss")


def score(sub: pd.DataFrame, labels: pd.DataFrame) -> float:
    """The competition score: mean over the 54 columns of the binary log loss (lower is better)."""
    return float(per_class_log_loss(sub, labels).mean())
