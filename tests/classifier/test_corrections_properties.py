"""corrections.csv from the review site: hostile boxes, labels and statuses give a one-line DataError naming
the file and line, or crops whose boxes are finite and inside the frame."""

import math

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camtrap.fileio import DataError
from classifier.data import CORRECTION_COLUMNS, CORRECTION_STATUSES, correction_samples
from tests.hostile import SPECIAL

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
number = st.one_of(st.sampled_from([str(v) for v in SPECIAL if not isinstance(v, list | dict)]),
                   st.floats().map(repr), st.integers().map(str))  # fmt: skip
bbox = st.one_of(st.lists(number, min_size=0, max_size=6).map(" ".join), st.just("0.1 0.2 0.3 0.4"))
row = st.fixed_dictionaries({"crop_id": st.text(max_size=4), "file": st.sampled_from(["a.jpg", "b/c.jpg"]),
                             "detection_index": number, "bbox": bbox, "predicted": st.sampled_from(["zebra", "x", ""]),
                             "status": st.sampled_from([*CORRECTION_STATUSES, "maybe", ""]),
                             "label": st.sampled_from(["", "lionfemale", "nope"])})  # fmt: skip


@SETTINGS
@given(rows=st.lists(row, min_size=1, max_size=5))
def test_corrections_read_or_refuse(tmp_path, rows):
    path = tmp_path / "corrections.csv"
    pd.DataFrame(rows, columns=list(CORRECTION_COLUMNS)).to_csv(path, index=False)
    try:
        samples = correction_samples(path, tmp_path)
    except DataError as exc:
        assert "corrections.csv" in str(exc) and "\n" not in str(exc), str(exc)
        return
    for s in samples.samples:
        x, y, w, h = s.bbox_xywh_norm
        assert all(math.isfinite(v) for v in (x, y, w, h)) and min(x, y, w, h) >= 0 and x + w <= 1.001
