import json

import pytest

from camtrap.fileio import DataError
from camtrap.results import Detection, DetectionCategory, FrameDetections
from detector.mdjson import DetectionResults, read_results, to_json, validate, write_results


def _results():
    frames = (
        FrameDetections("a/1.jpg", (Detection(DetectionCategory.ANIMAL, 0.91234, (0.1, 0.2, 0.3, 0.4)),
                                    Detection(DetectionCategory.PERSON, 0.3, (0.5, 0.5, 0.2, 0.1))), None,
                        2048, 1536, "2010:07:18 16:26:14"),
        FrameDetections("a/2.jpg", (), None, 2048, 1536),
        FrameDetections("a/3.jpg", None, "truncated or corrupt image"),
    )  # fmt: skip
    return DetectionResults(frames, "test-detector", {"image_size": 640})


def test_format_and_round_trip(tmp_path):
    data = to_json(_results())
    assert validate(data) == []
    assert data["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    first = data["images"][0]
    assert first["detections"][0] == {"category": "1", "conf": 0.912, "bbox": [0.1, 0.2, 0.3, 0.4]}
    assert first["max_detection_conf"] == 0.912 and first["width"] == 2048
    assert data["images"][1]["detections"] == []
    assert data["images"][2] == {"file": "a/3.jpg", "failure": "truncated or corrupt image", "detections": None}
    path = write_results(tmp_path / "r.json", _results())
    back = read_results(path)
    assert [f.file for f in back.frames] == ["a/1.jpg", "a/2.jpg", "a/3.jpg"]
    assert back.frames[0].detections[1].category is DetectionCategory.PERSON
    assert back.frames[2].detections is None and back.frames[2].failure == "truncated or corrupt image"
    assert to_json(back) == data  # a second write is identical


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d["info"].pop("format_version"), "info.format_version"),
        (lambda d: d["images"][0]["detections"][0].update(category="7"), "category must be one of"),
        (lambda d: d["images"][0]["detections"][0].update(conf=1.5), "conf must be a number in [0, 1]"),
        (lambda d: d["images"][0]["detections"][0].update(bbox=[0.9, 0.1, 0.5, 0.1]), "not normalised"),
        (lambda d: d["images"][2].pop("failure"), "detections is null but there is no 'failure'"),
    ],
)
def test_validator_finds_problems(mutate, problem):
    data = to_json(_results())
    mutate(data)
    assert any(problem in p for p in validate(data)), validate(data)


def test_reader_names_file(tmp_path):
    data = to_json(_results())
    data["images"][0]["detections"][0]["conf"] = "high"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"bad.json: not a MegaDetector results file: images\[0\].detections\[0\]"):
        read_results(tmp_path / "bad.json")
