"""The detection stage: a MegaDetector-compatible YOLO that finds animals, people and vehicles in each frame,
screens out empty frames and cuts crops.

``load`` (a .pt or .onnx detector), ``predict`` (batch detection with checkpoints and resume), ``train``
(YOLO on LILA-format boxes).  Results are MegaDetector batch-results JSON (``detector.mdjson``).
"""

from detector.model import load
from detector.predict import detect_files as predict
from detector.train import train

__all__ = ["load", "predict", "train"]
