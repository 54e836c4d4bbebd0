"""``hakuna classifier train --corrections``: with or without --images-csv, the set it would train on, and a
warning naming the classes the retrained model would lose (training itself replaced: known answers, fast)."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

import classifier.train
from hakuna.cli import main
from hakuna.review import review_labels
from tests.classifier.test_corrections_merge import write_corrections


class _Stop(Exception):
    """Raised by the fake train once it has the samples."""


@pytest.fixture
def trained(monkeypatch):
    seen = []

    def fake_train(samples, *args, **kwargs):
        seen.append(samples)
        raise _Stop

    monkeypatch.setattr(classifier.train, "train", fake_train)
    return seen


def _train(tmp_path, *extra):
    with pytest.raises(_Stop):
        main(["classifier", "train", "--corrections", str(write_corrections(tmp_path)), "--images", str(tmp_path),
              "--out", str(tmp_path / "m.pt"), "--device", "cpu", "--no-progress", *extra])  # fmt: skip


def _vanished(caplog):
    return [r.getMessage() for r in caplog.records if "will not learn them" in r.getMessage()]


def test_corrections_alone_warn_of_the_classes_that_vanish(tmp_path, trained, caplog):
    site = tmp_path / "out" / "review"
    site.mkdir(parents=True)
    labels = ["bird", "impala", "lion", "wildebeest", "zebra"]
    (site / "data.js").write_text("window.REVIEW = " + json.dumps({"labels": labels, "crops": []}) + ";\n")
    assert review_labels(tmp_path / "out") == review_labels(site / "index.html") == tuple(labels)
    with caplog.at_level(logging.WARNING):
        _train(tmp_path)
    assert trained[-1].classes and len(trained[-1].samples) == 3
    # bird was predicted (then rejected), lion only by a sequence verdict: neither has a reviewed crop
    assert _vanished(caplog) == ["the new model has no example of 2 class(es) predicted or given in the corrections, "
                                 "and will not learn them: bird, lion; add your labelled photos with --images-csv "
                                 "LABELLED.csv"]  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _train(tmp_path, "--review", str(tmp_path / "out"))
    assert "bird, lion, wildebeest;" in _vanished(caplog)[0]  # the review site knows its classifier's classes


def test_corrections_added_to_labelled_photos_keep_their_classes(tmp_path, trained, caplog):
    pd.DataFrame({"path": ["g.jpg", "h.jpg", "i.jpg"], "label": ["bird", "wildebeest", "lion"]}).to_csv(
        tmp_path / "labelled.csv", index=False)
    with caplog.at_level(logging.WARNING):
        _train(tmp_path, "--images-csv", str(tmp_path / "labelled.csv"))
    samples = trained[-1]
    assert samples.classes == ("bird", "impala", "lion", "wildebeest", "zebra") and len(samples.samples) == 6
    assert np.asarray(samples.targets()).sum(axis=0).tolist() == [1, 2, 1, 1, 1] and _vanished(caplog) == []
    _train(tmp_path, "--include-unreviewed")  # the old behaviour: unreviewed crops keep their prediction
    assert len(trained[-1].samples) == 6


def test_corrections_refuse_data_and_contradictions(tmp_path, capsys):
    csv = str(write_corrections(tmp_path))
    base = ["classifier", "train", "--corrections", csv, "--images", str(tmp_path), "--out", str(tmp_path / "m.pt")]
    assert main([*base, "--data", str(tmp_path)]) == 2
    assert main([*base, "--reviewed-only", "--include-unreviewed"]) == 2
    assert main(["classifier", "train", "--out", str(tmp_path / "m.pt")]) == 2
    assert "one of --data, --images-csv or --corrections is required" in capsys.readouterr().err
