"""Transductive self-training for the few-shot head: photos without labels (the ones to classify, and any other
unlabelled photos) that the head classifies with a confidence of at least a threshold join the training photos
with their predicted class, and the head is fitted again.

Groups are kept apart: the unlabelled photos are split into two halves by group, and the photos of one half are
predicted by a head whose pseudo-labels come from the other half only.  A photo's own prediction (or that of
another photo of its sequence) never feeds back into it, so self-training cannot simply confirm itself.

The threshold (or no self-training) is chosen by group CV on the training photos like every other few-shot
setting (:func:`choose_threshold`): in each inner fold, the held-out training photos are unlabelled too.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from classifier.probe import Embeddings, fit_head, head_logits, probs_of

__all__ = ["pseudo_label_donors", "self_train_logits", "choose_threshold"]

log = logging.getLogger(__name__)


def pseudo_label_donors(pool: np.ndarray, groups: list[str], confident: np.ndarray, seed: int = 0) -> list:
    """For the two group halves of ``pool`` (sample indices; ``groups``: every sample's group), pairs of (the
    pool photos of that half, the confident photos of the other half whose pseudo-labels train its head)."""
    from classifier.fewshot import group_folds

    if len(pool) == 0:
        return []
    half = group_folds([groups[i] for i in pool], 2, seed) if len({groups[i] for i in pool}) > 1 else np.zeros(
        len(pool), np.int64)  # fmt: skip
    return [(pool[half == h], pool[(half != h) & confident]) for h in (0, 1) if (half == h).any()]


def self_train_logits(emb: Embeddings, targets: np.ndarray, train: np.ndarray, pool: np.ndarray, groups: list[str],
                      *, threshold: float, l2: float, use_prior: bool, seed: int = 0) -> np.ndarray:  # fmt: skip
    """(2, len(pool), C) logits of the ``pool`` photos after one round of group-separated self-training on the
    labelled photos ``train`` (single-label targets)."""
    base = fit_head(emb, targets, train, l2=l2, use_prior=use_prior)
    logits = head_logits(base, emb, pool)
    if not math.isfinite(threshold) or len(pool) == 0:
        return logits
    probs = probs_of(logits)
    pseudo = targets.copy()
    pseudo[pool] = np.eye(targets.shape[1], dtype=targets.dtype)[probs.argmax(axis=1)]
    where = {int(s): k for k, s in enumerate(pool)}
    out = logits.copy()
    for predicted, donors in pseudo_label_donors(pool, groups, probs.max(axis=1) >= threshold, seed):
        if len(donors) == 0:
            continue
        fit = fit_head(emb, pseudo, np.concatenate([train, donors]), l2=l2, use_prior=use_prior)
        out[:, [where[int(s)] for s in predicted]] = head_logits(fit, emb, predicted)
    return out


def choose_threshold(emb: Embeddings, targets: np.ndarray, train: np.ndarray, unlabelled: np.ndarray,
                     groups: list[str], folds: np.ndarray, thresholds: tuple[float, ...], *, l2: float,
                     use_prior: bool, log_loss) -> float:  # fmt: skip
    """The threshold (``inf``: no self-training) with the lowest group-CV log loss on ``train`` (``folds``: an
    inner fold per sample), the held-out inner fold unlabelled together with ``unlabelled``."""
    best = (math.inf, math.inf)
    for threshold in (math.inf, *thresholds):
        oof = np.zeros((len(emb.features), len(train), targets.shape[1]))
        for f in np.unique(folds[train]):
            held = folds[train] == f
            pool = np.concatenate([train[held], unlabelled])
            z = self_train_logits(emb, targets, train[~held], pool, groups, threshold=threshold, l2=l2,
                                  use_prior=use_prior)  # fmt: skip
            oof[:, held] = z[:, : held.sum()]
        loss = log_loss(probs_of(oof), targets[train])
        log.debug("self-training threshold %s: cross-validated log loss %.4f", threshold, loss)
        best = min(best, (loss, threshold))
    return best[1]
