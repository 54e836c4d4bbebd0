"""Running a detector over many frames: the engine's detect stage (NMS, boxes mapped back to the upright
image) and ``detect_files``, which writes MegaDetector results with checkpoints so that a killed run resumes
without losing more than N frames of work.

Boxes come out normalised to the upright image whatever size it was decoded at: the letterbox scale and
the decoded size travel with each frame (:class:`camtrap.engine.DecodedFrame`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camtrap.engine import DecodedFrame, EngineConfig, EngineTimes, run
from camtrap.fileio import DataError
from camtrap.frames import FrameRef
from camtrap.mdjson import DetectionResults, read_results, write_results
from camtrap.results import Detection, FrameDetections
from detector.model import Detector, DetectorFormatError, DetectorSpec

__all__ = ["DetectConfig", "FrameDetector", "postprocess", "detect_files", "results_for"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectConfig:
    """Batch detection settings (thresholds come from the model's spec unless set here)."""

    engine: EngineConfig = field(default_factory=lambda: EngineConfig(read_datetime=True))
    checkpoint_every: int = 0  # frames between checkpoints; 0: none
    output_threshold: float | None = None


def _check_width(raw: Any, spec: DetectorSpec) -> None:
    """The head's rows must be 4 box coordinates plus one score per class the spec names."""
    rows = int(raw.shape[1]) if len(raw.shape) == 3 else -1
    if rows != 4 + len(spec.classes):
        raise DetectorFormatError(
            f"detector {spec.name}: its output has shape {tuple(raw.shape)}, but its spec lists "
            f"{len(spec.classes)} classes ({', '.join(spec.classes)}), so rows of 4 + {len(spec.classes)} were "
            "expected; the spec does not belong to these weights")


def _candidates(raw: Any, threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image: boxes (xyxy, input pixels), scores and class indices of the anchors at or above ``threshold``.

    ``raw`` is the head output ``(N, 4 + classes, A)``, numpy or a tensor; a tensor is filtered on its device
    and only the survivors are copied to the host.  Anchors with a non-finite box or score are dropped.
    """
    out = []
    for pred in raw:
        cls_scores = pred[4:]
        if isinstance(pred, np.ndarray):
            classes = cls_scores.argmax(axis=0)
            scores = cls_scores[classes, np.arange(cls_scores.shape[1])]
            sel = scores >= threshold
            boxes, scores, classes = pred[:4, sel], scores[sel], classes[sel]
        else:
            scores_t, classes_t = cls_scores.max(dim=0)
            sel = scores_t >= threshold
            boxes, scores, classes = (t.cpu().numpy() for t in (pred[:4, sel], scores_t[sel], classes_t[sel]))
        finite = np.isfinite(boxes).all(axis=0) & np.isfinite(scores)
        boxes, scores, classes = boxes[:, finite], scores[finite], classes[finite]
        cx, cy, w, h = boxes
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        out.append((xyxy, scores.astype(np.float32), classes.astype(np.int64)))
    return out


def _nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Per-class non-maximum suppression in numpy (no torch needed in the offline runner); indices by score."""
    offset = boxes + (classes.astype(np.float32) * (boxes.max() + 1))[:, None]  # classes never overlap
    x0, y0, x1, y1 = offset.T
    areas = (x1 - x0) * (y1 - y0)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.clip(np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]), 0, None)
        ih = np.clip(np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]), 0, None)
        inter = iw * ih
        order = rest[inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9) <= iou]
    return np.array(keep, np.int64)


def postprocess(raw: Any, geometry: list[tuple[float, tuple[int, int], tuple[int, int]]], spec: DetectorSpec,
                threshold: float) -> list[tuple[Detection, ...]]:
    """Raw head output -> per-image detections normalised to the upright image.

    ``geometry`` gives, per image, the letterbox scale, its (left, top) padding and the (width, height) the image
    was decoded at.
    """
    _check_width(raw, spec)
    out = []
    for (xyxy, scores, classes), (scale, (px, py), (dw, dh)) in zip(_candidates(raw, threshold), geometry):
        if not len(scores):
            out.append(())
            continue
        keep = _nms(xyxy, scores, classes, spec.nms_iou)[: spec.max_detections]
        dets = []
        for k in keep:
            shifted = xyxy[k] - np.array([px, py, px, py], np.float32)
            x0, y0, x1, y1 = np.clip(shifted / scale / np.array([dw, dh, dw, dh]), 0.0, 1.0)
            box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
            dets.append(Detection(spec.classes[int(classes[k])], float(scores[k]), box))
        out.append(tuple(dets))
    return out


class FrameDetector:
    """A detector as the engine's detect stage: boxes for a letterboxed batch (:class:`camtrap.engine.DetectStage`)."""

    def __init__(self, detector: Detector, threshold: float | None = None) -> None:
        self.detector = detector
        self.spec = detector.spec
        self.letterbox, self.device = detector.spec.letterbox, detector.device
        self.threshold = detector.spec.output_threshold if threshold is None else threshold

    def __call__(self, batch: Any, frames: list[DecodedFrame]) -> list[tuple[Detection, ...]]:
        raw = self.detector.forward(batch)
        return postprocess(raw, [(f.scale, f.pad, f.decoded_wh) for f in frames], self.spec, self.threshold)


def results_for(detector: Detector, frames: list[FrameDetections]) -> DetectionResults:
    """A results file's worth of frames, with the detector's file name and recommended thresholds."""
    spec = detector.spec
    meta = {"megadetector_version": spec.name, "image_size": spec.input_size,
            "typical_detection_threshold": spec.typical_threshold,
            "conservative_detection_threshold": spec.conservative_threshold}  # fmt: skip
    return DetectionResults(tuple(frames), getattr(detector, "file", spec.name), meta)


def _checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint.json")


def _resumed(out: Path | None, resume: bool, wanted: set[str], detector: Detector) -> dict[str, FrameDetections]:
    """The frames a checkpoint (or finished file) at ``out`` holds; one written by another detector (file name,
    version, input size or thresholds) is refused rather than mixed with this one's boxes."""
    if not resume or out is None:
        return {}
    mine = results_for(detector, [])
    for source in (_checkpoint_path(out), out):
        if source.exists():
            previous = read_results(source)
            theirs, ours = (previous.detector, previous.detector_metadata), (mine.detector, mine.detector_metadata)
            if theirs != ours:
                raise DataError(source, f"written by detector {theirs[0]!r} {theirs[1]}, not this run's {ours[0]!r} "
                                        f"{ours[1]}: delete it or run without --resume")  # fmt: skip
            done = {k: v for k, v in previous.by_file().items() if k in wanted}
            log.info("resuming: %d of %d frames already done (%s)", len(done), len(wanted), source.name)
            return done
    return {}


def detect_files(detector: Detector, frames: list[FrameRef], cfg: DetectConfig = DetectConfig(), *,  # noqa: B008
                 out: Path | None = None, resume: bool = False, progress: Callable[[int], None] | None = None,
                 times: EngineTimes | None = None) -> DetectionResults:  # fmt: skip
    """Detect on ``frames``, in order; every frame gets an entry (failures included).

    With ``out`` and ``cfg.checkpoint_every``, partial results go atomically to ``<out>.checkpoint.json``
    every N frames; ``resume`` reads that checkpoint (or a finished ``out``) and skips what is done.  The final
    file lists frames in input order, so a resumed run writes the same file as an uninterrupted one.
    """
    names = [f.file for f in frames]
    done = _resumed(out, resume, set(names), detector)
    if progress and done:
        progress(len(done))
    todo = [f for f in frames if f.file not in done]
    stage = FrameDetector(detector, cfg.output_threshold)
    since = 0
    for outcome in run(todo, detect=stage, cfg=cfg.engine, times=times):
        done[outcome.frame.file] = outcome.frame
        since += 1
        if progress:
            progress(1)
        if out is not None and cfg.checkpoint_every and since >= cfg.checkpoint_every:
            write_results(_checkpoint_path(out), results_for(detector, [done[n] for n in names if n in done]))
            since = 0
    results = results_for(detector, [done[n] for n in names])
    if out is not None:
        write_results(out, results)
        _checkpoint_path(out).unlink(missing_ok=True)
    return results
