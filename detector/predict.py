"""Running a detector over many images: decode in worker processes, letterboxed batches, NMS, and
checkpoints that make a killed run resumable without losing more than N images of work.

Letterboxing scales the upright image so its long side is the model's input size and pads right/bottom
to a multiple of the stride; boxes are mapped back by the same scale, so they come out normalised to the
upright image whatever size it was decoded at.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from camtrap.batching import batched
from camtrap.images import load_image
from camtrap.results import Detection, DetectionCategory, FrameDetections
from detector.mdjson import DetectionResults, read_results, write_results
from detector.model import Detector, DetectorSpec

__all__ = [
    "DetectConfig", "Letterboxed", "letterbox", "prepare", "postprocess", "detect_batch", "detect_files", "list_images",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectConfig:
    """Batch detection settings (thresholds come from the model's spec unless set here)."""

    batch_size: int = 8
    workers: int = 2  # decoding processes; 0 decodes in the calling process
    checkpoint_every: int = 0  # images between checkpoints; 0: none
    output_threshold: float | None = None
    read_datetime: bool = True


@dataclass(frozen=True)
class Letterboxed:
    """One decoded, letterboxed image ready for the detector (or the failure that prevented it)."""

    file: str
    pixels: np.ndarray | None  # H x W x 3 uint8, H and W multiples of the stride
    scale: float  # letterbox pixels per decoded-image pixel
    decoded_size: tuple[int, int]  # (width, height) as decoded
    full_size: tuple[int, int]  # (width, height) of the upright original
    failure: str | None = None
    datetime: str | None = None


def letterbox(rgb: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, float]:
    """Scale ``rgb`` so its long side is ``size`` and pad right/bottom (grey 114) to a multiple of ``stride``."""
    h, w = rgb.shape[:2]
    r = size / max(h, w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
    ph, pw = -(-nh // stride) * stride, -(-nw // stride) * stride
    out = np.full((ph, pw, 3), 114, np.uint8)
    out[:nh, :nw] = resized
    return out, r


def prepare(item: tuple[str, str, int, int, bool]) -> Letterboxed:
    """Decode one image (reduced-size JPEG decode where possible) and letterbox it; never raises."""
    file, path, size, stride, read_dt = item
    img = load_image(path, max_side=size, read_datetime=read_dt)
    if not img.ok:
        return Letterboxed(file, None, 0.0, (0, 0), (0, 0), f"{img.failure.value}: {img.detail}".rstrip(": "))
    boxed, r = letterbox(img.pixels, size, stride)
    h, w = img.pixels.shape[:2]
    return Letterboxed(file, boxed, r, (w, h), (img.width, img.height), None, img.datetime)


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


def postprocess(raw: np.ndarray, items: list[Letterboxed], spec: DetectorSpec,
                threshold: float) -> list[tuple[Detection, ...]]:
    """Raw head output ``(N, 4 + classes, A)`` -> per-image detections, normalised to the upright image."""
    out = []
    for pred, item in zip(raw, items):
        cls_scores = pred[4:]
        classes = cls_scores.argmax(axis=0)
        scores = cls_scores[classes, np.arange(cls_scores.shape[1])]
        sel = scores >= threshold
        if not sel.any():
            out.append(())
            continue
        cx, cy, w, h = pred[:4, sel]
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
        keep = _nms(xyxy, scores[sel].astype(np.float32), classes[sel].astype(np.int64), spec.nms_iou)
        keep = keep[: spec.max_detections]
        dw, dh = item.decoded_size
        dets = []
        for k in keep:
            x0, y0, x1, y1 = np.clip(xyxy[k] / item.scale / np.array([dw, dh, dw, dh]), 0.0, 1.0)
            category = DetectionCategory[spec.classes[int(classes[sel][k])].upper()]
            box = (float(x0), float(y0), float(x1 - x0), float(y1 - y0))
            dets.append(Detection(category, float(scores[sel][k]), box))
        out.append(tuple(dets))
    return out


def detect_batch(detector: Detector, items: list[Letterboxed], threshold: float | None = None) -> list[FrameDetections]:
    """Detect on prepared images (failures pass through as failed frames)."""
    spec = detector.spec
    threshold = spec.output_threshold if threshold is None else threshold
    good = [it for it in items if it.pixels is not None]
    dets: dict[str, tuple[Detection, ...]] = {}
    if good:
        hb = max(it.pixels.shape[0] for it in good)
        wb = max(it.pixels.shape[1] for it in good)
        batch = np.full((len(good), 3, hb, wb), 114 / 255, np.float32)
        for i, it in enumerate(good):
            h, w = it.pixels.shape[:2]
            batch[i, :, :h, :w] = it.pixels.transpose(2, 0, 1) / np.float32(255)
        for it, d in zip(good, postprocess(detector.forward(batch), good, spec, threshold)):
            dets[it.file] = d
    return [FrameDetections(it.file, dets[it.file], None, *it.full_size, it.datetime) if it.pixels is not None
            else FrameDetections(it.file, None, it.failure) for it in items]  # fmt: skip


def _prepared(files: list[tuple[str, Path]], spec: DetectorSpec, cfg: DetectConfig) -> Iterator[Letterboxed]:
    jobs = [(f, str(p), spec.input_size, spec.stride, cfg.read_datetime) for f, p in files]
    if cfg.workers <= 0:
        yield from map(prepare, jobs)
        return
    with mp.get_context("spawn").Pool(cfg.workers) as pool:
        yield from pool.imap(prepare, jobs, chunksize=4)


def _checkpoint_path(out: Path) -> Path:
    return out.with_name(out.name + ".checkpoint.json")


def detect_files(detector: Detector, files: list[tuple[str, Path]], cfg: DetectConfig, *, out: Path | None = None,
                 resume: bool = False, progress: Callable[[int], None] | None = None) -> DetectionResults:
    """Detect on ``files`` (pairs of relative name, path), in order; every file gets an entry.

    With ``out`` and ``cfg.checkpoint_every``, partial results go atomically to ``<out>.checkpoint.json``
    every N images; ``resume`` reads that checkpoint (or a finished ``out``) and skips what is done.  The final
    file lists images in input order, so a resumed run writes the same file as an uninterrupted one.
    """
    done: dict[str, FrameDetections] = {}
    if resume and out is not None:
        for source in (_checkpoint_path(out), out):
            if source.exists():
                done.update(read_results(source).by_file())
                log.info("resuming: %d of %d images already done (%s)", len(done), len(files), source.name)
                break
    wanted = {f for f, _ in files}
    done = {k: v for k, v in done.items() if k in wanted}
    if progress and done:
        progress(len(done))
    todo = [(f, p) for f, p in files if f not in done]
    since = 0
    for batch in batched(_prepared(todo, detector.spec, cfg), cfg.batch_size):
        for frame in detect_batch(detector, batch, cfg.output_threshold):
            done[frame.file] = frame
        since += len(batch)
        if progress:
            progress(len(batch))
        if out is not None and cfg.checkpoint_every and since >= cfg.checkpoint_every:
            write_results(_checkpoint_path(out), _results(detector.spec, [done[f] for f, _ in files if f in done]))
            since = 0
    results = _results(detector.spec, [done[f] for f, _ in files])
    if out is not None:
        write_results(out, results)
        _checkpoint_path(out).unlink(missing_ok=True)
    return results


def _results(spec: DetectorSpec, frames: list[FrameDetections]) -> DetectionResults:
    meta = {"megadetector_version": spec.name, "image_size": spec.input_size,
            "typical_detection_threshold": spec.typical_threshold,
            "conservative_detection_threshold": spec.conservative_threshold}  # fmt: skip
    return DetectionResults(tuple(frames), spec.name, meta)


def list_images(root: Path, recursive: bool = False) -> list[tuple[str, Path]]:
    """Image files under ``root`` as (relative name with '/' separators, path), sorted."""
    exts = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
    pattern = "**/*" if recursive else "*"
    paths = sorted(p for p in root.glob(pattern) if p.suffix.lower() in exts and p.is_file())
    return [(p.relative_to(root).as_posix(), p) for p in paths]

