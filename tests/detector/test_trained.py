"""Acceptance on a detector trained in the test session (`trained_detector`): recall, false boxes, ONNX parity,
results-file validity, crops."""

import json

import numpy as np
import pytest

from camtrap.dataset import read_test
from camtrap.lila import read_lila_boxes
from camtrap.mdjson import read_results, to_json, validate
from detector.crops import export_crops, is_empty_frame
from detector.evaluate import evaluate, iou_xywh
from detector.model import export_onnx, load
from detector.predict import detect_files

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def held_out(detector_synth):
    test, _ = read_test(detector_synth.test_data)
    return test.frame_refs(), read_lila_boxes(detector_synth.boxes_json)


@pytest.fixture(scope="module")
def torch_results(trained_detector, held_out, tmp_path_factory):
    files, _ = held_out
    out = tmp_path_factory.mktemp("det-results") / "results.json"
    return detect_files(load(trained_detector, device="cpu"), files, out=out), out


def test_recall_and_false_boxes_on_held_out_season(trained_detector, held_out, torch_results):
    _, truth = held_out
    results, _ = torch_results
    threshold = load(trained_detector, device="cpu").spec.typical_threshold
    scores = evaluate(list(results.frames), truth, threshold=threshold, iou=0.5)
    print(f"recall {scores.recall:.3f} ({scores.found}/{scores.animals}), false boxes per empty frame "
          f"{scores.false_per_empty_frame:.3f} ({scores.false_on_empty}/{scores.frames_empty})")
    assert scores.animals >= 50 and scores.frames_empty >= 50
    assert scores.recall >= 0.80
    assert scores.false_per_empty_frame <= 0.2


def test_results_file_valid_and_round_trips(torch_results):
    results, path = torch_results
    data = json.loads(path.read_text())
    assert validate(data) == []
    assert to_json(read_results(path)) == data == to_json(results)


def test_onnx_gives_same_boxes(trained_detector, held_out, torch_results, tmp_path):
    files, _ = held_out
    onnx_path = export_onnx(trained_detector, tmp_path / "detector.onnx")
    onnx_det = load(onnx_path, device="cpu")
    assert onnx_det.backend == "onnx" and onnx_det.spec == load(trained_detector, device="cpu").spec
    onnx_results = detect_files(onnx_det, files)
    torch_frames = torch_results[0].frames
    compared = 0
    for a, b in zip(torch_frames, onnx_results.frames):
        da = [d for d in a.detections if d.conf >= 0.1]
        db = [d for d in b.detections if d.conf >= 0.05]
        for d in da:
            ious = iou_xywh(np.array([d.bbox_xywh_norm]), np.array([x.bbox_xywh_norm for x in db]).reshape(-1, 4))
            j = int(ious.argmax())
            assert ious[0, j] > 0.95 and abs(db[j].conf - d.conf) <= 0.02, (a.file, d, db[j])
            compared += 1
    assert compared >= 30


def test_empty_screening_and_crops(held_out, torch_results, tmp_path):
    results, _ = torch_results
    n = export_crops(results, {r.file: r for r in held_out[0]}, tmp_path / "crops", threshold=0.2, margin=0.1)
    mapping = json.loads((tmp_path / "crops" / "crops.json").read_text())
    assert n == len(mapping["crops"]) > 10
    expected = sum(1 for f in results.frames for d in f.detections or () if d.conf >= 0.2 and d.is_animal)
    assert n == min(expected, n) and n == expected
    from PIL import Image

    first = mapping["crops"][0]
    w, h = Image.open(tmp_path / "crops" / first["crop"]).size
    assert w == h  # squared by padding
    non_empty = [f for f in results.frames if not is_empty_frame(f, 0.2)]
    assert {c["file"] for c in mapping["crops"]} == {f.file for f in non_empty}
