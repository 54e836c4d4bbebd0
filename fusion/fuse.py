"""Pure functions from a sequence's evidence to its 54 probabilities, and their calibration.

* ``empty``: each readable frame's P(no animal) = 1 - its highest animal confidence; pooled over frames
  (geometric mean by default: a sequence is empty only if every frame is); then a logistic model on
  [logit(pooled), fraction of frames with an animal] fitted on validation data.  Not a raw threshold.
* species: crop distributions pooled over crops and frames, weighted by detection confidence; temperature
  scaled; believed in proportion to the best crop's confidence against the animal threshold (crop trust: a crop
  the detector barely saw leaves most of the species mass to the priors); mixed with the class priors a little
  (a guard against confident mistakes); scaled by P(not empty).
  Several species can be present: the pooled distribution spreads over them.
* fallbacks: a sequence whose frames all failed gets the class priors; one with no crops gets the species
  priors scaled by its (small, calibrated) P(not empty).
"""

from __future__ import annotations

import numpy as np

from camtrap.labels import EMPTY
from camtrap.results import SequencePrediction
from fusion.model import FusionModel, Pooling, SequenceEvidence

__all__ = ["empty_features", "pool", "species_distribution", "crop_trust", "fuse", "fuse_all", "logit"]

_EPS = 1e-6


def _species_idx(model: FusionModel) -> np.ndarray:
    return np.array([i for i, c in enumerate(model.classes) if c != EMPTY])


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def pool(rows: np.ndarray, weights: np.ndarray, how: Pooling, *, distribution: bool) -> np.ndarray:
    """Weighted pooling of rows (N x K).  ``distribution``: renormalise the result to sum to 1."""
    w = np.asarray(weights, np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(rows), 1.0 / len(rows))
    if how is Pooling.MEAN:
        out = (rows * w[:, None]).sum(axis=0)
    elif how is Pooling.MAX:
        out = rows.max(axis=0)
    else:
        out = np.exp((np.log(np.clip(rows, _EPS, 1.0)) * w[:, None]).sum(axis=0))
    return out / out.sum() if distribution and out.sum() > 0 else out


def empty_features(ev: SequenceEvidence, model: FusionModel) -> np.ndarray:
    """[logit(1 - highest animal confidence), logit(pooled frame P(empty)), log(1 + frames with an animal), 1].

    The first is the strongest single frame (one frame with an animal makes a 40-frame sequence non-empty);
    the second is the pooled view of all frames (geometric mean by default); the third counts agreeing frames.
    """
    conf = np.asarray(ev.frame_animal_conf, np.float64)
    p_empty = pool((1 - conf)[:, None], np.ones(len(conf)), model.config.empty_pooling, distribution=False)[0]
    seen = float(np.log1p((conf >= model.threshold).sum()))
    return np.array([float(logit(1 - conf.max())), float(logit(p_empty)), seen, 1.0])


def species_distribution(ev: SequenceEvidence, model: FusionModel) -> np.ndarray | None:
    """Pooled, temperature-scaled distribution over the 53 species (None when there is no species evidence)."""
    cfg = model.config
    parts, weights = [], []
    if ev.crop_probs:
        probs, confs = np.asarray(ev.crop_probs, np.float64), np.asarray(ev.crop_confs, np.float64)
        parts.append(pool(probs, confs**cfg.conf_weight_power, cfg.species_pooling, distribution=True))
        weights.append(1.0)
    if ev.frame_probs and cfg.one_stage_weight > 0:
        frames = np.asarray(ev.frame_probs, np.float64)[:, _species_idx(model)]
        parts.append(pool(frames, np.ones(len(frames)), cfg.species_pooling, distribution=True))
        weights.append(cfg.one_stage_weight)
    if not parts:
        return None
    dist = np.average(np.stack(parts), axis=0, weights=weights)
    if cfg.calibrate and model.temperature != 1.0:
        z = np.log(np.clip(dist, _EPS, 1.0)) / model.temperature
        dist = np.exp(z - z.max())
    return dist / dist.sum()


def crop_trust(ev: SequenceEvidence, model: FusionModel) -> float:
    """How much a sequence's crop evidence is believed: (best crop confidence / animal threshold) ** the fitted
    power, at most 1 (1 with no crops: one-stage evidence, or the priors anyway)."""
    if not ev.crop_confs or model.crop_trust == 0:
        return 1.0
    return min(1.0, max(ev.crop_confs) / max(model.threshold, _EPS)) ** model.crop_trust  # threshold 0: trusted


def _p_empty(ev: SequenceEvidence, model: FusionModel) -> float:
    cfg = model.config
    if not cfg.calibrate:
        seen = max(ev.frame_animal_conf, default=0.0) >= model.threshold
        return 1 - cfg.raw_confidence if seen else cfg.raw_confidence
    z = float(empty_features(ev, model) @ np.asarray(model.empty_coef))
    return float(1 / (1 + np.exp(-z)))


def fuse(ev: SequenceEvidence, model: FusionModel) -> SequencePrediction:
    """The probabilities of one sequence over ``model.classes`` (the competition's 54 by default)."""
    cfg = model.config
    priors = np.asarray(model.priors, np.float64)
    species_idx = _species_idx(model)
    if not ev.frame_animal_conf:  # every frame failed to load: nothing seen, fall back to the priors
        out = priors.copy()
    else:
        p_empty = _p_empty(ev, model)
        species_prior = priors[species_idx] / max(priors[species_idx].sum(), _EPS)
        dist = species_distribution(ev, model)
        trust = crop_trust(ev, model)
        dist = species_prior if dist is None else trust * dist + (1 - trust) * species_prior
        mix = model.prior_mix if cfg.calibrate else 0.0
        dist = (1 - mix) * dist + mix * species_prior
        out = np.zeros(len(model.classes))
        out[model.classes.index(EMPTY)] = p_empty
        out[species_idx] = (1 - p_empty) * dist
    out = np.clip(out, cfg.prob_floor, 1 - cfg.prob_floor)
    return SequencePrediction(ev.seq_id, tuple(float(v) for v in out), ev.n_frames, ev.n_failed)


def fuse_all(evidence: list[SequenceEvidence], model: FusionModel) -> np.ndarray:
    """Rows of probabilities over ``model.classes``, one per sequence, in ``evidence`` order."""
    return np.array([fuse(ev, model).probs for ev in evidence]).reshape(len(evidence), len(model.classes))
