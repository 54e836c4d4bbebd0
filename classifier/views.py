"""Several views of one photo for the few-shot recipe: the whole frame, its centre square, overlapping squares
along the long side and a central zoom, each resized to a square tile; a model pools its features over them.

A photo becomes a *mosaic*: its views' tiles stacked top to bottom (``len(views) * T`` x ``T`` pixels), so one
uint8 array per photo still travels through decoding, batching, flip TTA (a horizontal flip mirrors every tile in
place) and ONNX, and :class:`classifier.probe.ProbeClassifier` cuts it back into tiles.

Views (boxes in pixels of an ``h`` x ``w`` photo, ``s`` its short side):

* ``stretch``: the whole photo, stretched to the square;
* ``pad``: the whole photo, the short side padded (grey) to a square;
* ``shape``: the framing chosen by the photo's shape: ``stretch`` up to an aspect of ``SHAPE_STRETCH_MAX``
  (4:3 and 3:2 camera frames), ``pad`` beyond it (wide panoramas, where stretching distorts the animal);
* ``center``: the centre ``s`` x ``s`` square;
* ``first`` / ``last``: the ``s`` x ``s`` squares at the two ends of the long side (left/right, or top/bottom);
* ``zoom``: the centre square of side ``ZOOM * s``.
"""

from __future__ import annotations

import cv2
import numpy as np

from camtrap.geometry import PAD_VALUE

__all__ = ["VIEWS", "SHAPE_STRETCH_MAX", "ZOOM", "view_box", "view_tile", "mosaic", "tiles_of"]

VIEWS = ("stretch", "pad", "shape", "center", "first", "last", "zoom")
SHAPE_STRETCH_MAX = 1.6
ZOOM = 0.6


def view_box(view: str, h: int, w: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of ``view`` in an ``h`` x ``w`` photo: the whole photo for the framings of all of it."""
    s = min(h, w)
    if view in ("stretch", "pad", "shape"):
        return 0, 0, w, h
    if view == "zoom":
        z = max(1, round(ZOOM * s))
        return (w - z) // 2, (h - z) // 2, (w - z) // 2 + z, (h - z) // 2 + z
    offset = {"center": None, "first": 0, "last": max(h, w) - s}.get(view, -1)
    if offset == -1:
        raise ValueError(f"unknown view {view!r}; choose from {VIEWS}")
    if offset is None:
        offset = (max(h, w) - s) // 2
    return (offset, 0, offset + s, h) if w >= h else (0, offset, w, offset + s)


def _pad_square(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if h == w:
        return rgb
    side = max(h, w)
    canvas = np.full((side, side, 3), PAD_VALUE, np.uint8)
    canvas[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = rgb
    return canvas


def view_tile(rgb: np.ndarray, view: str, size: int) -> np.ndarray:
    """``view`` of an H x W x 3 uint8 photo as a ``size`` x ``size`` tile."""
    h, w = rgb.shape[:2]
    if view == "shape":
        view = "stretch" if max(h, w) <= SHAPE_STRETCH_MAX * min(h, w) else "pad"
    x0, y0, x1, y1 = view_box(view, h, w)
    part = _pad_square(rgb) if view == "pad" else rgb[y0:y1, x0:x1]
    if part.shape[:2] == (size, size):
        return np.ascontiguousarray(part)
    interp = cv2.INTER_AREA if part.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(part, (size, size), interpolation=interp)


def mosaic(rgb: np.ndarray, views: tuple[str, ...], size: int) -> np.ndarray:
    """The photo's ``views`` as tiles stacked top to bottom: (len(views) * size) x size x 3 uint8."""
    return np.concatenate([view_tile(rgb, v, size) for v in views], axis=0)


def tiles_of(batch: np.ndarray, n_views: int) -> np.ndarray:
    """N mosaics (N x V*T x T x 3) -> their tiles (N x V x T x T x 3)."""
    n, vh, w = batch.shape[:3]
    return batch.reshape(n, n_views, vh // n_views, w, *batch.shape[3:])
