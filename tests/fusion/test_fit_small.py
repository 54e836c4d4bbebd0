"""Fusion fitted on too little data: a fit set with 2 empty of 55 sequences, or 3 reviewed sequences, keeps the
default (unfitted) parts it cannot fit, says so in one warning line each, and records what it was fitted on."""

import importlib
import logging

import numpy as np
import pandas as pd

from fusion import FusionModel, SequenceEvidence, fit, fuse

fit_module = importlib.import_module("fusion.fit")  # the module (``fusion.fit`` the name is the function)
CLASSES = ("zebra", "impala", "empty")


def _fit_set(rng, n_animal: int, n_empty: int):
    """Animal sequences (a crop of their species; a quarter of them barely seen by the detector) and blank ones
    (the detector's false alarms at 0.1-0.4): a noisy detector, as on a real card."""
    evidence, rows = [], []
    for i in range(n_animal + n_empty):
        empty = i >= n_animal
        sp = i % 2
        conf = float(rng.uniform(0.1, 0.4) if empty or rng.uniform() < 0.25 else rng.uniform(0.5, 0.95))
        crop = (0.9, 0.1) if sp == 0 else (0.1, 0.9)
        evidence.append(SequenceEvidence(f"s{i}", 2, (conf, conf / 2), () if empty else (crop,), () if empty
                                         else (conf,)))  # fmt: skip
        rows.append({"zebra": int(not empty and sp == 0), "impala": int(not empty and sp == 1), "empty": int(empty)})
    return evidence, pd.DataFrame(rows, index=[ev.seq_id for ev in evidence])


BLANK = SequenceEvidence("blank", 2, (0.12, 0.05))  # a photo confirmed empty: the detector's best is 0.12


def _p_empty(model: FusionModel) -> float:
    return float(fuse(BLANK, model).probs[CLASSES.index("empty")])


def test_two_empty_of_55_keep_the_default_p_empty_and_warn(caplog, monkeypatch):
    evidence, labels = _fit_set(np.random.default_rng(0), 53, 2)
    with caplog.at_level(logging.WARNING, logger="fusion.fit"):
        model = fit(evidence, labels, animal_threshold=0.2, classes=CLASSES)
    assert model.empty_coef == FusionModel().empty_coef  # not fitted: the default P(empty) = 1 - best confidence
    assert model.fitted_on["sequences"] == 55 and model.fitted_on["empty"] == 2 and model.fitted_on["animal"] == 53
    assert model.fitted_on["defaults_kept"] == ["empty"]
    assert _p_empty(model) > 0.8  # the confirmed blank is called empty
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "only 2 empty sequences" in lines[0] and "add empty photos" in lines[0]
    assert model.fit_summary() == "fitted on 55 sequences (2 empty, 53 with an animal; default kept for: empty)"
    # The mechanism: fitted anyway, the empty model learns "almost nothing is empty" and calls the blank an animal.
    monkeypatch.setattr(fit_module, "REFUSE_EMPTY", 1)
    assert _p_empty(fit(evidence, labels, animal_threshold=0.2, classes=CLASSES)) < 0.5


def test_three_sequences_keep_the_default_calibration_and_warn(caplog, tmp_path):
    evidence, labels = _fit_set(np.random.default_rng(1), 3, 0)
    with caplog.at_level(logging.WARNING, logger="fusion.fit"):
        model = fit(evidence, labels, animal_threshold=0.2, classes=CLASSES)
    default = FusionModel.default_for(CLASSES)
    assert (model.temperature, model.prior_mix, model.crop_trust) == (default.temperature, default.prior_mix, 0.0)
    assert model.empty_coef == default.empty_coef and model.fitted_on["defaults_kept"] == ["empty", "species"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and "only 3 sequences" in lines[0] and "only 0 empty" in lines[1]
    assert "only 3 sequences with an animal" in lines[2] and "stay the defaults" in lines[2]
    back = FusionModel.load(model.save(tmp_path / "f.json"))
    assert back.fit_summary() == "fitted on 3 sequences (0 empty, 3 with an animal; default kept for: empty, species)"


def test_a_realistic_fit_set_fits_everything_without_a_warning(caplog):
    evidence, labels = _fit_set(np.random.default_rng(2), 40, 60)  # 60% empty, as a card is
    with caplog.at_level(logging.WARNING, logger="fusion.fit"):
        model = fit(evidence, labels, animal_threshold=0.2, classes=CLASSES)
    assert caplog.records == [] and model.fitted_on["defaults_kept"] == []
    assert model.empty_coef != FusionModel().empty_coef and _p_empty(model) > 0.5
    assert FusionModel(fitted_on={"sequences": 9}).fit_summary() == "fitted on 9 sequences (? empty, ? with an animal)"
