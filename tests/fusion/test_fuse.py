"""Fusion on hand-built evidence with known answers."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from camtrap.labels import COLUMNS, SPECIES
from fusion import FusionConfig, FusionMismatchError, FusionModel, Pooling, SequenceEvidence, fit, fuse
from fusion.fuse import pool

LION = SPECIES.index("lionfemale")
ZEBRA = SPECIES.index("zebra")


def _onehot(i, p=0.9):
    v = np.full(len(SPECIES), (1 - p) / (len(SPECIES) - 1))
    v[i] = p
    return tuple(v)


def _probs(pred):
    return dict(zip(COLUMNS, pred.probs))


MODEL = FusionModel(empty_coef=(1.0, 0.0, 0.0, 0.0), temperature=1.0, prior_mix=0.0)


def test_all_empty_frames_give_mass_on_empty_not_one():
    ev = SequenceEvidence("s", 3, (0.01, 0.02, 0.0))
    p = _probs(fuse(ev, MODEL))
    assert 0.9 < p["empty"] < 1.0
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-3)


def test_one_frame_with_a_lion():
    ev = SequenceEvidence("s", 3, (0.02, 0.95, 0.01), crop_probs=(_onehot(LION),), crop_confs=(0.95,))
    p = _probs(fuse(ev, MODEL))
    assert p["empty"] < 0.3
    assert max(p, key=p.get) == "lionfemale"
    assert p["lionfemale"] == pytest.approx((1 - p["empty"]) * 0.9, rel=1e-6)


def test_two_species_share_the_mass():
    ev = SequenceEvidence("s", 2, (0.9, 0.8), crop_probs=(_onehot(LION), _onehot(ZEBRA)), crop_confs=(0.9, 0.9))
    p = _probs(fuse(ev, MODEL))
    assert p["lionfemale"] == pytest.approx(p["zebra"]) and p["zebra"] > 0.35


def test_all_frames_failed_gives_priors():
    priors = tuple(np.linspace(1, 2, 54) / np.linspace(1, 2, 54).sum())
    model = dataclasses.replace(MODEL, priors=priors)
    pred = fuse(SequenceEvidence("s", 3, ()), model)
    assert pred.probs == pytest.approx(priors) and pred.n_failed == 3


def test_forty_frame_sequence():
    confs = tuple([0.0] * 39 + [0.9])
    ev = SequenceEvidence("s", 40, confs, crop_probs=(_onehot(ZEBRA),), crop_confs=(0.9,))
    p = _probs(fuse(ev, MODEL))
    assert max((c for c in p if c != "empty"), key=p.get) == "zebra"
    assert p["empty"] < 0.5  # one frame with an animal makes the sequence non-empty


def test_low_confidence_crops_are_ignored_and_weighted():
    ev = SequenceEvidence("s", 1, (0.9,), crop_probs=(_onehot(LION), _onehot(ZEBRA)), crop_confs=(0.05, 0.9))
    p = _probs(fuse(ev, MODEL))
    assert p["zebra"] > 10 * p["lionfemale"]


def test_poolings():
    rows = np.array([[0.9, 0.1], [0.5, 0.5]])
    assert pool(rows, np.ones(2), Pooling.MEAN, distribution=True) == pytest.approx([0.7, 0.3])
    assert pool(rows, np.ones(2), Pooling.MAX, distribution=False) == pytest.approx([0.9, 0.5])
    g = np.sqrt([0.45, 0.05])
    assert pool(rows, np.ones(2), Pooling.GMEAN, distribution=True) == pytest.approx(g / g.sum())


def test_uncalibrated_mode_is_a_threshold():
    model = FusionModel(config=FusionConfig(calibrate=False, raw_confidence=0.9), animal_threshold=0.5)
    assert _probs(fuse(SequenceEvidence("s", 1, (0.4,)), model))["empty"] == pytest.approx(0.9)
    assert _probs(fuse(SequenceEvidence("s", 1, (0.6,)), model))["empty"] == pytest.approx(0.1)


def test_fit_improves_the_metric_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    evidence, rows = [], []
    for i in range(300):
        empty = rng.uniform() < 0.7
        conf = tuple(rng.uniform(0, 0.3, 3)) if empty else tuple(rng.uniform(0.3, 1.0, 3))
        sp = int(rng.integers(0, 3))
        crops = () if empty else (_onehot(sp, rng.uniform(0.5, 0.99)),)
        evidence.append(SequenceEvidence(f"s{i}", 3, conf, crops, (max(conf),) * len(crops)))
        row = dict.fromkeys(COLUMNS, 0)
        row["empty" if empty else SPECIES[sp]] = 1
        rows.append(row)
    labels = pd.DataFrame(rows, index=[ev.seq_id for ev in evidence])
    from fusion.fuse import fuse_all

    def metric(model):
        p = np.clip(fuse_all(evidence, model), 1e-15, 1 - 1e-15)
        y = labels[list(COLUMNS)].to_numpy(float)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    fitted = fit(evidence, labels, animal_threshold=0.3)
    assert metric(fitted) < metric(FusionModel()) and metric(fitted) < metric(MODEL)
    fitted.save(tmp_path / "fusion.json")
    back = FusionModel.load(tmp_path / "fusion.json")
    assert back == fitted and back.animal_threshold == 0.3
    assert back.bind(0.3) == back
    with pytest.raises(FusionMismatchError, match="animal threshold is 0.3, but the detector uses 0.2"):
        back.bind(0.2)


def _faint_crop_set(rng, n=100):
    """Sequences with a known answer: confident crops are right; faint ones (confidence under the animal threshold
    0.3, a detector that barely saw the animal) name a random wrong species half the time."""
    evidence, rows = [], []
    for i in range(n):
        sp = int(rng.integers(0, 5))
        faint = rng.uniform() < 0.4
        conf = float(rng.uniform(0.1, 0.25) if faint else rng.uniform(0.5, 1.0))
        named = int(rng.integers(5, 50)) if faint and rng.uniform() < 0.5 else sp
        evidence.append(SequenceEvidence(f"s{i}", 2, (conf, conf / 2), (_onehot(named, 0.95),), (conf,)))
        row = dict.fromkeys(COLUMNS, 0)
        row[SPECIES[sp]] = 1
        rows.append(row)
    return evidence, pd.DataFrame(rows, index=[ev.seq_id for ev in evidence])


def test_crop_trust_is_fitted_when_faint_crops_mislead_and_left_off_when_they_do_not(tmp_path):
    from fusion.fuse import crop_trust, fuse_all

    rng = np.random.default_rng(0)
    evidence, labels = _faint_crop_set(rng)

    def metric(model):
        p = np.clip(fuse_all(evidence, model), 1e-15, 1 - 1e-15)
        y = labels[list(COLUMNS)].to_numpy(float)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    small = FusionConfig(temperatures=(1.0, 1.5), prior_mixes=(0.0, 0.01))  # a short search: a fast test
    fitted = fit(evidence, labels, small, animal_threshold=0.3)
    assert fitted.crop_trust > 0
    assert metric(fitted) < metric(dataclasses.replace(fitted, crop_trust=0.0))
    faint = next(ev for ev in evidence if ev.crop_confs[0] < 0.3)
    assert crop_trust(faint, fitted) == pytest.approx((faint.crop_confs[0] / 0.3) ** fitted.crop_trust)
    assert crop_trust(next(ev for ev in evidence if ev.crop_confs[0] >= 0.5), fitted) == 1.0
    assert FusionModel.load(fitted.save(tmp_path / "f.json")) == fitted
    # Every crop confident and right: nothing to gain, the power stays 0 (crops believed as before).
    sure = [dataclasses.replace(ev, crop_probs=(_onehot(SPECIES.index(labels.loc[ev.seq_id, list(SPECIES)].idxmax()),
                                                        0.95),), crop_confs=(0.9,)) for ev in evidence]  # fmt: skip
    assert fit(sure, labels, small, animal_threshold=0.3).crop_trust == 0.0


def test_crop_trust_with_an_animal_threshold_of_zero_believes_every_crop():
    """A detector spec may set its animal threshold to 0: every crop is then at or above it (no division by 0)."""
    from fusion.fuse import crop_trust

    ev = SequenceEvidence("s", 1, (0.1,), (_onehot(0, 0.9),), (0.1,))
    model = dataclasses.replace(FusionModel(), animal_threshold=0.0, crop_trust=2.0)
    assert crop_trust(ev, model) == 1.0
