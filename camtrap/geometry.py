"""Image geometry every stage agrees on: the detector's letterbox and the classifier's square crops.

Letterbox: scale the upright image so its long side is the model's input size, pad (grey 114) to a multiple of
the stride: right/bottom (Hakuna's and ultralytics' batch style) or evenly on both sides (YOLOv5 and MegaDetector
v5).  Boxes are mapped back by the same offset and scale, so they come out normalised to the upright image
whatever size it was decoded at.

Crop: the detection box grown by a margin (a fraction of its longer side on every side), made square by
growing the short side (never stretching), clipped to the image and padded (grey) back to a square where
the image edge cut it.  The margin a classifier was trained with travels in its spec; training and
inference cut crops with these functions only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["PAD_VALUE", "DEFAULT_CROP_MARGIN", "MAX_CROP_MARGIN", "Letterbox", "letterbox_size", "letterbox",
           "crop_box", "cut_crop"]

PAD_VALUE = 114
"""Grey used for letterbox and crop padding (ultralytics' choice, kept for both stages)."""

DEFAULT_CROP_MARGIN = 0.1
MAX_CROP_MARGIN = 1.0  # a crop is at most three times its box's longer side (and three times the image)
"""Margin new classifiers are trained with (recorded in each classifier's spec; inference reads the spec)."""


@dataclass(frozen=True)
class Letterbox:
    """How a detector wants its input: long side ``size``, padded to a multiple of ``stride``, the padding on the
    right/bottom or centred, the resize area-averaged (sharper when shrinking) or bilinear (YOLOv5's)."""

    size: int
    stride: int = 32
    centred: bool = False
    bilinear: bool = False


def letterbox_size(width: int, height: int, size: int, stride: int) -> tuple[int, int, int, int, float]:
    """(resized w, resized h, padded w, padded h, scale) of the letterbox of a ``width`` x ``height`` image."""
    r = size / max(height, width)
    nw, nh = max(1, round(width * r)), max(1, round(height * r))
    return nw, nh, -(-nw // stride) * stride, -(-nh // stride) * stride, r


def letterbox_offsets(nw: int, nh: int, pw: int, ph: int, centred: bool) -> tuple[int, int]:
    """Left and top padding (YOLOv5's rounding when centred)."""
    if not centred:
        return 0, 0
    return round((pw - nw) / 2 - 0.1), round((ph - nh) / 2 - 0.1)


def letterbox(rgb: np.ndarray, box: Letterbox) -> tuple[np.ndarray, float, tuple[int, int]]:
    """``rgb`` (H x W x 3 uint8) letterboxed: (image, scale, (left, top) padding)."""
    h, w = rgb.shape[:2]
    nw, nh, pw, ph, r = letterbox_size(w, h, box.size, box.stride)
    interp = cv2.INTER_LINEAR if box.bilinear or r >= 1 else cv2.INTER_AREA
    resized = rgb if (nw, nh) == (w, h) else cv2.resize(rgb, (nw, nh), interpolation=interp)
    left, top = letterbox_offsets(nw, nh, pw, ph, box.centred)
    out = np.full((ph, pw, 3), PAD_VALUE, np.uint8)
    out[top : top + nh, left : left + nw] = resized
    return out, r, (left, top)


def crop_box(bbox_xywh_norm: tuple[float, float, float, float], width: int, height: int,
             margin: float) -> tuple[int, int, int]:
    """Square crop around a box, in pixels of a ``width`` x ``height`` image: (x0, y0, side).

    The square may extend past the image; :func:`cut_crop` pads it.  Its side is bounded by the image whatever
    the box and margin: at most ``(1 + 2 * MAX_CROP_MARGIN)`` times the image's longer side.

    Raises:
        ValueError: ``margin`` outside [0, MAX_CROP_MARGIN], or a box value that is not finite.
    """
    if not 0 <= margin <= MAX_CROP_MARGIN:
        raise ValueError(f"crop margin {margin!r} outside [0, {MAX_CROP_MARGIN}]")
    if not all(math.isfinite(v) for v in bbox_xywh_norm):
        raise ValueError(f"box {bbox_xywh_norm!r} is not finite")
    x, y, w, h = bbox_xywh_norm
    side = min(max(w * width, h * height), max(width, height)) * (1 + 2 * margin)
    cx, cy = (x + w / 2) * width, (y + h / 2) * height
    side_px = max(2, int(round(side)))
    return int(round(cx - side_px / 2)), int(round(cy - side_px / 2)), side_px


def cut_crop(rgb: np.ndarray, bbox_xywh_norm: tuple[float, float, float, float], margin: float,
             pad_value: int = PAD_VALUE) -> np.ndarray:
    """The square crop of ``rgb`` around a normalised box (padding where it leaves the image)."""
    h, w = rgb.shape[:2]
    x0, y0, side = crop_box(bbox_xywh_norm, w, h, margin)
    out = np.full((side, side, 3), pad_value, np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return out
