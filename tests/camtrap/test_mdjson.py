import json

import pytest

from camtrap.fileio import DataError
from camtrap.mdjson import DetectionResults, read_results, results_from_json, to_json, validate, write_results
from camtrap.results import Detection, FrameDetections


def _results():
    frames = (
        FrameDetections("a/1.jpg", (Detection("animal", 0.91234, (0.1, 0.2, 0.3, 0.4)),
                                    Detection("person", 0.3, (0.5, 0.5, 0.2, 0.1))), None,
                        2048, 1536, "2010:07:18 16:26:14"),
        FrameDetections("a/2.jpg", (), None, 2048, 1536),
        FrameDetections("a/3.jpg", None, "truncated or corrupt image"),
    )  # fmt: skip
    return DetectionResults(frames, "detector.pt", {"image_size": 640})


def test_format_and_round_trip(tmp_path):
    data = to_json(_results())
    assert validate(data) == []
    info = {"format_version": "1.6", "detector": "detector.pt", "detector_metadata": {"image_size": 640}}
    assert data["info"] == info
    assert data["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    first = data["images"][0]
    assert first["detections"][0] == {"category": "1", "conf": 0.912, "bbox": [0.1, 0.2, 0.3, 0.4]}
    assert first["width"] == 2048 and "max_detection_conf" not in first  # dropped in format 1.6, as MD does
    assert data["images"][1]["detections"] == []
    assert data["images"][2] == {"file": "a/3.jpg", "failure": "truncated or corrupt image", "detections": None}
    path = write_results(tmp_path / "r.json", _results())
    back = read_results(path)
    assert [f.file for f in back.frames] == ["a/1.jpg", "a/2.jpg", "a/3.jpg"]
    assert back.frames[0].detections[1].category == "person"
    assert back.frames[2].detections is None and back.frames[2].failure == "truncated or corrupt image"
    assert to_json(back) == data  # a second write is identical


def _foreign() -> dict:
    """A results file as another tool may write it: its own ids, an extra category, numeric version, extras."""
    return {
        "info": {"format_version": 1.4, "detector": "md_v5a.0.0.pt", "detection_completion_time": "2024-01-02",
                 "detector_metadata": {"typical_detection_threshold": 0.2}},
        "detection_categories": {"1": "person", "2": "unknown", "4": "animal", "7": "group"},
        "classification_categories": {"0": "zebra"},
        "classification_category_descriptions": {"0": "uuid;mammalia;perissodactyla;equidae;equus;quagga;zebra"},
        "images": [{"file": "x.jpg", "detections": [
            {"category": "4", "conf": 0.8, "bbox": [0.1, 0.1, 0.2, 0.2], "classifications": [["0", 0.9]]},
            {"category": "2", "conf": 0.7, "bbox": [0.5, 0.5, 0.1, 0.1]},
            {"category": "7", "conf": 0.6, "bbox": [0.6, 0.6, 0.1, 0.1]}],
            "location": "site-3", "exif_metadata": {"Make": "Bushnell"}}],
        "custom_top_level": [1, 2],
    }  # fmt: skip


def test_categories_are_read_by_name_and_rewrites_keep_everything():
    results = results_from_json(_foreign())
    dets = results.frames[0].detections
    assert [d.category for d in dets] == ["animal", "unknown", "group"]
    assert [d.is_animal for d in dets] == [True, False, False]  # "unknown" is not shown as a person
    assert results.typical_threshold == 0.2
    data = to_json(results)
    assert validate(data) == []
    assert data["detection_categories"] == _foreign()["detection_categories"]  # ids kept
    assert [d["category"] for d in data["images"][0]["detections"]] == ["4", "2", "7"]
    assert data["info"]["format_version"] == "1.6" and data["info"]["detection_completion_time"] == "2024-01-02"
    assert data["classification_category_descriptions"] == _foreign()["classification_category_descriptions"]
    assert data["images"][0]["location"] == "site-3" and data["images"][0]["exif_metadata"] == {"Make": "Bushnell"}
    assert data["images"][0]["detections"][0]["classifications"] == [["0", 0.9]]
    assert data["custom_top_level"] == [1, 2]


def test_new_category_names_get_free_ids():
    frames = (FrameDetections("a.jpg", (Detection("animal", 0.5, (0, 0, 0.1, 0.1)), Detection("vehicle", 0.5,
              (0, 0, 0.1, 0.1)))),)  # fmt: skip
    results = DetectionResults(frames, detection_categories={"1": "person", "3": "animal"})
    data = to_json(results)
    assert data["detection_categories"] == {"1": "person", "3": "animal", "4": "vehicle"}
    assert validate(data) == []


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d["info"].pop("format_version"), "info.format_version"),
        (lambda d: d["info"].update(format_version="new"), "info.format_version"),
        (lambda d: d["images"][0]["detections"][0].update(category="7"), "category must be one of"),
        (lambda d: d["images"][0]["detections"][0].update(conf=1.5), "conf must be a number in [0, 1]"),
        (lambda d: d["images"][0]["detections"][0].update(bbox=[0.9, 0.1, 0.5, 0.1]), "not normalised"),
        (lambda d: d["images"][2].pop("failure"), "detections is null but there is no 'failure'"),
        (lambda d: d["images"][1].update(failure="x"), "has a failure but a non-null detections list"),
        (lambda d: d["detection_categories"].update({"9": " "}), "non-blank names"),
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
    (tmp_path / "latin1.json").write_bytes(b'{"info": "caf\xe9"}')
    with pytest.raises(DataError, match=r"latin1.json: not UTF-8 text"):
        read_results(tmp_path / "latin1.json")
