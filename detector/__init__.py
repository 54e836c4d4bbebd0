"""The detection stage: a MegaDetector-compatible YOLO that finds animals, people and vehicles in each frame,
screens out empty frames and cuts crops.

``load`` (a .pt or .onnx detector), ``predict`` (batch detection with checkpoints and resume), ``train``
(YOLO on LILA-format boxes).  Results are MegaDetector batch-results JSON (``camtrap.mdjson``).  The names
are resolved on first use, so importing the package stays light (the offline runner has no torch).
"""

import importlib
import os

# ultralytics reads these once, when any module first imports it (resolving a checkpoint's classes does, before a
# model is built): no DNS probe of whether it is online, and no `pip install` of a missing plugin at run time (a
# file PIL cannot identify in a photo folder made it try to install pi-heif).
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")

__all__ = ["load", "predict", "train"]
_EXPORTS = {"load": ("detector.model", "load"), "predict": ("detector.predict", "detect_files"),
            "train": ("detector.train", "train")}  # fmt: skip


def __getattr__(name: str):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'detector' has no attribute {name!r}")
