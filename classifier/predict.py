"""Classifier inference: load a checkpoint (PyTorch or ONNX), classify crops or whole images in batches,
optionally with horizontal-flip TTA, and write the results as CSV or into a MegaDetector results file."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from camtrap.batching import batched
from camtrap.fileio import atomic_write_csv
from camtrap.images import load_image
from camtrap.results import CropPrediction
from classifier.spec import ModelSpec
from detector.crops import CropConfig, iter_crops
from detector.mdjson import DetectionResults

__all__ = ["Classifier", "load", "predict_arrays", "classify_detections", "classify_paths", "predictions_table",
           "write_predictions", "with_classifications"]  # fmt: skip

log = logging.getLogger(__name__)


class Classifier(Protocol):
    """A loaded classifier: ``forward`` maps a normalised NCHW float32 batch to probabilities."""

    spec: ModelSpec
    backend: str

    def forward(self, batch: np.ndarray) -> np.ndarray: ...


class TorchClassifier:
    """A checkpoint run with PyTorch (bf16 autocast and channels_last on CUDA)."""

    backend = "torch"

    def __init__(self, path: Path, device: str | None = None) -> None:
        import torch

        from classifier.backbones import create

        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        self.spec = ModelSpec.from_json(ckpt["spec"])
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = create(self.spec.backbone, len(self.spec.classes), pretrained=False)
        model.load_state_dict(ckpt["model"])
        model = model.to(self.device).eval()
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        self.model = model

    def logits(self, batch: np.ndarray):
        import torch

        x = torch.from_numpy(batch).to(self.device)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        cuda = self.device.type == "cuda"
        with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=cuda):
            return self.model(x).float()

    def forward(self, batch: np.ndarray) -> np.ndarray:
        z = self.logits(batch)
        return (z.sigmoid() if self.spec.multilabel else z.softmax(1)).cpu().numpy()


def load(path: str | os.PathLike[str], *, device: str | None = None) -> Classifier:
    """Load a classifier from a Hakuna checkpoint (.pt) or its ONNX export (.onnx)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights not found: {path}")
    if path.suffix == ".onnx":
        from classifier.onnx import OnnxClassifier

        return OnnxClassifier(path, device=device)
    return TorchClassifier(path, device)


def predict_arrays(clf: Classifier, images: list[np.ndarray], *, tta: bool = False) -> np.ndarray:
    """Probabilities (N x classes) for RGB uint8 images of any size; ``tta`` averages with the mirrored image."""
    if not images:
        return np.zeros((0, len(clf.spec.classes)), np.float32)
    batch = clf.spec.preprocess(images)
    probs = clf.forward(batch)
    if tta:
        probs = (probs + clf.forward(np.ascontiguousarray(batch[..., ::-1]))) / 2
    return probs.astype(np.float32)


@dataclass(frozen=True)
class PathPrediction:
    """Whole-image classification of one file (``probs`` None when it could not be read)."""

    path: str
    probs: tuple[float, ...] | None
    failure: str | None = None


def classify_detections(clf: Classifier, results: DetectionResults, image_root: Path, crop_cfg: CropConfig, *,
                        batch_size: int = 64, tta: bool = False,
                        progress: Callable[[int], None] | None = None) -> list[CropPrediction]:  # fmt: skip
    """Classify every kept detection's crop (crops batched across images)."""
    out: list[CropPrediction] = []
    side = max(clf.spec.input_hw) * 4
    for batch in batched(iter_crops(results, image_root, crop_cfg, max_side=side), batch_size):
        probs = predict_arrays(clf, [c.pixels for c in batch], tta=tta)
        out += [CropPrediction(c.file, c.detection_index, c.detection, tuple(map(float, p)))
                for c, p in zip(batch, probs)]
        if progress:
            progress(len(batch))
    return out


def classify_paths(clf: Classifier, paths: list[Path], *, batch_size: int = 32, tta: bool = False,
                   progress: Callable[[int], None] | None = None) -> list[PathPrediction]:
    """Classify whole images; unreadable ones are recorded with their failure, never fatal."""
    out: list[PathPrediction] = []
    for batch in batched(paths, batch_size):
        loaded = [load_image(p, max_side=max(clf.spec.input_hw) * 2) for p in batch]
        good = [im for im in loaded if im.ok]
        probs = iter(predict_arrays(clf, [im.pixels for im in good], tta=tta))
        for p, im in zip(batch, loaded):
            out.append(PathPrediction(str(p), tuple(map(float, next(probs)))) if im.ok
                       else PathPrediction(str(p), None, im.failure.value))  # fmt: skip
        if progress:
            progress(len(batch))
    return out


def predictions_table(preds: list[CropPrediction], classes: tuple[str, ...], top_k: int = 3) -> pd.DataFrame:
    """One row per crop: file, detection index and confidence, box, top-k classes, then every class's probability."""
    rows = []
    for p in preds:
        order = np.argsort(p.probs)[::-1][:top_k]
        row = {"file": p.file, "detection_index": p.detection_index, "detection_conf": round(p.detection.conf, 4),
               "bbox": " ".join(f"{v:.4f}" for v in p.detection.bbox_xywh_norm)}  # fmt: skip
        for k, j in enumerate(order, 1):
            row[f"top{k}"], row[f"top{k}_prob"] = classes[j], round(float(p.probs[j]), 6)
        row.update({c: float(v) for c, v in zip(classes, p.probs)})
        rows.append(row)
    return pd.DataFrame(rows)


def with_classifications(results: DetectionResults, preds: list[CropPrediction], classes: tuple[str, ...],
                         top_k: int = 3) -> DetectionResults:
    """The results with ``classification_categories`` and per-detection top-k ``classifications`` added."""
    cats = {str(i): c for i, c in enumerate(classes)}
    per_det = {}
    for p in preds:
        order = np.argsort(p.probs)[::-1][:top_k]
        per_det[(p.file, p.detection_index)] = tuple((str(int(j)), float(p.probs[j])) for j in order)
    return DetectionResults(results.frames, results.detector, results.detector_metadata, cats, per_det)


def write_predictions(path: Path, preds: list[CropPrediction], classes: tuple[str, ...], top_k: int = 3) -> Path:
    """Atomically write :func:`predictions_table` as CSV."""
    return atomic_write_csv(path, predictions_table(preds, classes, top_k), index=False)


