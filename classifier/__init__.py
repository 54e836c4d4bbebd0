"""The classification stage: a species classifier over the 53 groups, on detector crops (two-stage) or on
whole frames (one-stage, for ablations).

``load`` (a .pt checkpoint or its ONNX export), ``predict`` (classify detection crops), ``train``.
Every checkpoint carries a :class:`classifier.spec.ModelSpec` from which inference derives its transforms.
"""

from classifier.predict import classify_detections as predict
from classifier.predict import load
from classifier.train import train

__all__ = ["load", "predict", "train"]
