"""YOLOv5-format detectors (MegaDetector v5a/v5b): a checkpoint built from the ``yolov5`` package's own model
definition gives, through ``hakuna detect`` (PyTorch and ONNX), the boxes the package's own inference gives.

The package lives in ``.yolov5/`` (``make test`` installs it there without its heavy training dependencies; users
install ``hakuna[mdv5]``); the comparison runs in a subprocess with that folder on PYTHONPATH and skips with the
reason where it is absent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detector.evaluate import iou_xywh
from detector.weights import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
YOLOV5 = Path(os.environ.get("HAKUNA_YOLOV5", ROOT / ".yolov5"))


def test_registry_has_mdv5_with_megadetector_preprocessing():
    for name in ("mdv5a", "mdv5b", "mdv1000-redwood"):
        spec = REGISTRY[name].spec
        assert (spec.input_size, spec.stride, spec.head, spec.centred, spec.bilinear) == (1280, 64, "yolov5", True,
                                                                                         True)  # fmt: skip
        assert (spec.typical_threshold, spec.conservative_threshold) == (0.2, 0.05)
    assert REGISTRY["mdv5a"].url.endswith("/v5.0/md_v5a.0.0.pt") and REGISTRY["mdv5a"].md5
    assert REGISTRY["mdv1000-spruce"].spec.stride == 32


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    if not (YOLOV5 / "yolov5").is_dir():
        pytest.skip(f"the yolov5 package is not in {YOLOV5} (`make test` puts it there)")
    work = tmp_path_factory.mktemp("yolov5")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(YOLOV5), str(ROOT)]), "YOLO_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("yolov5_parity.py")), str(work)],
                          capture_output=True, text=True, env=env, cwd=work)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_boxes_equal_the_packages_own_inference(parity, backend):
    compared = 0
    for name, ref in parity["package"].items():
        ours = np.array(parity[backend][name]).reshape(-1, 6)
        for box in ref:
            if box[4] < 0.1 or min(box[2], box[3]) < 0.01:  # slivers: 4-decimal rounding alone moves their IoU
                continue
            same_class = ours[ours[:, 5] == box[5]]
            ious = iou_xywh(np.array([box[:4]]), same_class[:, :4]).reshape(-1)
            j = int(np.argmax(ious)) if len(ious) else -1
            assert j >= 0 and ious[j] > 0.95 and abs(same_class[j, 4] - box[4]) <= 0.02, (name, box)
            compared += 1
    assert compared >= 10, compared
