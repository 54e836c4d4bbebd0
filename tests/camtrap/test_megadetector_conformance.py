"""Conformance with the official ``megadetector`` package (PyPI, pinned in the Makefile): its validator accepts
Hakuna's detect and classify outputs with no error and no warning, and Hakuna reads what its writer writes
(categories beyond 3 and failures included).

The package cannot be installed beside Hakuna (it needs ``ultralytics-yolov5``, whose source build downloads
from the internet), so ``make test`` puts it, without its dependencies, in ``.megadetector/`` and these tests run
it in a subprocess with that folder on ``PYTHONPATH``; they skip with the reason where it is absent.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camtrap.mdjson import read_results, to_json
from camtrap.speciesnet import read_speciesnet
from hakuna.cli import main

ROOT = Path(__file__).resolve().parents[2]
MD_PATH = Path(os.environ.get("HAKUNA_MEGADETECTOR", ROOT / ".megadetector"))

VALIDATE = """
import json, sys
from megadetector.postprocessing.validate_batch_results import validate_batch_results, ValidateBatchResultsOptions
out = {}
for path in sys.argv[1:]:
    options = ValidateBatchResultsOptions()
    options.raise_errors = False
    result = validate_batch_results(path, options)["validation_results"]
    out[path] = {"errors": result["errors"], "warnings": result["warnings"]}
print(json.dumps(out))
"""

WRITE = """
import json, sys
from megadetector.detection import run_detector
from megadetector.detection.run_detector_batch import write_results_to_file
run_detector.DEFAULT_DETECTOR_LABEL_MAP = {"1": "animal", "2": "person", "3": "vehicle", "4": "group"}
results = [
    {"file": "a/1.jpg", "detections": [{"category": "1", "conf": 0.91, "bbox": [0.1, 0.2, 0.3, 0.4]},
                                       {"category": "4", "conf": 0.8, "bbox": [0.5, 0.5, 0.2, 0.2]},
                                       {"category": "2", "conf": 0.3, "bbox": [0.0, 0.0, 0.1, 0.1]}]},
    {"file": "a/2.jpg", "detections": []},
    {"file": "a/3.jpg", "failure": "Failure image access"},
]
write_results_to_file(results, sys.argv[1], detector_file="md_v5a.0.0.pt")
"""


def _run(code: str, *args: str) -> str:
    if not (MD_PATH / "megadetector").is_dir():
        pytest.skip(f"the megadetector package is not in {MD_PATH} (`make test` puts it there)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(MD_PATH), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _validate(*paths: Path) -> dict:
    return json.loads(_run(VALIDATE, *map(str, paths)).strip().splitlines()[-1])


def test_validator_accepts_hakuna_outputs(tmp_path, random_detector):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(imgs / f"f{i}.jpg")
    (imgs / "broken.jpg").write_bytes(b"not an image")
    detect = tmp_path / "detect.json"
    assert main(["detect", "--model", str(random_detector), "--images", str(imgs), "--out", str(detect), "--threshold",
                 "0.0001", "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    data = json.loads(detect.read_text())
    assert any(im["detections"] for im in data["images"] if im.get("detections"))
    classified = tmp_path / "classified.json"
    results = read_results(detect)
    from camtrap.results import CropPrediction
    from classifier.predict import with_classifications

    preds = [CropPrediction(f.file, k, d, (0.7, 0.2, 0.1)) for f in results.frames for k, d in
             enumerate(f.detections or ())]  # fmt: skip
    classified.write_text(json.dumps(to_json(with_classifications(results, preds, ("zebra", "impala", "eland"),
                                                                  classifier="clf.pt"))))  # fmt: skip
    report = _validate(detect, classified)
    assert report == {str(detect): {"errors": [], "warnings": []}, str(classified): {"errors": [], "warnings": []}}


def test_hakuna_reads_what_megadetector_writes(tmp_path):
    path = tmp_path / "md.json"
    _run(WRITE, str(path))
    results = read_results(path)
    cats = [d.category for d in results.frames[0].detections]
    assert cats == ["animal", "group", "person"] or sorted(cats) == ["animal", "group", "person"]
    assert [d.is_animal for d in results.frames[0].detections].count(True) == 1  # "group" is kept, not cropped
    assert results.frames[2].failure == "Failure image access" and results.frames[2].detections is None
    assert results.detector == "md_v5a.0.0.pt" and "detection_completion_time" in results.info_extra
    rewritten = tmp_path / "rewritten.json"
    rewritten.write_text(json.dumps(to_json(results)))
    assert json.loads(rewritten.read_text())["detection_categories"]["4"] == "group"
    assert _validate(rewritten)[str(rewritten)] == {"errors": [], "warnings": []}


def test_speciesnet_predictions_become_a_valid_results_file(tmp_path):
    zebra = "e1e8f5d3-...;mammalia;perissodactyla;equidae;equus;quagga;plains zebra"
    predictions = {"predictions": [
        {"filepath": "/data/site/a.jpg", "prediction": zebra, "prediction_score": 0.93,
         "prediction_source": "classifier",
         "detections": [{"category": "1", "label": "animal", "conf": 0.95, "bbox": [0.1, 0.1, 0.3, 0.3]},
                        {"category": "2", "label": "human", "conf": 0.4, "bbox": [0.6, 0.6, 0.2, 0.2]}],
         "classifications": {"classes": [zebra], "scores": [0.93]}, "model_version": "4.0.1a"},
        {"filepath": "/data/site/b.jpg", "prediction": "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank",
         "prediction_score": 0.99, "detections": []},
        {"filepath": "/data/site/c.jpg", "prediction": zebra, "prediction_score": 0.7, "detections": []},
        {"filepath": "/data/site/d.jpg", "failures": ["CLASSIFIER", "DETECTOR"]},
    ]}  # fmt: skip
    (tmp_path / "predictions.json").write_text(json.dumps(predictions))
    out = tmp_path / "results.json"
    assert main(["data", "speciesnet", "--predictions", str(tmp_path / "predictions.json"), "--out", str(out),
                 "--base-folder", "/data/site"]) == 0  # fmt: skip
    data = json.loads(out.read_text())
    assert [im["file"] for im in data["images"]] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert data["classification_categories"] == {"0": "plains zebra"}
    assert data["classification_category_descriptions"] == {"0": zebra}
    assert data["images"][0]["detections"][0]["classifications"] == [["0", 0.93]]
    assert data["images"][1]["detections"] == [] and data["images"][3]["detections"] is None
    unknown = data["images"][2]["detections"][0]
    assert data["detection_categories"][unknown["category"]] == "unknown" and unknown["bbox"] == [0, 0, 1, 1]
    assert read_speciesnet(tmp_path / "predictions.json", base_folder="/data/site").frames[0].detections[1].category \
        == "human"  # fmt: skip
    assert _validate(out)[str(out)]["errors"] == []


WRITE_MDV5 = """
import sys
from megadetector.detection.run_detector_batch import write_results_to_file
results = [
    {"file": "a.jpg", "detections": [{"category": "1", "conf": 0.91, "bbox": [0.1, 0.2, 0.3, 0.4]},
                                     {"category": "1", "conf": 0.15, "bbox": [0.6, 0.5, 0.2, 0.2]}]},
    {"file": "b.jpg", "detections": [{"category": "1", "conf": 0.25, "bbox": [0.2, 0.2, 0.5, 0.5]}]},
]
write_results_to_file(results, sys.argv[1], detector_file="md_v5a.0.0.pt")
"""


def test_a_megadetector_file_without_threshold_takes_its_release_threshold(tmp_path, capsys):
    """MDv5a's own results record no threshold: crops and classify take the registry's 0.2 for md_v5a.0.0.pt
    (two of the three boxes), and a file naming an unknown detector is a one-line error listing the releases."""
    from tests.conftest import make_random_classifier

    md = tmp_path / "md.json"
    _run(WRITE_MDV5, str(md))
    data = json.loads(md.read_text())
    # Recent versions of the writer record the release's thresholds in info.detector_metadata; files written
    # without it (older versions, other tools) carry only info.detector.  Drop it to get such a file.
    data["info"].pop("detector_metadata", None)
    md.write_text(json.dumps(data))
    assert "typical_detection_threshold" not in json.dumps(data) and data["info"]["detector"] == "md_v5a.0.0.pt"
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(imgs / name)
    assert main(["crops", "--detections", str(md), "--images", str(imgs), "--out", str(tmp_path / "crops")]) == 0
    assert capsys.readouterr().out.startswith("2 crops")
    model = make_random_classifier(tmp_path)
    preds = tmp_path / "preds.csv"
    assert main(["classify", "--model", str(model), "--detections", str(md), "--images", str(imgs), "--out",
                 str(preds), "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    assert "2 crops" in capsys.readouterr().out
    data["info"]["detector"] = "my_own_detector.pt"
    md.write_text(json.dumps(data))
    assert main(["crops", "--detections", str(md), "--images", str(imgs), "--out", str(tmp_path / "crops2")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mdv5a" in err and "--threshold" in err and "my_own_detector.pt" in err
