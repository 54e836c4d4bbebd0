"""Fitting fusion's calibration on a validation split so that it minimises the competition's metric."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd

from camtrap.labels import COLUMNS, EMPTY
from fusion.fuse import empty_features, fuse_all
from fusion.model import FusionConfig, FusionModel, SequenceEvidence

__all__ = ["class_priors", "fit_empty", "fit", "fit_set_warnings"]

log = logging.getLogger(__name__)
MIN_TRUST_GAIN = 1e-3  # a crop trust is kept when it lowers the validation loss by at least this fraction
# How much labelled data a fit needs.  The empty model is a logistic regression with 4 weights: the usual rule
# of thumb for logistic regression (about 10 cases of the rarer outcome per fitted weight, Peduzzi et al. 1996)
# asks for far more, so below REFUSE_EMPTY empty (or animal) sequences it is not fitted at all (its intercept
# would learn "almost nothing is empty" from 2 blanks) and the default P(empty) = 1 - best animal confidence is
# kept; below WARN_EMPTY of either it is fitted but the user is told.  The temperature, prior mix and crop trust
# are chosen from grids by the fit loss: with fewer than REFUSE_SPECIES sequences with an animal a grid search
# picks the extreme that fits those few best (3 sequences: temperature 0.5, loss 0.002), so the defaults are
# kept; below WARN_SEQUENCES sequences overall the user is told.  A card is typically 50-75% empty: a fit set
# under WARN_EMPTY_SHARE empty teaches P(empty) a base rate far below the card's, also told.
REFUSE_EMPTY, WARN_EMPTY = 5, 10
REFUSE_SPECIES, WARN_SEQUENCES = 10, 30
WARN_EMPTY_SHARE = 0.25


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


def fit_set_warnings(sequences: int, empty: int, animal: int) -> list[str]:
    """One line for each way a fit set of ``sequences`` (``empty`` of them empty, ``animal`` with an animal) is too
    small or too lopsided to fit fusion reliably, saying what was kept and what to do."""
    out = []
    if sequences < WARN_SEQUENCES:
        out.append(f"fusion fitted on only {sequences} sequences (fewer than {WARN_SEQUENCES}): review or label more "
                   "sequences and fit again")
    if empty < REFUSE_EMPTY:
        out.append(f"only {empty} empty sequences in the fit set (fewer than {REFUSE_EMPTY}): the empty model is "
                   "not fitted, P(empty) stays the default (1 - the detector's best confidence); add empty photos "
                   "(a card is typically 50-75% empty)")
    elif empty < WARN_EMPTY:
        out.append(f"only {empty} empty sequences in the fit set (fewer than {WARN_EMPTY}): P(empty) is fitted on "
                   "few blanks; add empty photos (a card is typically 50-75% empty)")
    elif sequences and empty / sequences < WARN_EMPTY_SHARE:
        out.append(f"the fit set is {empty / sequences:.0%} empty (a card is typically 50-75% empty): P(empty) "
                   "learns that share and will call blanks animals; add empty photos")
    if animal < REFUSE_SPECIES:
        out.append(f"only {animal} sequences with an animal in the fit set (fewer than {REFUSE_SPECIES}): "
                   "temperature, prior mix and crop trust stay the defaults; review or label more sequences")
    if animal < REFUSE_EMPTY <= empty:
        out.append(f"only {animal} sequences with an animal in the fit set: the empty model is not fitted either")
    return out


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
    n_empty = int(y[seen, empty_index].sum()) if seen else 0
    counts = {"sequences": len(evidence), "empty": n_empty, "animal": len(seen) - n_empty}
    if not config.calibrate or len(seen) < 2:
        return dataclasses.replace(model, fitted_on={**counts, "defaults_kept": ["empty", "species"]})
    for line in fit_set_warnings(len(seen), counts["empty"], counts["animal"]):
        log.warning("%s", line)
    kept = []
    if min(counts["empty"], counts["animal"]) >= REFUSE_EMPTY:
        feats = np.stack([empty_features(evidence[i], model) for i in seen])
        coef = fit_empty(feats, y[seen, empty_index], config.empty_l2)
        model = dataclasses.replace(model, empty_coef=tuple(float(v) for v in coef))
    else:
        kept.append("empty")
    if counts["animal"] < REFUSE_SPECIES:
        loss = _species_loss(fuse_all(evidence, model), y)
        return dataclasses.replace(model, fitted_on={**counts, "fit_loss": loss, "defaults_kept": [*kept, "species"]})
    loss, model = _search_species(evidence, y, model)
    trusted = min(((_species_loss(fuse_all(evidence, c), y), c) for c in
                   (dataclasses.replace(model, crop_trust=float(g)) for g in config.crop_trust_powers)),
                  key=lambda pair: pair[0], default=(np.inf, model))  # fmt: skip
    if trusted[0] < loss * (1 - MIN_TRUST_GAIN):  # a crop trust that helps: temperature and prior mix again
        loss, model = _search_species(evidence, y, trusted[1])
    summary = {**counts, "defaults_kept": kept, "empty_rate": float(y[:, empty_index].mean()), "fit_loss": loss,
               "columns": [c for i, c in enumerate(classes) if y[:, i].any() and c != EMPTY]}  # fmt: skip
    log.info("fusion fitted on %d sequences: temperature %.2f, prior mix %.3f, crop trust %.1f, loss %.5f",
             len(evidence), model.temperature, model.prior_mix, model.crop_trust, loss)  # fmt: skip
    return dataclasses.replace(model, fitted_on=summary)
