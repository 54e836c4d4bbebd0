"""Classifier inference: load a checkpoint (PyTorch or ONNX), classify crops through the engine (crops cut from
the frames the engine decoded once) or whole images, optionally with horizontal-flip TTA, and write the
results as CSV or into a MegaDetector results file.

Checkpoints hold tensors and plain data only and are read with ``torch.load(weights_only=True)``: a file that
needs pickle to load is refused (see :func:`load`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from camtrap.batching import batched
from camtrap.devices import resolve_device
from camtrap.engine import EngineConfig, EngineTimes, run, wanted_detections
from camtrap.fileio import atomic_write_csv, spreadsheet_safe_table
from camtrap.frames import FrameRef
from camtrap.images import load_frame
from camtrap.mdjson import DetectionResults
from camtrap.results import CropPrediction
from camtrap.safeload import ModelFileError, check_finite_weights, load_torch_file
from camtrap.stream import ordered_map
from classifier.spec import CHECKPOINT_FORMAT, ModelSpec

__all__ = ["CHECKPOINT_FORMAT", "MAX_CROPS_PER_FRAME", "Classifier", "CropClassifier", "load", "predict_uint8",
           "classify_detections", "classify_paths", "PathPrediction", "predictions_table", "write_predictions",
           "with_classifications", "read_checkpoint", "convert_checkpoint", "framing_notice"]  # fmt: skip

log = logging.getLogger(__name__)
MAX_CROPS_PER_FRAME = 10
CONVERT_ADVICE = ("It needs pickle to load, which can run code. If you trust where it came from, convert it once "
                  "with `hakuna classifier convert FILE --trust-model`.")


class Classifier(Protocol):
    """A loaded classifier: ``forward`` maps a uint8 batch (N x H x W x 3 numpy at the spec's input size, or an
    N x 3 x H x W tensor) to probabilities (numpy, N x classes)."""

    spec: ModelSpec
    backend: str
    device: str

    def forward(self, batch: Any) -> np.ndarray: ...


def read_checkpoint(path: str | os.PathLike[str], *, trust: bool = False) -> dict:
    """A classifier checkpoint's contents (spec, weights, history), without running code from the file."""
    path = Path(path)
    ckpt = load_torch_file(path, trust=trust, advice=CONVERT_ADVICE)
    if not isinstance(ckpt, dict) or "spec" not in ckpt or "model" not in ckpt:
        raise ModelFileError(f"{path} is not a Hakuna classifier checkpoint (no spec and weights inside)")
    return ckpt


def convert_checkpoint(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Rewrite a classifier checkpoint that needs pickle as plain data (spec JSON + tensors).  This unpickles
    ``path`` without restrictions: call it only for files whose source you trust."""
    import torch

    from camtrap.fileio import atomic_write

    ckpt = read_checkpoint(path, trust=True)
    model = ckpt["model"]
    state = model.state_dict() if hasattr(model, "state_dict") else dict(model)
    spec = ckpt["spec"] if isinstance(ckpt["spec"], str) else ckpt["spec"].to_json()
    ModelSpec.from_json(spec, f"{path} (spec)")  # refuse what is not a spec
    history = json.loads(json.dumps(ckpt.get("history", []), default=str))
    payload = {"format": CHECKPOINT_FORMAT, "spec": spec, "model": {k: v.detach().cpu() for k, v in state.items()},
               "history": history}  # fmt: skip
    return atomic_write(out, lambda f: torch.save(payload, f), binary=True)


def build_model(spec: ModelSpec, pretrained: bool | str = False):
    """The network a spec describes: a fine-tuned backbone, or a frozen one with a fitted probe head."""
    if spec.head == "probe":
        from classifier.probe import ProbeClassifier

        return ProbeClassifier(spec.backbones or (spec.backbone,), spec.classes, input_size=spec.input_hw[1],
                               multilabel=spec.multilabel, pretrained=pretrained, views=max(1, len(spec.views)),
                               scale=spec.scale)  # fmt: skip
    from classifier.backbones import create

    return create(spec.backbone, len(spec.classes), pretrained=pretrained)


def optimise_for_inference(model, spec: ModelSpec):
    """Batch norms folded into convolutions (exact): ~25-30% faster on a CPU."""
    from classifier.backbones import for_inference

    if spec.head == "probe":
        for i, name in enumerate(spec.backbones or (spec.backbone,)):
            model.bodies[i] = for_inference(model.bodies[i], name)
        return model.eval()
    return for_inference(model, spec.backbone)


class TorchClassifier:
    """A checkpoint run with PyTorch (channels_last everywhere, bf16 autocast on CUDA); uint8 is normalised on the
    device."""

    backend = "torch"

    def __init__(self, path: Path, device: str | None = None, *, trust: bool = False) -> None:
        import torch

        ckpt = read_checkpoint(path, trust=trust)
        self.spec = ModelSpec.from_json(ckpt["spec"], f"{path} (spec)")
        self.device = resolve_device(device)
        self._device = torch.device(self.device)
        model = build_model(self.spec)
        try:
            model.load_state_dict(ckpt["model"])
        except (RuntimeError, TypeError, AttributeError) as exc:  # shapes or names that do not match the spec
            why = str(exc).strip().splitlines()
            raise ModelFileError(f"{path}: the weights do not fit the spec ({len(self.spec.classes)} classes, "
                                 f"{self.spec.backbone}): {(why[1] if len(why) > 1 else why[0]).strip()[:200]}") \
                from exc  # fmt: skip
        check_finite_weights(path, model.state_dict())
        model = optimise_for_inference(model, self.spec)
        self.model = model.to(self._device).to(memory_format=torch.channels_last)
        self._mean = torch.tensor(self.spec.mean, device=self._device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(self.spec.std, device=self._device).view(1, 3, 1, 1) * 255

    def logits(self, batch: Any):
        """Temperature-scaled logits for a uint8 batch (numpy NHWC or tensor N3HW)."""
        import torch

        cuda = self._device.type == "cuda"
        if isinstance(batch, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(batch))
            x = (x.pin_memory() if cuda else x).to(self._device, non_blocking=True).permute(0, 3, 1, 2)
        else:
            x = batch.to(self._device, non_blocking=True)
        x = ((x.float() - self._mean) / self._std).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self._device.type, torch.bfloat16, enabled=cuda):
            return self.model(x).float() / self.spec.temperature

    def forward(self, batch: Any) -> np.ndarray:
        z = self.logits(batch)
        return (z.sigmoid() if self.spec.multilabel else z.softmax(1)).cpu().numpy()


def load(path: str | os.PathLike[str], *, device: str | None = None, trust_model: bool = False) -> Classifier:
    """Load a classifier from a Hakuna checkpoint (.pt) or its ONNX export (.onnx).

    Raises:
        FileNotFoundError: no such file.
        UntrustedFileError: a .pt that needs pickle (older or foreign files), unless ``trust_model``.
        ModelFileError: not a classifier checkpoint or ONNX export.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights not found: {path}")
    if path.suffix == ".onnx":
        from classifier.onnx import OnnxClassifier

        return OnnxClassifier(path, device=device)
    return TorchClassifier(path, device, trust=trust_model)


def predict_uint8(clf: Classifier, batch: Any, *, tta: bool = False) -> np.ndarray:
    """Probabilities for a uint8 batch at the input size; ``tta`` averages with the mirrored images."""
    probs = clf.forward(batch)
    if tta:
        flipped = np.ascontiguousarray(batch[:, :, ::-1]) if isinstance(batch, np.ndarray) else batch.flip(-1)
        probs = (probs + clf.forward(flipped)) / 2
    return np.asarray(probs, np.float32)


def framing_notice(spec: ModelSpec, used_on: str) -> str | None:
    """A warning, logged and returned, when a classifier trained on one framing (``spec.framing``: "crops" or
    "photos") is used on the other (``used_on``); None when they agree.  Inference still honours the spec's resize
    policy; what it cannot change is what the pictures show (a whole scene vs one animal's box)."""
    if spec.framing == used_on:
        return None
    source = spec.training.get("source", "?")
    if used_on == "crops":
        msg = (f"this classifier was trained on whole photos (source {source}, resize {spec.resize.value}) and is "
               "used here on square crops of detector boxes: its accuracy on crops was never measured; train it "
               "on crops (classifier train --data with --detections, or --corrections) for this use")
    else:
        msg = (f"this classifier was trained on crops of detector boxes (source {source}) and is used here on whole "
               "photos: its accuracy on whole photos was never measured; classify the crops of detections "
               "(--detections) or train on whole photos for this use")
    log.warning(msg)
    return msg


class CropClassifier:
    """A classifier as the engine's crop stage (:class:`camtrap.engine.CropStage`): geometry from its spec."""

    def __init__(self, clf: Classifier, threshold: float, *, tta: bool = False,
                 max_crops_per_frame: int = MAX_CROPS_PER_FRAME) -> None:  # fmt: skip
        self.clf, self.tta, self.threshold = clf, tta, threshold
        spec = clf.spec
        self.classes, self.input_hw, self.margin = spec.classes, spec.input_hw, spec.crop_margin
        self.source_max_side, self.device = spec.source_max_side, clf.device
        self.max_crops_per_frame = max_crops_per_frame

    def prepare(self, crop: np.ndarray) -> np.ndarray:
        return self.clf.spec.resize_uint8(crop)

    def __call__(self, batch: Any) -> np.ndarray:
        return predict_uint8(self.clf, batch, tta=self.tta)


def classify_detections(clf: Classifier, results: DetectionResults, frames: Mapping[str, FrameRef], *,
                        threshold: float, tta: bool = False, cfg: EngineConfig = EngineConfig(),  # noqa: B008
                        progress: Callable[[int], None] | None = None, times: EngineTimes | None = None,
                        failures: list[tuple[str, str]] | None = None) -> list[CropPrediction]:  # fmt: skip
    """Classify the crop of every animal detection at or above ``threshold`` (frames decoded once each, crops
    batched across frames).  ``frames`` maps each results ``file`` to where it is; only frames with a crop to
    classify are read.  Frames that cannot be read are appended to ``failures`` as (file, reason).  A classifier
    trained on whole photos gets a warning (:func:`framing_notice`)."""
    framing_notice(clf.spec, "crops")
    stage = CropClassifier(clf, threshold, tta=tta)
    todo = [frames[f.file] for f in results.frames if f.file in frames
            and wanted_detections(f.detections, threshold, stage.max_crops_per_frame)]  # fmt: skip
    missing = sum(1 for f in results.frames if f.file not in frames)
    if missing:
        log.warning("%d frame(s) of the results are not in the frame source and are not classified", missing)
    out: list[CropPrediction] = []
    for outcome in run(todo, crop=stage, detections=results.by_file(), cfg=cfg, times=times):
        if not outcome.frame.ok:
            log.debug("cannot crop %s: %s", outcome.frame.file, outcome.frame.failure)
            if failures is not None:
                failures.append((outcome.frame.file, outcome.frame.failure or "unreadable"))
        out += outcome.crops
        if progress:
            progress(1)
    return out


@dataclass(frozen=True)
class PathPrediction:
    """Whole-image classification of one file (``probs`` None when it could not be read)."""

    path: str
    probs: tuple[float, ...] | None
    failure: str | None = None


def classify_paths(clf: Classifier, frames: list[FrameRef], *, batch_size: int = 32, tta: bool = False,
                   workers: int = 2, progress: Callable[[int], None] | None = None) -> list[PathPrediction]:
    """Classify whole images (decoded in ``workers`` threads); unreadable ones are recorded, never fatal.  A
    classifier trained on crops gets a warning (:func:`framing_notice`)."""
    spec = clf.spec
    framing_notice(spec, "photos")

    def decode(ref: FrameRef):
        img = load_frame(ref, max_side=spec.source_max_side)
        return ref, (spec.resize_uint8(img.pixels) if img.ok else None), img

    out: list[PathPrediction] = []
    for batch in batched(ordered_map(decode, frames, workers=workers, lookahead=batch_size * 2), batch_size):
        good = [px for _, px, _ in batch if px is not None]
        probs = iter(predict_uint8(clf, np.stack(good), tta=tta) if good else [])
        for ref, px, img in batch:
            out.append(PathPrediction(ref.file, tuple(map(float, next(probs)))) if px is not None
                       else PathPrediction(ref.file, None, img.failure.value))  # fmt: skip
        if progress:
            progress(len(batch))
    return out


def predictions_table(preds: list[CropPrediction], classes: tuple[str, ...], top_k: int = 3) -> pd.DataFrame:
    """One row per crop: file, detection index and confidence, box, top-k classes, then every class's probability
    (``p_<class>``, as in folder mode's sequences.csv: a class named ``file`` or ``top1`` cannot collide)."""
    rows = []
    for p in preds:
        order = np.argsort(p.probs)[::-1][:top_k]
        row = {"file": p.file, "detection_index": p.detection_index, "detection_conf": round(p.detection.conf, 4),
               "bbox": " ".join(f"{v:.4f}" for v in p.detection.bbox_xywh_norm)}  # fmt: skip
        for k, j in enumerate(order, 1):
            row[f"top{k}"], row[f"top{k}_prob"] = classes[j], round(float(p.probs[j]), 6)
        row.update({f"p_{c}": float(v) for c, v in zip(classes, p.probs)})  # p_: never a fixed column's name
        rows.append(row)
    return pd.DataFrame(rows)


def with_classifications(results: DetectionResults, preds: list[CropPrediction], classes: tuple[str, ...],
                         top_k: int = 3, *, classifier: str | None = None) -> DetectionResults:  # fmt: skip
    """The results with ``classification_categories``, per-detection top-k ``classifications`` and
    ``info.classifier`` (the classifier's file name) added."""
    import dataclasses

    cats = {str(i): c for i, c in enumerate(classes)}
    per_det = {}
    for p in preds:
        order = np.argsort(p.probs)[::-1][:top_k]
        per_det[(p.file, p.detection_index)] = tuple((str(int(j)), float(p.probs[j])) for j in order)
    return dataclasses.replace(results, classifier=classifier or results.classifier, classification_categories=cats,
                               classification_category_descriptions=None, classifications=per_det)  # fmt: skip


def write_predictions(path: Path, preds: list[CropPrediction], classes: tuple[str, ...], top_k: int = 3) -> Path:
    """Atomically write :func:`predictions_table` as CSV."""
    return atomic_write_csv(path, spreadsheet_safe_table(predictions_table(preds, classes, top_k)), index=False)

