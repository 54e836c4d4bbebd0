"""The classification stage: a species classifier over the 53 groups, on detector crops (two-stage) or on
whole frames (one-stage, for ablations).

``load`` (a .pt checkpoint or its ONNX export), ``predict`` (classify detection crops), ``train``.
Every checkpoint carries a :class:`classifier.spec.ModelSpec` from which inference derives its transforms.
The names are resolved on first use, so importing the package stays light (the offline runner has no torch).
"""

import importlib

__all__ = ["load", "predict", "train"]
_EXPORTS = {"load": ("classifier.predict", "load"), "predict": ("classifier.predict", "classify_detections"),
            "train": ("classifier.train", "train")}  # fmt: skip


def __getattr__(name: str):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'classifier' has no attribute {name!r}")
