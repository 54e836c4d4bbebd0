"""The detector spec is checked field by field at load: hostile values give a one-line DataError naming the
source and field, or a spec whose thresholds are in [0, 1] and whose letterbox has a sane size."""

import json

import numpy as np
from hypothesis import HealthCheck, given, settings

from camtrap.fileio import DataError
from camtrap.geometry import letterbox
from detector.model import DetectorSpec
from tests.hostile import mutated

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = json.loads(DetectorSpec(name="t", input_size=64, output_threshold=0.1).to_json())


@SETTINGS
@given(raw=mutated(BASE))
def test_detector_spec_loads_checked_or_refuses_with_the_field(raw):
    try:
        text = json.dumps(raw)
    except ValueError:
        return
    try:
        spec = DetectorSpec.from_json(text, "det.onnx (spec)")
    except DataError as exc:
        assert str(exc).startswith("det.onnx (spec): ") and "\n" not in str(exc), str(exc)
        return
    for t in (spec.typical_threshold, spec.conservative_threshold, spec.output_threshold, spec.nms_iou):
        assert 0 <= t <= 1
    assert isinstance(spec.input_size, int) and isinstance(spec.stride, int) and spec.classes
    if spec.input_size <= 256:  # keep the example fast
        out, scale, _ = letterbox(np.zeros((30, 40, 3), np.uint8), spec.letterbox)
        assert max(out.shape[:2]) <= spec.input_size + spec.stride and np.isfinite(scale)


def test_the_issue_cases_are_refused():
    for field, value in [("stride", 0), ("input_size", 100000), ("input_size", "256"), ("typical_threshold", -1),
                         ("output_threshold", float("nan")), ("head", "x"), ("classes", [])]:
        try:
            DetectorSpec.from_json(json.dumps({**BASE, field: value}), "d")
        except DataError as exc:
            assert f"d: {field}" in str(exc), str(exc)
        else:
            raise AssertionError(f"{field}={value!r} was accepted")
