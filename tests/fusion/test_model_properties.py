"""fusion.json is checked field by field at load: hostile values give a one-line DataError naming the file and
field, or a model whose fused probabilities are finite and within [0, 1]."""

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings

from camtrap.fileio import DataError
from camtrap.labels import SPECIES
from fusion import FusionModel, SequenceEvidence, fuse
from tests.hostile import mutated

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
ONEHOT = tuple(1.0 if i == 3 else 0.0 for i in range(len(SPECIES)))
EVIDENCE = [SequenceEvidence("a", 2, (0.01, 0.0)), SequenceEvidence("b", 3, (0.9, 0.1), (ONEHOT,), (0.9,)),
            SequenceEvidence("c", 2, ())]  # fmt: skip


def _saved() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return json.loads(FusionModel(animal_threshold=0.2).save(Path(tmp) / "f.json").read_text())


BASE = _saved()


@SETTINGS
@given(raw=mutated(BASE, max_changes=4))
def test_fusion_file_loads_checked_or_refuses_with_the_field(tmp_path, raw):
    path = tmp_path / "fusion.json"
    try:
        path.write_text(json.dumps(raw))
    except ValueError:
        return
    try:
        model = FusionModel.load(path)
    except DataError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc), str(exc)
        return
    for ev in EVIDENCE:
        p = np.asarray(fuse(ev, model).probs)
        assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all(), p
    assert model.config.prob_floor <= 0.01


def test_the_issue_cases_are_refused(tmp_path):
    for raw, field in [({**BASE, "config": {**BASE["config"], "prob_floor": 0.9}}, "prob_floor"),
                       ({**BASE, "empty_coef": [1.0, 2.0]}, "empty_coef"),
                       ({**BASE, "temperature": float("nan")}, "temperature"),
                       ({**BASE, "priors": {**BASE["priors"], "zebra": -1}}, "priors.zebra")]:  # fmt: skip
        (tmp_path / "f.json").write_text(json.dumps(raw))
        try:
            FusionModel.load(tmp_path / "f.json")
        except DataError as exc:
            assert field in str(exc), str(exc)
        else:
            raise AssertionError(field)
