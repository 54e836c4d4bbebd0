"""Acceptance on the classifier trained in the test session: accuracy on held-out sequences, ONNX parity,
results-file classifications."""

import collections

import numpy as np
import pytest

from camtrap.dataset import read_labels, read_test
from camtrap.mdjson import to_json, validate
from classifier.onnx import export_onnx
from classifier.predict import classify_detections, load, predictions_table, with_classifications

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def test_frames(pipeline_synth):
    test, _ = read_test(pipeline_synth.test_data)
    return {r.file: r for r in test.frame_refs()}


@pytest.fixture(scope="module")
def test_crops(truth_results, trained_classifier, test_frames):
    clf = load(trained_classifier, device="cpu")
    preds = classify_detections(clf, truth_results[1], test_frames, threshold=0.5)
    return clf, preds


def test_top1_on_held_out_sequences(pipeline_synth, test_crops):
    clf, preds = test_crops
    test, _ = read_test(pipeline_synth.test_data)
    labels = read_labels(pipeline_synth.test_labels)
    seq_of = dict(zip(test.frames["file_name"], test.frames["seq_id"]))
    per_seq = collections.defaultdict(list)
    for p in preds:
        per_seq[seq_of[p.file]].append(p.probs)
    correct = [labels.loc[s, clf.spec.classes[int(np.mean(ps, axis=0).argmax())]] == 1 for s, ps in per_seq.items()]
    top1 = float(np.mean(correct))
    print(f"held-out season: sequence top-1 {top1:.3f} over {len(correct)} animal sequences")
    assert len(correct) >= 25
    assert top1 >= 0.90
    assert clf.spec.training["source"] == "crops" and clf.spec.input_hw == (128, 128)


def test_onnx_matches_pytorch(truth_results, trained_classifier, test_crops, test_frames, tmp_path):
    onnx_clf = load(export_onnx(trained_classifier, tmp_path / "classifier.onnx"), device="cpu")
    assert onnx_clf.backend == "onnx" and onnx_clf.spec == test_crops[0].spec
    onnx_preds = classify_detections(onnx_clf, truth_results[1], test_frames, threshold=0.5)
    a = np.array([p.probs for p in test_crops[1]])
    b = np.array([p.probs for p in onnx_preds])
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-3


def test_outputs_for_timelapse_and_csv(truth_results, test_crops):
    clf, preds = test_crops
    results = with_classifications(truth_results[1], preds, clf.spec.classes, top_k=3)
    data = to_json(results)
    assert validate(data) == []
    assert data["classification_categories"]["0"] == clf.spec.classes[0]
    classified = [d for im in data["images"] for d in im["detections"] if "classifications" in d]
    assert len(classified) == len(preds) and len(classified[0]["classifications"]) == 3
    table = predictions_table(preds, clf.spec.classes, top_k=3)
    assert list(table.columns[:10]) == ["file", "detection_index", "detection_conf", "bbox", "top1", "top1_prob",
                                        "top2", "top2_prob", "top3", "top3_prob"]  # fmt: skip
    assert np.allclose(table[[f"p_{c}" for c in clf.spec.classes]].sum(axis=1), 1.0, atol=1e-4)
