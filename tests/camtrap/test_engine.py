"""The streaming engine with stand-in stages whose answers are known: a detector that finds the one bright square
of each frame, a classifier whose "bright" probability is the crop's mean brightness."""

import os
import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

import camtrap.engine as engine
from camtrap.engine import EngineConfig, run
from camtrap.frames import OUTSIDE_ROOT, folder_frames, frame_ref
from camtrap.geometry import Letterbox
from camtrap.results import Detection

W, H = 320, 240


class BrightSquareDetector:
    """Finds the bright square in each letterboxed frame; the box is mapped back as a real detector's is."""

    letterbox, device = Letterbox(160, 32), "cpu"

    def __init__(self, fail_on_batch: int | None = None) -> None:
        self.batches, self.fail_on_batch = 0, fail_on_batch

    def __call__(self, batch, frames):
        self.batches += 1
        if self.batches == self.fail_on_batch:
            raise ValueError("detector exploded")
        arr = np.asarray(batch) if isinstance(batch, np.ndarray) else batch.permute(0, 2, 3, 1).cpu().numpy()
        out = []
        for img, f in zip(arr, frames):
            ys, xs = np.nonzero(img.mean(axis=-1) > 200)
            if not len(xs):
                out.append(())
                continue
            dw, dh = f.decoded_wh
            (px, py), s = f.pad, f.scale
            x0, y0 = (xs.min() - px) / s / dw, (ys.min() - py) / s / dh
            x1, y1 = (xs.max() + 1 - px) / s / dw, (ys.max() + 1 - py) / s / dh
            person = Detection("person", 0.99, (0, 0, 0.1, 0.1))
            out.append((Detection("animal", 0.9, (x0, y0, x1 - x0, y1 - y0)), person))
        return out


class BrightnessClassifier:
    classes = ("dark", "bright")
    input_hw, margin, source_max_side, threshold, max_crops_per_frame, device = (32, 32), 0.0, 320, 0.5, 10, "cpu"

    def prepare(self, crop):
        return cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA)

    def __call__(self, batch):
        arr = np.asarray(batch) if isinstance(batch, np.ndarray) else batch.permute(0, 2, 3, 1).cpu().numpy()
        m = arr.reshape(len(arr), -1).mean(axis=1) / 255.0
        return np.stack([1 - m, m], axis=1).astype(np.float32)


def _frames(folder, n=8):
    """Frames with a white square at a known place (every third frame empty); returns names and true boxes."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i in range(n):
        img = np.full((H, W, 3), 60, np.uint8)
        name = f"f{i:02d}.jpg"
        if i % 3 != 2:
            x, y, s = 20 + 25 * i, 30 + 10 * i, 64
            img[y : y + s, x : x + s] = 255
            truth[name] = (x / W, y / H, s / W, s / H)
        Image.fromarray(img).save(folder / name, quality=95)
    return truth


def _run(refs, **cfg):
    return list(run(refs, detect=BrightSquareDetector(), crop=BrightnessClassifier(), cfg=EngineConfig(**cfg)))


def test_outcomes_in_order_boxes_and_crops(tmp_path):
    truth = _frames(tmp_path / "data")
    refs = folder_frames(tmp_path / "data")
    outcomes = _run(refs, detector_batch=3, classifier_batch=2, workers=2)
    assert [o.frame.file for o in outcomes] == [r.file for r in refs]
    for o in outcomes:
        animals = [d for d in o.frame.detections if d.is_animal]
        if o.frame.file not in truth:
            assert animals == [] and o.crops == ()
            continue
        assert animals[0].bbox_xywh_norm == pytest.approx(truth[o.frame.file], abs=3 / W)
        assert (o.frame.width, o.frame.height) == (W, H)
        (crop,) = o.crops  # the person box is never cropped
        assert crop.detection_index == 0 and crop.probs[1] > 0.9  # the crop is the white square


def test_bad_frames_are_failures_and_nothing_outside_is_opened(tmp_path):
    _frames(tmp_path / "data", n=2)
    (tmp_path / "data" / "zero.jpg").write_bytes(b"")
    (tmp_path / "data" / "text.jpg").write_text("hello")
    (tmp_path / "secret.jpg").write_bytes((tmp_path / "data" / "f00.jpg").read_bytes())
    os.symlink(tmp_path / "secret.jpg", tmp_path / "data" / "link.jpg")
    names = ["f00.jpg", "zero.jpg", "missing.jpg", "../secret.jpg", str(tmp_path / "secret.jpg"), "link.jpg",
             "text.jpg", "f01.jpg"]  # fmt: skip
    refs = [frame_ref(tmp_path / "data", n) for n in names]
    outcomes = {o.frame.file: o.frame for o in _run(refs, detector_batch=2, workers=2)}
    assert outcomes["zero.jpg"].failure.startswith("zero-byte file")
    assert outcomes["missing.jpg"].failure.startswith("missing file")
    assert outcomes["text.jpg"].failure.startswith("not an image")
    for name in ("../secret.jpg", str(tmp_path / "secret.jpg"), "link.jpg"):
        assert outcomes[name].failure == OUTSIDE_ROOT and outcomes[name].detections is None
    assert outcomes["f00.jpg"].ok and outcomes["f01.jpg"].ok
    allowed = {o.frame.file: o.frame for o in _run([frame_ref(tmp_path / "data", "link.jpg", allow_outside_root=True)])}
    assert allowed["link.jpg"].ok


def test_each_frame_is_decoded_once(tmp_path, monkeypatch):
    _frames(tmp_path / "data", n=9)
    opened: list[str] = []
    real = engine.load_frame

    def counting(ref, **kwargs):
        opened.append(ref.file)
        return real(ref, **kwargs)

    monkeypatch.setattr(engine, "load_frame", counting)
    outcomes = _run(folder_frames(tmp_path / "data"), detector_batch=4, classifier_batch=3)
    assert sorted(opened) == sorted(o.frame.file for o in outcomes) and len(set(opened)) == 9
    assert sum(len(o.crops) for o in outcomes) == 6  # every animal box above the threshold got its crop


def test_memory_is_bounded_whatever_the_run_length(tmp_path):
    _frames(tmp_path / "data", n=3)
    base = folder_frames(tmp_path / "data")
    made, seen, most = 0, 0, 0

    def source():
        nonlocal made
        for i in range(300):
            made += 1
            yield base[i % 3]

    for _ in run(source(), detect=BrightSquareDetector(), crop=BrightnessClassifier(),
                 cfg=EngineConfig(detector_batch=4, classifier_batch=4, prefetch=8, queue_batches=2)):
        seen += 1
        most = max(most, made - seen)
    assert seen == 300
    assert most <= 8 + 4 * (2 + 1) * 3 + 8  # prefetch + batches in queues and stages: a bound, not the run's length


def test_a_stage_error_stops_the_run_and_is_raised(tmp_path):
    _frames(tmp_path / "data", n=9)
    before = threading.active_count()
    with pytest.raises(ValueError, match="detector exploded"):
        list(run(folder_frames(tmp_path / "data"), detect=BrightSquareDetector(fail_on_batch=2),
                 cfg=EngineConfig(detector_batch=2)))  # fmt: skip
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before  # no thread left behind


def test_torch_decoder_matches_pil_on_cpu(tmp_path):
    """The GPU path's code on the CPU: boxes within 2 px at 320x240, crop probabilities within 0.02."""
    pytest.importorskip("torchvision")
    _frames(tmp_path / "data", n=6)
    (tmp_path / "data" / "cmyk.jpg").write_bytes(b"")  # a failure in the batch too
    refs = folder_frames(tmp_path / "data")
    pil = _run(refs, decoder="pil", detector_batch=4)
    tensor = _run(refs, decoder="torch", detector_batch=4)
    assert [o.frame.file for o in pil] == [o.frame.file for o in tensor]
    for a, b in zip(pil, tensor):
        assert a.frame.failure == b.frame.failure
        for da, db in zip(a.frame.detections or (), b.frame.detections or ()):
            assert da.bbox_xywh_norm == pytest.approx(db.bbox_xywh_norm, abs=2 / W)
        for ca, cb in zip(a.crops, b.crops):
            assert ca.probs == pytest.approx(cb.probs, abs=0.02)
