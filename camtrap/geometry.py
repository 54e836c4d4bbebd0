"""Image geometry every stage agrees on: the detector's letterbox and the classifier's square crops.

Letterbox: scale the upright image so its long side is the model's input size, pad right/bottom (grey 114)
to a multiple of the stride.  Boxes are mapped back by the same scale, so they come out normalised to the
upright image whatever size it was decoded at.

Crop: the detection box grown by a margin (a fraction of its longer side on every side), made square by
growing the short side (never stretching), clipped to the image and padded (grey) back to a square where
the image edge cut it.  The margin a classifier was trained with travels in its spec; training and
inference cut crops with these functions only.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["PAD_VALUE", "DEFAULT_CROP_MARGIN", "letterbox_size", "letterbox", "crop_box", "cut_crop"]

PAD_VALUE = 114
"""Grey used for letterbox and crop padding (ultralytics' choice, kept for both stages)."""

DEFAULT_CROP_MARGIN = 0.1
"""Margin new classifiers are trained with (recorded in each classifier's spec; inference reads the spec)."""


def letterbox_size(width: int, height: int, size: int, stride: int) -> tuple[int, int, int, int, float]:
    """(resized w, resized h, padded w, padded h, scale) of the letterbox of a ``width`` x ``height`` image."""
    r = size / max(height, width)
    nw, nh = max(1, round(width * r)), max(1, round(height * r))
    return nw, nh, -(-nw // stride) * stride, -(-nh // stride) * stride, r


def letterbox(rgb: np.ndarray, size: int, stride: int) -> tuple[np.ndarray, float]:
    """Scale ``rgb`` (H x W x 3 uint8) so its long side is ``size``; pad right/bottom to a multiple of ``stride``."""
    h, w = rgb.shape[:2]
    nw, nh, pw, ph, r = letterbox_size(w, h, size, stride)
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if r < 1 else cv2.INTER_LINEAR)
    out = np.full((ph, pw, 3), PAD_VALUE, np.uint8)
    out[:nh, :nw] = resized
    return out, r


def crop_box(bbox_xywh_norm: tuple[float, float, float, float], width: int, height: int,
             margin: float) -> tuple[int, int, int]:
    """Square crop around a box, in pixels of a ``width`` x ``height`` image: (x0, y0, side).

    The square may extend past the image; :func:`cut_crop` pads it.
    """
    x, y, w, h = bbox_xywh_norm
    side = max(w * width, h * height) * (1 + 2 * margin)
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
