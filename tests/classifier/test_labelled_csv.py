"""The one reader of ``--images-csv`` files: empty-photo labels (``empty``/``blank``, any case) are empty photos,
never a class; ``seq_id`` and ``group_id`` mean the same thing to every reader; skipped rows are named."""

import logging

import pandas as pd
import pytest

from camtrap.fileio import DataError
from camtrap.labels import COLUMNS, EMPTY_LABELS, is_empty_label
from classifier.data import csv_samples, read_labelled_csv
from classifier.spec import ModelSpec, ResizePolicy
from hakuna.evaluate import images_csv_as_sequences

ROWS = [("a.jpg", "otter", "s1", "site1"), ("b.jpg", "otter", "s1", "site1"), ("c.jpg", "Blank", "s2", "site1"),
        ("d.jpg", "empty", "s3", "site2"), ("e.jpg", "EMPTY", "", "site2"), ("f.jpg", "bicycle", "s4", "site2"),
        ("g.jpg", "unlabeled", "s5", "site2")]  # fmt: skip


def _csv(tmp_path, columns=("path", "label", "seq_id", "group_id")):
    df = pd.DataFrame(ROWS, columns=["path", "label", "seq_id", "group_id"])[list(columns)]
    path = tmp_path / "labels.csv"
    df.to_csv(path, index=False)
    return path


def test_empty_labels_are_one_case_insensitive_set():
    assert {"empty", "blank"} == EMPTY_LABELS
    assert all(is_empty_label(v) for v in ("empty", "Empty", " BLANK ", "blank"))
    assert not any(is_empty_label(v) for v in ("otter", "blanket", "", "unknown"))


def test_training_skips_empty_photos_with_a_count(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        samples = csv_samples(_csv(tmp_path))
    assert samples.classes == ("bicycle", "otter")  # no 'empty'/'Blank' class
    assert sorted(s.key for s in samples.samples) == ["a.jpg", "b.jpg", "f.jpg"]
    assert "3 empty photo(s) (label empty/blank) skipped" in caplog.text
    assert "1 unlabelled row(s) skipped" in caplog.text


def test_seq_id_and_group_id_both_read(tmp_path, caplog):
    both = read_labelled_csv(_csv(tmp_path)).set_index("path")
    assert both.loc["a.jpg", "seq"] == "s1" and both.loc["a.jpg", "group"] == "site1"
    assert both.loc["e.jpg", "seq"] == "e.jpg"  # a blank seq_id: the photo on its own
    assert list(both["label"]) == ["otter", "otter", "empty", "empty", "empty", "bicycle"]
    seq_only = read_labelled_csv(_csv(tmp_path, ("path", "label", "seq_id"))).set_index("path")
    assert seq_only.loc["a.jpg", "group"] == "s1"  # CV groups default to the sequence
    with caplog.at_level(logging.INFO):
        group_only = read_labelled_csv(_csv(tmp_path, ("path", "label", "group_id"))).set_index("path")
    assert group_only.loc["a.jpg", "seq"] == "site1" and "each group_id is taken as one sequence" in caplog.text
    samples = csv_samples(_csv(tmp_path, ("path", "label", "seq_id")))
    assert {s.key: s.group for s in samples.samples} == {"a.jpg": "s1", "b.jpg": "s1", "f.jpg": "s4"}


def test_evaluation_reader_forms_sequences_and_empty_ones(tmp_path, caplog):
    columns = ("bicycle", "otter", "empty")
    with caplog.at_level(logging.INFO):
        part = images_csv_as_sequences(_csv(tmp_path, ("path", "label", "group_id")), columns=columns)
    assert list(part.labels.index) == ["site1", "site2"]  # group_id forms the sequences: not one per photo
    assert part.labels.loc["site1"].to_dict() == {"bicycle": 0, "otter": 1, "empty": 1}
    assert "6 photo(s) in 2 sequence(s)" in caplog.text
    with caplog.at_level(logging.INFO):
        part = images_csv_as_sequences(_csv(tmp_path), columns=("otter", "empty"))
    assert part.labels.loc["s2", "empty"] == 1 and part.labels.loc["e.jpg", "empty"] == 1  # 'Blank', 'EMPTY'
    assert "1 row(s) skipped: label not among the classifier's classes (bicycle)" in caplog.text


@pytest.mark.parametrize("name", ["empty", "Empty", "blank", "Blank"])
def test_a_class_named_like_empty_is_refused(tmp_path, name):
    spec = ModelSpec("efficientnet_lite0", (64, 64), (0.5,) * 3, (0.5,) * 3, ResizePolicy.PAD_SQUARE,
                     ("otter", "zebra"), False)  # fmt: skip
    with pytest.raises(DataError, match=f"classes: '{name}' is an empty-photo label"):
        ModelSpec(**{**spec.__dict__, "classes": ("otter", name)})  # at train time
    bad = spec.to_json().replace('"zebra"', f'"{name}"')
    with pytest.raises(DataError, match=f"spec.json: classes: '{name}' is an empty-photo label"):
        ModelSpec.from_json(bad, tmp_path / "spec.json")  # at load time
    if name == "empty":  # the competition's schema keeps its own 'empty' column
        assert ModelSpec(**{**spec.__dict__, "classes": COLUMNS}).classes == COLUMNS
