"""Building ``submission.zip``: code + ONNX weights + fusion file, ``main.py`` at the root (run one with
:mod:`submission.harness`)."""

from __future__ import annotations

import json
import logging
import tempfile
import zipfile
from pathlib import Path

from camtrap.fileio import atomic_write
from classifier.onnx import export_onnx as export_classifier
from detector.model import export_onnx as export_detector
from detector.model import read_spec
from fusion import FusionModel

__all__ = ["build_package", "write_code", "RUNTIME_FILES", "ROOT", "MAIN"]

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
# Exactly the code the runner runs (ONNX models, onnxruntime, the PIL decoder), listed by hand so nothing else
# ships: no training (detector/train.py, classifier/{train,fewshot,finetune,distributed,cv,probe,...}.py;
# fusion/fit.py ships only because the fusion package exports ``fit``: numpy, no model), no downloads
# (camtrap/download.py, lila_fetch.py), no synthetic data, no torch-only paths, and of the application layer
# only hakuna/pipeline.py.  tests/submission/test_package.py checks the list is closed
# under the imports the runner makes.
RUNTIME_FILES = (
    "camtrap/__init__.py", "camtrap/batching.py", "camtrap/checks.py", "camtrap/dataset.py", "camtrap/devices.py",
    "camtrap/engine.py", "camtrap/fileio.py", "camtrap/frames.py", "camtrap/geometry.py", "camtrap/images.py",
    "camtrap/labels.py", "camtrap/mdjson.py", "camtrap/metric.py", "camtrap/results.py", "camtrap/safeload.py",
    "camtrap/stream.py",
    "detector/__init__.py", "detector/model.py", "detector/predict.py", "detector/weights.py",
    "classifier/__init__.py", "classifier/onnx.py", "classifier/predict.py", "classifier/spec.py",
    "classifier/views.py",
    "fusion/__init__.py", "fusion/fit.py", "fusion/fuse.py", "fusion/model.py",
    "hakuna/__init__.py", "hakuna/pipeline.py",
    "submission/__init__.py", "submission/runner.py",
)  # fmt: skip
MAIN = '''"""Hakuna submission: python main.py (reads ./data, writes ./submission.csv)."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "code"))

if __name__ == "__main__":  # run only when executed, never on import
    from submission.runner import run_packaged

    sys.exit(run_packaged(HERE))
'''


def write_code(zf: zipfile.ZipFile) -> None:
    """``main.py`` and the runtime code (:data:`RUNTIME_FILES` under ``code/``) into an open zip."""
    zf.writestr("main.py", MAIN)
    for rel in RUNTIME_FILES:
        zf.write(ROOT / rel, f"code/{rel}")


def _onnx(model: Path, folder: Path, export) -> Path:
    if model.suffix == ".onnx":
        return model
    return export(model, folder / f"{model.stem}.onnx")


def build_package(detector: Path, classifier: Path, fusion: Path, out: Path, *, pipeline: dict | None = None) -> Path:
    """Write the zip; .pt models are exported to ONNX first.  Returns ``out``."""
    spec = read_spec(Path(detector))
    if spec is None:
        raise ValueError(f"{detector} carries no detector spec")
    FusionModel.load(fusion).bind(spec.typical_threshold, Path(detector).name)  # refuse a mismatch now, not later
    with tempfile.TemporaryDirectory() as tmp:
        det = _onnx(Path(detector), Path(tmp), export_detector)
        clf = _onnx(Path(classifier), Path(tmp), export_classifier)
        manifest = {"version": "0.1.0", "detector": Path(detector).name, "classifier": Path(classifier).name,
                    "pipeline": pipeline or {}}  # fmt: skip

        def write(f) -> None:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
                write_code(zf)
                zf.write(det, "assets/detector.onnx")
                zf.write(clf, "assets/classifier.onnx")
                zf.write(fusion, "assets/fusion.json")
                zf.writestr("assets/manifest.json", json.dumps(manifest, indent=1))

        atomic_write(out, write, binary=True)
    log.info("package -> %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
