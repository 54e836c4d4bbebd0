"""Baselines the two-stage pipeline is compared with: class priors, and one-stage whole-frame scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd

from camtrap.dataset import SequenceSet
from camtrap.labels import COLUMNS, EMPTY_INDEX
from classifier.predict import Classifier, classify_paths
from fusion.fit import class_priors
from fusion.fuse import pool
from fusion.model import Pooling

__all__ = ["prior_submission", "one_stage_submission", "fit_blend", "BLEND_GRID"]

BLEND_GRID = np.linspace(0.0, 1.0, 21)  # weights of the classifier's probabilities tried against the priors


def prior_submission(train_labels: pd.DataFrame, seq_ids: pd.Index) -> pd.DataFrame:
    """Every sequence gets the training set's class frequencies."""
    priors = class_priors(train_labels)
    return pd.DataFrame([priors] * len(seq_ids), index=seq_ids, columns=list(COLUMNS))


def _blended(pred: pd.DataFrame, priors: tuple[float, ...], blend: dict[str, float]) -> pd.DataFrame:
    """``w * pred + (1 - w) * priors``: ``blend["empty"]`` for the empty column, ``blend["species"]`` for the rest."""
    w = np.full(len(COLUMNS), float(blend["species"]))
    w[EMPTY_INDEX] = float(blend["empty"])
    return pred * w + np.asarray(priors) * (1 - w)


def fit_blend(raw: pd.DataFrame, labels: pd.DataFrame, priors: tuple[float, ...]) -> dict[str, float]:
    """The blend weights (empty column, species columns) with the least log loss on ``labels`` (validation
    sequences), from :data:`BLEND_GRID`; weight 0 is the priors, so the blend is never worse than them there."""
    from camtrap.metric import per_class_log_loss

    raw = raw.loc[labels.index]
    best: dict[str, float] = {}
    for key, cols in (("empty", [EMPTY_INDEX]), ("species", [i for i in range(len(COLUMNS)) if i != EMPTY_INDEX])):
        losses = [per_class_log_loss(_blended(raw, priors, {"empty": w, "species": w}), labels).iloc[cols].mean()
                  for w in BLEND_GRID]  # fmt: skip
        best[key] = float(BLEND_GRID[int(np.argmin(losses))])
    return best


def one_stage_submission(part: SequenceSet, frame_classifier: Classifier, priors: tuple[float, ...], *,
                         first_frame_only: bool = False, floor: float = 1e-5,
                         blend: dict[str, float] | None = None) -> pd.DataFrame:  # fmt: skip
    """Whole-frame multi-label probabilities pooled per sequence: mean for species, geometric mean for empty
    (the winners' recipe); ``first_frame_only`` is the seed benchmark's approach.  Unreadable frames are
    skipped; a sequence with none gets the priors.  ``blend`` (from :func:`fit_blend`, fitted on validation
    seasons) mixes the result with the priors, so the baseline is calibrated as fairly as fusion is."""
    if not frame_classifier.spec.multilabel or tuple(frame_classifier.spec.classes) != COLUMNS:
        raise ValueError("one-stage scoring needs a whole-frame classifier over the 54 columns (--source frames)")
    frames = part.frames.groupby("seq_id", sort=False).head(1) if first_frame_only else part.frames
    refs = [part.frame_ref(f, q, s) for f, q, s in zip(frames["file_name"], frames["seq_id"], frames["season"])]
    preds = classify_paths(frame_classifier, refs)
    probs = {}
    for seq_id, p in zip(frames["seq_id"], preds):
        if p.probs is not None:
            probs.setdefault(seq_id, []).append(p.probs)
    rows = []
    for seq_id in part.seq_ids:
        if seq_id not in probs:
            rows.append(np.asarray(priors))
            continue
        stack = np.asarray(probs[seq_id])
        row = pool(stack, np.ones(len(stack)), Pooling.MEAN, distribution=False)
        row[EMPTY_INDEX] = pool(stack[:, [EMPTY_INDEX]], np.ones(len(stack)), Pooling.GMEAN, distribution=False)[0]
        rows.append(np.clip(row, floor, 1 - floor))
    pred = pd.DataFrame(rows, index=part.seq_ids, columns=list(COLUMNS))
    return pred if blend is None else _blended(pred, priors, blend)
