"""Empty screening and crops: which frames hold an animal, and square crops cut from the full-resolution frame.

A crop is the detection box grown by a margin, made square by growing the short side (never stretching),
clipped to the image, and padded (grey) back to a square where the image edge cut it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from camtrap.fileio import atomic_write_json
from camtrap.images import load_image
from camtrap.results import Detection, DetectionCategory, FrameDetections
from detector.mdjson import DetectionResults

__all__ = ["CropConfig", "Crop", "is_empty_frame", "crop_box", "cut_crop", "iter_crops", "export_crops"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CropConfig:
    """What counts as an animal and how crops are cut."""

    threshold: float = 0.2  # animal confidence that makes a frame non-empty and a box worth cropping
    margin: float = 0.1  # fraction of the box's longer side added on every side
    categories: tuple[DetectionCategory, ...] = (DetectionCategory.ANIMAL,)
    pad_value: int = 114
    max_crops_per_frame: int = 10


@dataclass(frozen=True)
class Crop:
    """A crop in memory with where it came from."""

    file: str
    detection_index: int
    detection: Detection
    pixels: np.ndarray  # square H x H x 3 RGB uint8, at the source's resolution


def is_empty_frame(frame: FrameDetections, threshold: float) -> bool:
    """True when no animal reaches ``threshold`` (a failed frame is not called empty: it is unknown)."""
    return frame.ok and frame.max_conf(DetectionCategory.ANIMAL) < threshold


def crop_box(bbox_xywh_norm: tuple[float, float, float, float], width: int, height: int,
             margin: float) -> tuple[int, int, int]:
    """Square crop around a box, in pixels: (x0, y0, side); may extend past the image (padded later)."""
    x, y, w, h = bbox_xywh_norm
    bw, bh = w * width, h * height
    side = max(bw, bh) * (1 + 2 * margin)
    cx, cy = (x + w / 2) * width, (y + h / 2) * height
    side_px = max(2, int(round(side)))
    return int(round(cx - side_px / 2)), int(round(cy - side_px / 2)), side_px


def cut_crop(rgb: np.ndarray, bbox_xywh_norm: tuple[float, float, float, float], margin: float,
             pad_value: int = 114) -> np.ndarray:
    """The square crop of ``rgb`` around a normalised box (padding where it leaves the image)."""
    h, w = rgb.shape[:2]
    x0, y0, side = crop_box(bbox_xywh_norm, w, h, margin)
    out = np.full((side, side, 3), pad_value, np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out


def _wanted(frame: FrameDetections, cfg: CropConfig) -> list[tuple[int, Detection]]:
    dets = [(i, d) for i, d in enumerate(frame.detections or ()) if d.category in cfg.categories
            and d.conf >= cfg.threshold]  # fmt: skip
    return sorted(dets, key=lambda t: -t[1].conf)[: cfg.max_crops_per_frame]


def iter_crops(results: DetectionResults, image_root: Path, cfg: CropConfig,
               max_side: int | None = None) -> Iterator[Crop]:
    """Crops of every kept detection, one image decoded at a time (``max_side`` for reduced-size decode)."""
    for frame in results.frames:
        wanted = _wanted(frame, cfg)
        if not wanted:
            continue
        img = load_image(image_root / frame.file, max_side=max_side)
        if not img.ok:
            log.warning("cannot crop %s: %s", frame.file, img.failure.value)
            continue
        for i, det in wanted:
            yield Crop(frame.file, i, det, cut_crop(img.pixels, det.bbox_xywh_norm, cfg.margin, cfg.pad_value))


def export_crops(results: DetectionResults, image_root: Path, out: Path, cfg: CropConfig,
                 *, quality: int = 92) -> int:
    """Write crops as JPEGs under ``out`` plus ``out/crops.json`` mapping each back to image, box and confidence."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for crop in iter_crops(results, image_root, cfg):
        name = f"{crop.file.rsplit('.', 1)[0].replace('/', '__')}__det{crop.detection_index:02d}.jpg"
        cv2.imwrite(os.fspath(out / name), cv2.cvtColor(crop.pixels, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, quality])  # fmt: skip
        entries.append({"crop": name, "file": crop.file, "detection_index": crop.detection_index,
                        "category": crop.detection.category.label, "conf": round(crop.detection.conf, 4),
                        "bbox": [round(v, 5) for v in crop.detection.bbox_xywh_norm]})  # fmt: skip
    atomic_write_json(out / "crops.json", {"image_root": str(image_root), "margin": cfg.margin,
                                           "threshold": cfg.threshold, "crops": entries})  # fmt: skip
    return len(entries)
