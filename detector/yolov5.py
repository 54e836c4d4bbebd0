"""YOLOv5-format detectors (MegaDetector v5a/v5b, MDv1000-redwood and -spruce), through the ``yolov5`` PyPI package
that carries YOLOv5's model code (``pip install 'hakuna[mdv5]'``).

* Loading: these checkpoints pickle YOLOv5's model classes, under ``models.*`` (files trained with the YOLOv5
  repository, like MDv5a) or ``yolov5.models.*`` (the package).  ``models`` and ``utils`` are aliased to the
  package's modules while the file loads, and the load is as safe as an ultralytics one
  (:mod:`camtrap.safeload`): a registry release by digest, or every global an nn.Module of YOLOv5 or torch.nn,
  or ``--trust-model``.
* Preprocessing: MegaDetector's own -- 1280 px, bilinear resize, padding centred to a multiple of the model's
  largest stride (64 for the P6 models) -- recorded in the spec (``centred``, ``bilinear``, ``stride``).
* Post-processing: YOLOv5's head gives rows of (box, objectness, class probabilities); :func:`to_common_layout`
  turns them into the ``(N, 4 + classes, A)`` layout with confidence = objectness x class probability, so NMS
  and box mapping are the ones every detector uses.  ONNX exports carry that conversion in the graph.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from camtrap.safeload import ModelFileError, load_torch_file, module_class_allowlist

__all__ = ["available", "aliases", "is_yolov5_class", "load_checkpoint", "module_of", "to_common_layout",
           "export_onnx", "INSTALL_HINT"]  # fmt: skip

INSTALL_HINT = "YOLOv5-format detectors need the yolov5 package: pip install 'hakuna[mdv5]'"
_TREES = ("yolov5.models.", "models.", "torch.nn.modules.")
# The allowlist for YOLOv5 pickles: YOLOv5's and torch.nn's module classes, and plain containers.
is_yolov5_class = module_class_allowlist(_TREES)


def available() -> bool:
    """Whether the ``yolov5`` package can be imported here."""
    return importlib.util.find_spec("yolov5") is not None


@contextlib.contextmanager
def aliases() -> Iterator[None]:
    """``models`` and ``utils`` (the YOLOv5 repository's top-level packages) as the ``yolov5`` package's, for the
    length of a load; modules of those names that were already imported are left alone."""

    added = []
    for name in ("models", "models.yolo", "models.common", "models.experimental", "utils"):
        if name not in sys.modules:
            sys.modules[name] = importlib.import_module("yolov5." + name)
            added.append(name)
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def load_checkpoint(path: str | os.PathLike[str], *, trust: bool = False, advice: str = "") -> dict:
    """A YOLOv5 checkpoint's contents, loaded without running code from it unless ``trust``."""
    if not available():
        raise ModelFileError(f"{path}: {INSTALL_HINT}")
    with aliases():
        ckpt = load_torch_file(path, allow=is_yolov5_class, trust=trust, advice=advice)
    if not isinstance(ckpt, dict) or not any(k in ckpt for k in ("model", "ema")):
        raise ModelFileError(f"{path} is not a YOLOv5 checkpoint (no model inside)")
    return ckpt


def module_of(ckpt: dict):
    """The inference module (float32, conv + batch norm fused, eval mode), as YOLOv5 prepares it."""
    import torch

    module = (ckpt.get("ema") or ckpt["model"]).float()
    module = module.fuse() if hasattr(module, "fuse") else module
    for m in module.modules():
        if isinstance(m, torch.nn.Upsample) and not hasattr(m, "recompute_scale_factor"):
            m.recompute_scale_factor = None
        if hasattr(m, "inplace"):
            m.inplace = False  # exportable, and the same numbers
    return module.eval()


def to_common_layout(raw: Any) -> Any:
    """YOLOv5 rows ``(N, A, 5 + classes)`` -> ``(N, 4 + classes, A)`` with objectness x class probability."""
    if isinstance(raw, (tuple, list)):
        raw = raw[0]
    if isinstance(raw, np.ndarray):
        return np.concatenate([raw[..., :4], raw[..., 5:] * raw[..., 4:5]], axis=-1).transpose(0, 2, 1)
    import torch

    return torch.cat([raw[..., :4], raw[..., 5:] * raw[..., 4:5]], dim=-1).permute(0, 2, 1)


def export_onnx(module, out: Path, input_size: int, metadata: dict[str, str]) -> Path:
    """Export a YOLOv5 module to ONNX (dynamic batch and size, output in the common layout) with ``metadata``."""
    import onnx
    import torch

    class Common(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return to_common_layout(self.inner(x))

    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    axes = {"images": {0: "batch", 2: "height", 3: "width"}, "output0": {0: "batch", 2: "anchors"}}
    torch.onnx.export(Common(module).eval(), (torch.zeros(1, 3, input_size, input_size),), str(tmp),
                      input_names=["images"], output_names=["output0"], opset_version=17, dynamo=False,
                      dynamic_axes=axes)  # fmt: skip
    model = onnx.load(str(tmp))
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(tmp))
    os.replace(tmp, out)
    return out
