import json

import numpy as np
from PIL import Image

from camtrap.frames import folder_frames
from camtrap.mdjson import DetectionResults
from camtrap.results import Detection, FrameDetections
from detector.crops import export_crops, is_empty_frame


def test_empty_screening():
    animal = Detection("animal", 0.3, (0, 0, 0.1, 0.1))
    person = Detection("person", 0.9, (0, 0, 0.1, 0.1))
    assert not is_empty_frame(FrameDetections("a", (animal,)), 0.2)
    assert is_empty_frame(FrameDetections("a", (animal,)), 0.5)
    assert is_empty_frame(FrameDetections("a", (person,)), 0.2)  # people do not make a frame hold an animal
    assert not is_empty_frame(FrameDetections("a", None, "missing file"), 0.2)  # unknown, not empty


def test_export_crops_only_animals_above_threshold(tmp_path):
    img = np.zeros((100, 200, 3), np.uint8)
    img[40:60, 50:90] = 255
    Image.fromarray(img).save(tmp_path / "a.png")
    dets = (Detection("animal", 0.9, (0.25, 0.4, 0.2, 0.2)), Detection("animal", 0.1, (0, 0, 0.1, 0.1)),
            Detection("group", 0.95, (0.5, 0.5, 0.2, 0.2)))  # fmt: skip
    results = DetectionResults((FrameDetections("a.png", dets), FrameDetections("b.png", None, "missing file")))
    frames = {r.file: r for r in folder_frames(tmp_path, ["a.png", "b.png"])}
    assert export_crops(results, frames, tmp_path / "crops", threshold=0.2, margin=0.0) == 1
    mapping = json.loads((tmp_path / "crops" / "crops.json").read_text())
    assert [c["detection_index"] for c in mapping["crops"]] == [0]
    crop = np.asarray(Image.open(tmp_path / "crops" / mapping["crops"][0]["crop"]))
    assert crop.shape[:2] == (40, 40) and crop[10:30].mean() > 200  # the white box, squared around its middle


def test_crop_names_never_collide_and_unwritten_crops_are_not_listed(tmp_path, monkeypatch):
    from detector import crops

    (tmp_path / "a").mkdir()
    names = ["a/b.jpg", "a__b.jpg", "x.jpg", "x.png", "n" * 250 + ".jpg"]
    for name in names:
        Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(tmp_path / name)
    det = (Detection("animal", 0.9, (0.2, 0.2, 0.5, 0.5)),)
    results = DetectionResults(tuple(FrameDetections(n, det) for n in names))
    frames = {r.file: r for r in folder_frames(tmp_path, names)}
    assert export_crops(results, frames, tmp_path / "crops", threshold=0.2, margin=0.1) == len(names)
    listed = [c["crop"] for c in json.loads((tmp_path / "crops" / "crops.json").read_text())["crops"]]
    assert len(set(listed)) == len(names) and all((tmp_path / "crops" / c).is_file() for c in listed)
    assert max(len(c) for c in listed) < 100
    monkeypatch.setattr(crops.cv2, "imwrite", lambda *a, **k: False)  # a full disk, a name the OS refuses
    assert export_crops(results, frames, tmp_path / "crops2", threshold=0.2, margin=0.1) == 0
    mapping = json.loads((tmp_path / "crops2" / "crops.json").read_text())
    assert mapping["crops"] == [] and mapping["unwritten_crops"] == len(names)
