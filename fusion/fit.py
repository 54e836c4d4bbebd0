"""Fitting fusion's calibration on a validation split so that it minimises the competition's metric."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from camtrap.labels import COLUMNS, EMPTY
from fusion.fuse import empty_features, fuse_all
from fusion.model import FusionConfig, FusionModel, SequenceEvidence

__all__ = ["class_priors", "fit_empty", "fit"]

log = logging.getLogger(__name__)
MIN_TRUST_GAIN = 1e-3  # a crop trust is kept when it lowers the validation loss by at least this fraction


def class_priors(labels: pd.DataFrame, smoothing: float = 1.0,
                 columns: tuple[str, ...] = COLUMNS) -> tuple[float, ...]:  # fmt: skip
    """Per-column frequency of 1s (add-``smoothing`` so no column is 0 or 1)."""
    counts = labels[list(columns)].to_numpy(np.float64).sum(axis=0)
    n = len(labels)
    return tuple(float(v) for v in (counts + smoothing) / (n + 2 * smoothing))


def fit_empty(features: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> np.ndarray:
    """Logistic regression by Newton's method (ridge on the non-intercept weights): P(empty | features)."""
    w = np.zeros(features.shape[1])
    ridge = np.full(features.shape[1], l2)
    ridge[-1] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-np.clip(features @ w, -30, 30)))
        grad = features.T @ (p - y) / len(y) + ridge * w
        hess = (features.T * (p * (1 - p))) @ features / len(y) + np.diag(ridge) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def _species_loss(probs: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probs, 1e-15, 1 - 1e-15)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean())


def _search_species(evidence: list[SequenceEvidence], y: np.ndarray, model: FusionModel) -> tuple[float, FusionModel]:
    """The temperature and prior mix (of the config's grids) that minimise the metric, with ``model``'s other
    parts fixed; returns (loss, model)."""
    best = (np.inf, model)
    for t in model.config.temperatures:
        for mix in model.config.prior_mixes:
            candidate = dataclasses.replace(model, temperature=t, prior_mix=mix)
            loss = _species_loss(fuse_all(evidence, candidate), y)
            if loss < best[0]:
                best = (loss, candidate)
    return best


def fit(evidence: list[SequenceEvidence], labels: pd.DataFrame, config: FusionConfig | None = None, *,
        animal_threshold: float, priors: tuple[float, ...] | None = None, classes: tuple[str, ...] = COLUMNS,
        fitted_for: dict | None = None) -> FusionModel:  # fmt: skip
    """Fit the empty model, then the temperature and prior mix, then the crop trust (and, when it helps, the
    temperature and prior mix again with it), on labelled validation sequences.

    ``animal_threshold`` is the detector's (its spec's ``typical_threshold``), recorded in the model.
    ``priors`` default to the validation labels' frequencies; pass the training set's when you have it.
    ``classes``: the output columns (``labels`` has one 0/1 column each); ``fitted_for``: the models' fingerprints.
    """
    config = config or FusionConfig()
    y = labels.loc[[ev.seq_id for ev in evidence], list(classes)].to_numpy(np.float64)
    model = FusionModel(config=config, priors=priors or class_priors(labels, columns=classes),
                        animal_threshold=animal_threshold, classes=tuple(classes),
                        fitted_for=dict(fitted_for or {}))  # fmt: skip
    empty_index = classes.index(EMPTY)
    seen = [i for i, ev in enumerate(evidence) if ev.frame_animal_conf]
    if not config.calibrate or len(seen) < 2:
        return model
    feats = np.stack([empty_features(evidence[i], model) for i in seen])
    y_empty = y[seen, empty_index]
    if 0 < y_empty.sum() < len(y_empty):
        coef = fit_empty(feats, y_empty, config.empty_l2)
        model = dataclasses.replace(model, empty_coef=tuple(float(v) for v in coef))
    loss, model = _search_species(evidence, y, model)
    trusted = min(((_species_loss(fuse_all(evidence, c), y), c) for c in
                   (dataclasses.replace(model, crop_trust=float(g)) for g in config.crop_trust_powers)),
                  key=lambda pair: pair[0], default=(np.inf, model))  # fmt: skip
    if trusted[0] < loss * (1 - MIN_TRUST_GAIN):  # a crop trust that helps: temperature and prior mix again
        loss, model = _search_species(evidence, y, trusted[1])
    summary = {"sequences": len(evidence), "empty_rate": float(y[:, empty_index].mean()), "fit_loss": loss,
               "columns": [c for i, c in enumerate(classes) if y[:, i].any() and c != EMPTY]}  # fmt: skip
    log.info("fusion fitted on %d sequences: temperature %.2f, prior mix %.3f, crop trust %.1f, loss %.5f",
             len(evidence), model.temperature, model.prior_mix, model.crop_trust, loss)  # fmt: skip
    return dataclasses.replace(model, fitted_on=summary)
