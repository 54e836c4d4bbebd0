"""Evaluating the full pipeline on labelled photos given as a ``path,label[,seq_id][,group_id]`` CSV (an ecologist's
simplest format): top-1, the competition metric and the most frequent confusions."""

from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.dataset import ImageLayout, SequenceSet, check_metadata
from camtrap.fileio import DataError
from camtrap.labels import COLUMNS, skipped_labels_line
from camtrap.metric import per_class_log_loss

__all__ = ["EvaluationReport", "images_csv_as_sequences", "corrections_as_sequences", "evaluate_predictions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationReport:
    """How the pipeline did on labelled sequences."""

    sequences: int
    top1: float  # highest-probability column is one of the sequence's labels
    score: float  # mean binary log loss over the columns (the competition's metric for the 54)
    per_class: dict[str, float]
    confusions: tuple[tuple[str, str, int], ...]  # (true, predicted, count), most frequent first

    def summary(self) -> str:
        lines = [f"{self.sequences} labelled sequences: top-1 {self.top1:.3f}, metric {self.score:.5f}"]
        if self.confusions:
            lines.append("most frequent confusions (true -> predicted: count):")
            lines += [f"  {t} -> {p}: {n}" for t, p, n in self.confusions]
        return "\n".join(lines)


def images_csv_as_sequences(csv_path: str | os.PathLike[str], root: Path | None = None,
                            columns: tuple[str, ...] = COLUMNS) -> SequenceSet:  # fmt: skip
    """Read ``path,label[,seq_id][,group_id]`` rows (:func:`classifier.data.read_labelled_csv`) as a labelled
    sequence set: the sequence is ``seq_id``, else ``group_id``, else each image on its own; ``empty``/``blank``
    rows are empty photos; rows whose label is not one of ``columns`` (the 54 by default) are skipped and counted.

    Relative paths are under ``root`` (default: the CSV's folder); absolute ones are used as given (the CSV is
    the user's own)."""
    from classifier.data import read_labelled_csv

    csv_path = Path(csv_path)
    df = read_labelled_csv(csv_path)
    known = df["label"].isin(columns)
    if (~known).any():
        log.info("%s: %s", csv_path.name, skipped_labels_line(df["label"][~known], "the classifier's classes"))
    df = df[known]
    seq = df["seq"]
    frames = check_metadata(pd.DataFrame({"seq_id": seq.to_numpy(), "file_name": df["path"].to_numpy()}), csv_path)
    labels = pd.crosstab(seq.to_numpy(), df["label"].to_numpy()).clip(upper=1)
    labels = labels.reindex(columns=list(columns), fill_value=0).astype(np.int8)
    labels.index.name = "seq_id"
    labels = labels.loc[frames["seq_id"].unique()]
    log.info("%s: %d photo(s) in %d sequence(s)", csv_path.name, len(frames), len(labels))
    return SequenceSet(frames, labels, root or csv_path.parent, ImageLayout.FLAT, allow_outside_root=True)


def corrections_as_sequences(csv_path: str | os.PathLike[str], root: Path,
                             columns: tuple[str, ...] = COLUMNS) -> SequenceSet:  # fmt: skip
    """The sequences a person reviewed on the review site (``seq:`` rows of ``corrections.csv`` that were confirmed
    or relabelled) as a labelled sequence set: their files under ``root``, their labels the species given (or
    ``empty``); labels that are not one of ``columns`` are dropped, and a sequence left with none is skipped."""
    from classifier.data import SEQUENCE_ROW, read_corrections

    csv_path = Path(csv_path)
    df = read_corrections(csv_path)
    rows = df[df["crop_id"].str.startswith(SEQUENCE_ROW) & df["status"].isin(("confirmed", "relabelled"))]
    frames, labelled = [], []
    for r in rows.itertuples(index=False):
        seq = r.seq_id or r.crop_id[len(SEQUENCE_ROW):]
        found = [v for v in (r.label or r.predicted).split(";") if v in columns]
        if found:
            frames += [(seq, f) for f in r.file.split(";") if f]
            labelled += [(seq, v) for v in found]
    if not labelled:
        raise DataError(csv_path, "no reviewed sequence (confirm or relabel whole sequences on the review site)")
    table = check_metadata(pd.DataFrame(frames, columns=["seq_id", "file_name"]), csv_path)
    pairs = pd.DataFrame(labelled, columns=["seq_id", "label"])
    labels = pd.crosstab(pairs["seq_id"], pairs["label"]).clip(upper=1)
    labels = labels.reindex(columns=list(columns), fill_value=0).astype(np.int8)
    labels.index.name = "seq_id"
    return SequenceSet(table, labels.loc[table["seq_id"].unique()], root, ImageLayout.FLAT, allow_outside_root=True)


def evaluate_predictions(pred: pd.DataFrame, labels: pd.DataFrame, top_confusions: int = 10) -> EvaluationReport:
    """Score sequence predictions (seq_id x the labels' columns: the 54, or a classifier's own) against labels."""
    cols = list(labels.columns)
    if tuple(cols) == COLUMNS:
        per_class = per_class_log_loss(pred.loc[labels.index], labels)
    else:
        p = np.clip(pred.loc[labels.index, cols].to_numpy(np.float64), 1e-15, 1 - 1e-15)
        y = labels[cols].to_numpy(np.float64)
        per_class = pd.Series(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean(axis=0), index=cols)
    best = pred.loc[labels.index, cols].to_numpy().argmax(axis=1)
    y = labels[cols].to_numpy()
    hits = y[np.arange(len(y)), best] == 1
    confusions: collections.Counter = collections.Counter()
    for row, b, hit in zip(y, best, hits):
        if not hit:
            confusions[(cols[int(np.argmax(row))], cols[int(b)])] += 1
    return EvaluationReport(len(labels), float(hits.mean()) if len(hits) else float("nan"), float(per_class.mean()),
                            {k: float(v) for k, v in per_class.items()},
                            tuple((t, p, n) for (t, p), n in confusions.most_common(top_confusions)))  # fmt: skip
