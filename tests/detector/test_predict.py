import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camtrap.engine import EngineConfig
from camtrap.frames import folder_frames, frame_ref
from camtrap.mdjson import read_results, validate
from detector.model import DetectorFormatError, DetectorSpec, load
from detector.predict import DetectConfig, detect_files, postprocess
from tests.conftest import hakuna_command


def test_postprocess_maps_boxes_back():
    spec = DetectorSpec(name="t", input_size=640, output_threshold=0.1)
    raw = np.zeros((1, 7, 3), np.float32)
    raw[0, :4, 0] = [320, 240, 64, 48]  # centre of a 640x480 letterbox, 10% of each side
    raw[0, 4, 0] = 0.9  # animal
    raw[0, :4, 1] = [322, 241, 64, 48]  # duplicate, suppressed by NMS
    raw[0, 4, 1] = 0.5
    raw[0, :4, 2] = [100, 100, 20, 20]
    raw[0, 5, 2] = 0.05  # person below threshold
    (dets,) = postprocess(raw, [(640 / 1024, (0, 0), (1024, 768))], spec, 0.1)  # decoded at 1024x768
    assert len(dets) == 1 and dets[0].category == "animal" and dets[0].conf == pytest.approx(0.9)
    assert dets[0].bbox_xywh_norm == pytest.approx((0.45, 0.45, 0.1, 0.1), abs=1e-6)
    import torch

    (same,) = postprocess(torch.from_numpy(raw), [(640 / 1024, (0, 0), (1024, 768))], spec, 0.1)  # device path
    assert same == dets


def test_postprocess_drops_non_finite_anchors():
    spec = DetectorSpec(name="t", input_size=640, output_threshold=0.1)
    raw = np.zeros((1, 7, 3), np.float32)
    raw[0, :4, 0] = [np.nan, 240, 64, 48]
    raw[0, 4, 0] = 0.9
    raw[0, :4, 1] = [320, 240, np.inf, 48]
    raw[0, 4, 1] = 0.8
    raw[0, :4, 2] = [100, 100, 20, 20]
    raw[0, 4, 2] = np.inf
    (dets,) = postprocess(raw, [(1.0, (0, 0), (640, 480))], spec, 0.1)
    assert dets == ()


@pytest.mark.parametrize("rows", [5, 6, 8, 84])
def test_output_width_must_match_the_spec_classes(rows):
    spec = DetectorSpec(name="three-classes", input_size=640)  # animal, person, vehicle: 4 + 3 rows
    raw = np.zeros((1, rows, 10), np.float32)
    with pytest.raises(DetectorFormatError, match="spec lists 3 classes"):
        postprocess(raw, [(1.0, (0, 0), (640, 480))], spec, 0.1)


def _bad_folder(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    good = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    Image.fromarray(good).save(folder / "good.jpg")
    Image.fromarray(good).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(good).convert("L").save(folder / "gray.jpg")
    Image.fromarray(good[..., 0].astype(np.uint16) * 257).save(folder / "deep16.png")
    img = Image.fromarray(good)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(folder / "rotated.jpg", exif=exif)
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("hello")
    data = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return {"zero.jpg": "zero-byte file", "text.jpg": "not an image", "truncated.jpg": "truncated or corrupt image"}


def test_every_bad_file_gets_a_failure_entry(random_detector, tmp_path):
    failures = _bad_folder(tmp_path / "imgs")
    files = folder_frames(tmp_path / "imgs") + [frame_ref(tmp_path / "imgs", "missing.jpg")]
    failures["missing.jpg"] = "missing file"
    det = load(random_detector, device="cpu")
    cfg = DetectConfig(engine=EngineConfig(detector_batch=3, workers=2))
    results = detect_files(det, files, cfg, out=tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert validate(data) == []
    entries = {e["file"]: e for e in data["images"]}
    assert set(entries) == {f.file for f in files}
    for name, reason in failures.items():
        assert entries[name]["detections"] is None and entries[name]["failure"].startswith(reason), name
    for name in ("good.jpg", "cmyk.jpg", "gray.jpg", "deep16.png", "rotated.jpg"):
        assert isinstance(entries[name]["detections"], list), name
    assert (entries["rotated.jpg"]["width"], entries["rotated.jpg"]["height"]) == (96, 128)
    assert read_results(tmp_path / "r.json").frames == results.frames


def test_yolov5_checkpoint_gets_clear_message(tmp_path):
    import torch

    module = type(sys)("models")
    module.yolo = type(sys)("models.yolo")

    class Model:  # stands in for yolov5's models.yolo.Model
        pass

    Model.__module__, Model.__qualname__ = "models.yolo", "Model"
    module.yolo.Model = Model
    sys.modules["models"], sys.modules["models.yolo"] = module, module.yolo
    try:
        torch.save({"model": Model()}, tmp_path / "md_v5a.0.0.pt")
    finally:
        del sys.modules["models"], sys.modules["models.yolo"]
    with pytest.raises(DetectorFormatError, match=r"YOLOv5-format checkpoint.*hakuna\[mdv5\].*mdv1000-sorrel"):
        load(tmp_path / "md_v5a.0.0.pt")
    with pytest.raises(FileNotFoundError, match="detector weights not found"):
        load(tmp_path / "nope.pt")


def test_kill_9_then_resume_equals_uninterrupted(random_detector, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(1)
    for i in range(120):
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(imgs / f"f{i:03d}.jpg")
    common = ["detect", "--model", str(random_detector), "--images", str(imgs), "--batch-size", "2",
              "--workers", "0", "--device", "cpu", "--no-progress", "--checkpoint-every", "10"]  # fmt: skip
    subprocess.run(hakuna_command(*common, "--out", str(tmp_path / "full.json")), check=True, capture_output=True)
    out = tmp_path / "killed.json"
    ckpt = out.with_name(out.name + ".checkpoint.json")
    proc = subprocess.Popen(hakuna_command(*common, "--out", str(out)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not out.exists(), "killed before finishing, after a checkpoint"
    partial = json.loads(ckpt.read_text())
    assert validate(partial) == [] and 10 <= len(partial["images"]) < 120
    subprocess.run(hakuna_command(*common, "--out", str(out), "--resume"), check=True, capture_output=True)
    assert out.read_bytes() == (tmp_path / "full.json").read_bytes()
    assert not ckpt.exists()
