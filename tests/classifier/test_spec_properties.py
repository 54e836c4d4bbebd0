"""The classifier spec is checked field by field at load: hostile values give a one-line DataError naming the
source and field, or a spec whose preprocessing and temperature give finite numbers."""

import json

import numpy as np
from hypothesis import HealthCheck, given, settings

from camtrap.fileio import DataError
from classifier.spec import ModelSpec, ResizePolicy
from tests.hostile import mutated

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = json.loads(ModelSpec("efficientnet_lite0", (32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
                            ResizePolicy.PAD_SQUARE, ("lion", "zebra", "other"), False,
                            training={"epochs": 1}).to_json())  # fmt: skip
IMAGE = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


@SETTINGS
@given(raw=mutated(BASE))
def test_spec_loads_checked_or_refuses_with_the_field(raw):
    try:
        text = json.dumps(raw)
    except ValueError:
        return
    try:
        spec = ModelSpec.from_json(text, "model.pt (spec)")
    except DataError as exc:
        message = str(exc)
        assert message.startswith("model.pt (spec): ") and "\n" not in message, message
        return
    x = spec.preprocess([IMAGE])
    assert x.shape == (1, 3, *spec.input_hw) and np.isfinite(x).all()
    assert np.isfinite(np.float64(10.0) / spec.temperature)
    assert spec.classes and len(set(spec.classes)) == len(spec.classes)


def test_the_issue_cases_are_refused():
    for field, value in [("temperature", float("nan")), ("input_hw", [0, 0]), ("input_hw", [100000, 100000]),
                         ("classes", []), ("classes", ["a", "a"]), ("std", [0, 1, 1]), ("backbone", "nope")]:
        raw = {**BASE, field: value}
        try:
            ModelSpec.from_json(json.dumps(raw), "s")
        except DataError as exc:
            assert f"s: {field}" in str(exc)
        else:
            raise AssertionError(f"{field}={value!r} was accepted")
    for text in ("not json", "[1, 2]", "{}", '"x"'):
        try:
            ModelSpec.from_json(text, "s")
        except DataError as exc:
            assert str(exc).startswith("s: ")
        else:
            raise AssertionError(text)


def test_weights_that_do_not_fit_the_specs_classes_are_refused(tmp_path):
    import dataclasses

    import pytest
    import torch

    from camtrap.safeload import ModelFileError
    from classifier.predict import TorchClassifier, build_model
    from classifier.spec import CHECKPOINT_FORMAT

    spec = ModelSpec.from_json(json.dumps(BASE))
    state = build_model(spec).state_dict()
    wrong = dataclasses.replace(spec, classes=("a", "b", "c", "d", "e"))  # 5 names, a head of 3
    torch.save({"format": CHECKPOINT_FORMAT, "spec": wrong.to_json(), "model": state, "history": []},
               tmp_path / "m.pt")  # fmt: skip
    with pytest.raises(ModelFileError, match="m.pt: the weights do not fit the spec .5 classes"):
        TorchClassifier(tmp_path / "m.pt", "cpu")


def test_framing_of_the_training_data_is_in_the_spec_and_a_mismatch_is_said(tmp_path, caplog):
    import dataclasses
    import logging

    from classifier.config import ClassifierTrainConfig
    from classifier.data import csv_samples
    from classifier.predict import framing_notice
    from classifier.train import _spec
    from tests.classifier.test_training import _csv

    crops = ModelSpec.from_json(json.dumps(BASE))
    photos = dataclasses.replace(crops, resize=ResizePolicy.STRETCH, training={"source": "csv:labelled.csv"})
    assert (crops.framing, photos.framing) == ("crops", "photos")
    assert _spec(csv_samples(_csv(tmp_path, n_per_class=1)), ClassifierTrainConfig()).framing == "photos"
    with caplog.at_level(logging.WARNING, logger="classifier.predict"):
        assert framing_notice(crops, "crops") is None and framing_notice(photos, "photos") is None
        assert not caplog.records
        assert "trained on whole photos (source csv:labelled.csv, resize stretch)" in framing_notice(photos, "crops")
        assert "trained on crops of detector boxes" in framing_notice(crops, "photos")
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
