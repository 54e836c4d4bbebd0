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

__all__ = ["prior_submission", "one_stage_submission"]


def prior_submission(train_labels: pd.DataFrame, seq_ids: pd.Index) -> pd.DataFrame:
    """Every sequence gets the training set's class frequencies."""
    priors = class_priors(train_labels)
    return pd.DataFrame([priors] * len(seq_ids), index=seq_ids, columns=list(COLUMNS))


def one_stage_submission(part: SequenceSet, frame_classifier: Classifier, priors: tuple[float, ...], *,
                         first_frame_only: bool = False, floor: float = 1e-5) -> pd.DataFrame:
    """Whole-frame multi-label probabilities pooled per sequence: mean for species, geometric mean for empty
    (the winners' recipe); ``first_frame_only`` is the seed benchmark's approach.  Unreadable frames are
    skipped; a sequence with none gets the priors."""
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
    return pd.DataFrame(rows, index=part.seq_ids, columns=list(COLUMNS))
