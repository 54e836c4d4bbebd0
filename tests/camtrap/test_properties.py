"""Property-based tests: whatever bytes or tables a stranger hands the readers and the scorer, the answer is a
value or a one-line error naming the file, never a traceback and never a silent wrong number."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camtrap.dataset import read_labels, read_metadata
from camtrap.fileio import DataError
from camtrap.geometry import MAX_CROP_MARGIN, cut_crop
from camtrap.labels import COLUMNS
from camtrap.mdjson import read_results, results_from_json
from camtrap.metric import SubmissionError, read_submission, score, validate_submission
from tests.hostile import mutated

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADER = "seq_id," + ",".join(COLUMNS)

csv_cell = st.one_of(st.sampled_from(["0", "1", "", "0.5", "2", "-1", "nan", "inf", "x", '"', "1e3", " 1"]),
                     st.text(max_size=6))  # fmt: skip


@st.composite
def csv_texts(draw):
    """CSV-ish text: the real header or a mangled one, rows of odd cells, stray quotes and separators."""
    header = draw(st.sampled_from([HEADER, HEADER.replace("zebra", "zebre"), "seq_id,file_name,datetime",
                                   HEADER + ",extra", "", "seq_id"]))  # fmt: skip
    rows = draw(st.lists(st.lists(csv_cell, min_size=0, max_size=60).map(",".join), max_size=6))
    return "\n".join([header, *rows]) + draw(st.sampled_from(["", "\n", "\r\n"]))


def _one_line(exc: BaseException, name: str) -> None:
    text = str(exc)
    assert name in text and "\n" not in text.strip(), text


@SETTINGS
@given(data=st.one_of(st.binary(max_size=300), csv_texts().map(str.encode)))
def test_csv_readers_return_a_table_or_a_data_error(tmp_path, data):
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    for reader in (read_metadata, read_labels, read_submission):
        try:
            table = reader(path)
        except DataError as exc:
            _one_line(exc, "input.csv")
        else:
            assert isinstance(table, pd.DataFrame)
            if reader is read_labels:  # accepted labels are exactly 0/1 with a class in every row
                values = table.to_numpy()
                assert set(np.unique(values)) <= {0, 1} and (values.sum(axis=1) > 0).all()


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 5), st.floats(allow_nan=True), st.text(max_size=5))
json_values = st.recursive(
    json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner,
                                                                                     max_size=4)), max_leaves=20)


@st.composite
def results_like(draw):
    """Objects near the MegaDetector format: valid skeletons with random parts swapped in."""
    det = {"category": draw(st.sampled_from(["1", "2", 1, "9", None])), "conf": draw(json_leaf),
           "bbox": draw(st.one_of(st.lists(st.floats(-1, 2), min_size=4, max_size=4), json_values))}  # fmt: skip
    if draw(st.booleans()):
        det["classifications"] = draw(st.one_of(st.just([["0", 0.5]]), json_values))
    image = {"file": draw(st.one_of(st.text(max_size=8), json_leaf)),
             "detections": draw(st.one_of(st.just([det]), st.none(), json_values))}  # fmt: skip
    if draw(st.booleans()):
        image["failure"] = draw(json_leaf)
    obj = {"info": draw(st.one_of(st.just({"format_version": "1.6"}), json_values)),
           "detection_categories": draw(st.one_of(st.just({"1": "animal", "2": "person"}), json_values)),
           "images": draw(st.one_of(st.just([image]), json_values))}  # fmt: skip
    if draw(st.booleans()):
        obj["classification_categories"] = draw(st.one_of(st.just({"0": "zebra"}), json_values))
    return obj


@SETTINGS
@given(obj=st.one_of(results_like(), json_values))
def test_results_reader_returns_results_or_a_data_error(obj):
    try:
        results = results_from_json(obj, "results.json")
    except DataError as exc:
        _one_line(exc, "results.json")
    else:
        for frame in results.frames:
            assert frame.detections is None or all(0 <= d.conf <= 1 for d in frame.detections)


@SETTINGS
@given(data=st.binary(max_size=200))
def test_results_file_of_any_bytes(tmp_path, data):
    (tmp_path / "r.json").write_bytes(data)
    try:
        read_results(tmp_path / "r.json")
    except DataError as exc:
        _one_line(exc, "r.json")


@st.composite
def scored_pair(draw):
    n = draw(st.integers(1, 6))
    ids = pd.Index([f"s{i}" for i in range(n)], name="seq_id")
    y = np.zeros((n, len(COLUMNS)), np.int8)
    y[np.arange(n), draw(st.lists(st.integers(0, len(COLUMNS) - 1), min_size=n, max_size=n))] = 1
    p = np.array(draw(st.lists(st.floats(0, 1), min_size=n * len(COLUMNS), max_size=n * len(COLUMNS))))
    return pd.DataFrame(p.reshape(n, -1), index=ids, columns=list(COLUMNS)), pd.DataFrame(y, index=ids,
                                                                                          columns=list(COLUMNS))


@SETTINGS
@given(pair=scored_pair(), damage=st.sampled_from([None, "nan", "inf", "neg", "drop_row", "drop_col", "text", "dup"]))
def test_score_is_exact_or_refuses(pair, damage):
    sub, labels = pair
    if damage == "nan":
        sub.iloc[0, 0] = np.nan
    elif damage == "inf":
        sub.iloc[0, 3] = np.inf
    elif damage == "neg":
        sub.iloc[-1, -1] = -0.1
    elif damage == "drop_row":
        sub = sub.iloc[1:]
    elif damage == "drop_col":
        sub = sub.drop(columns="zebra")
    elif damage == "text":
        sub = sub.astype(object)
        sub.iloc[0, 1] = "high"
    elif damage == "dup":
        sub = pd.concat([sub, sub.iloc[:1]])
    if damage is None:
        p = np.clip(sub.to_numpy(float), 1e-15, 1 - 1e-15)
        y = labels.to_numpy(float)
        expected = np.mean([[-(yv * np.log(pv) + (1 - yv) * np.log(1 - pv)) for pv, yv in zip(pr, yr)]
                            for pr, yr in zip(p, y)])  # fmt: skip
        assert score(sub, labels) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    else:
        with pytest.raises(SubmissionError):
            validate_submission(sub, labels.index)
            score(sub, labels)


def test_json_of_nan_confidence_is_refused():
    data = {"info": {"format_version": "1.6"}, "detection_categories": {"1": "animal"},
            "images": [{"file": "a", "detections": [{"category": "1", "conf": float("nan"), "bbox": [0, 0, .1, .1]}]}]}
    with pytest.raises(DataError, match="conf must be a number"):
        results_from_json(json.loads(json.dumps(data)), "nan.json")


RESULTS = {"info": {"format_version": "1.6", "detector": "t"}, "detection_categories": {"1": "animal", "2": "person"},
           "classification_categories": {"0": "zebra"},
           "images": [{"file": "a.jpg", "width": 64, "height": 48,
                       "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.2, 0.3, 0.4],
                                       "classifications": [["0", 0.8]]}]},
                      {"file": "b/c.jpg", "detections": [{"category": "2", "conf": 0.5, "bbox": [0, 0, 1, 1]}]},
                      {"file": "d.jpg", "failure": "not an image", "detections": None}]}  # fmt: skip


@SETTINGS
@given(obj=mutated(RESULTS, max_changes=3))
def test_results_fields_checked_and_accepted_boxes_crop(obj):
    """Hostile numbers in a valid results file: refused, or boxes and confidences any stage can use."""
    try:
        results = results_from_json(json.loads(json.dumps(obj)), "results.json")
    except DataError as exc:
        _one_line(exc, "results.json")
        return
    files = [f.file for f in results.frames]
    assert len(files) == len(set(files))
    rgb = np.zeros((48, 64, 3), np.uint8)
    for frame in results.frames:
        for d in frame.detections or ():
            assert 0 <= d.conf <= 1 and all(math.isfinite(v) for v in d.bbox_xywh_norm)
            assert max(cut_crop(rgb, d.bbox_xywh_norm, MAX_CROP_MARGIN).shape) <= 3 * 64 + 2
    for pairs in (results.classifications or {}).values():
        assert all(0 <= p <= 1 for _, p in pairs)


digits = st.text("0123456789", min_size=0, max_size=30)


@SETTINGS
@given(rows=st.lists(st.tuples(st.one_of(digits, st.sampled_from(["²", "99999", "-1", "1.5"])), digits,
                               st.sampled_from([".jpg", ".JPG", "", ".99999999999999999999"])),
                     min_size=1, max_size=5))  # fmt: skip
def test_metadata_with_odd_numbers_reads_or_refuses(tmp_path, rows):
    """Seasons of any length or script, frame numbers of 25 digits: a table or a one-line DataError."""
    lines = ["seq_id,file_name,datetime"]
    lines += [f"SER_S{season}#A#1#{i},S1/PICT{frame}{ext},2020-01-01" for i, (season, frame, ext) in enumerate(rows)]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    try:
        frames = read_metadata(tmp_path / "m.csv")
    except DataError as exc:
        _one_line(exc, "m.csv")
        return
    seasons = frames["season"].dropna()
    assert ((seasons >= 0) & (seasons <= 999)).all() and (frames["frame"] >= 0).all()


def test_the_issue_cases_of_results_files_are_refused():
    bad_box = json.loads(json.dumps(RESULTS))
    bad_box["images"][0]["detections"][0]["bbox"] = [float("nan"), 0.1, 0.1, 0.1]
    twice = json.loads(json.dumps(RESULTS))
    twice["images"].append(dict(twice["images"][0]))
    for obj, match in [(bad_box, "bbox must be"), (twice, "listed twice")]:
        with pytest.raises(DataError, match=match):
            results_from_json(json.loads(json.dumps(obj)), "r.json")


def test_speciesnet_confidence_over_one_is_refused_at_import():
    from camtrap.speciesnet import results_from_speciesnet

    pred = {"filepath": "a.jpg", "detections": [{"category": "1", "label": "animal", "conf": 1.7,
                                                 "bbox": [0.1, 0.1, 0.2, 0.2]}]}  # fmt: skip
    with pytest.raises(DataError, match=r"predictions\[0\].*conf must be a number in \[0, 1\]"):
        results_from_speciesnet({"predictions": [pred]}, "predictions.json")
