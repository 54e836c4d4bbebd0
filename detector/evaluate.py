"""Scoring detections against ground-truth boxes: recall at an IoU, false boxes on empty frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from camtrap.results import FrameDetections

__all__ = ["DetectorScores", "iou_xywh", "evaluate"]


@dataclass(frozen=True)
class DetectorScores:
    """Animal-detection quality on a set of frames at one confidence threshold."""

    threshold: float
    iou: float
    animals: int  # ground-truth boxes
    found: int  # ground-truth boxes matched by a detection
    frames_empty: int  # frames with no ground-truth box
    false_on_empty: int  # detections on those frames
    false_boxes: int  # unmatched detections on all frames

    @property
    def recall(self) -> float:
        return self.found / self.animals if self.animals else 1.0

    @property
    def false_per_empty_frame(self) -> float:
        return self.false_on_empty / self.frames_empty if self.frames_empty else 0.0


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes given as rows of [x_min, y_min, width, height] (any consistent units)."""
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = a[:, 2:3] * a[:, 3:4] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _match(det: np.ndarray, gt: np.ndarray, iou: float) -> int:
    """Greedy one-to-one matching (detections in confidence order); returns matched ground-truth boxes."""
    if not len(det) or not len(gt):
        return 0
    overlaps = iou_xywh(det, gt)
    used = np.zeros(len(gt), bool)
    found = 0
    for row in overlaps:
        row = np.where(used, -1.0, row)
        j = int(row.argmax())
        if row[j] >= iou:
            used[j] = True
            found += 1
    return found


def evaluate(
    frames: list[FrameDetections], truth: pd.DataFrame, *, threshold: float, iou: float = 0.5
) -> DetectorScores:
    """Score ``frames`` against ``truth`` (columns of :data:`camtrap.lila.BOX_COLUMNS`, animal boxes only).

    Failed frames are left out; a frame is empty when ``truth`` has no box for it.
    """
    by_file = {f: g[["x_min_norm", "y_min_norm", "width_norm", "height_norm"]].to_numpy(float)
               for f, g in truth.groupby("file_name")}  # fmt: skip
    animals = found = empty = false_empty = false_all = 0
    for frame in frames:
        if not frame.ok:
            continue
        dets = sorted((d for d in frame.detections if d.is_animal and d.conf >= threshold), key=lambda d: -d.conf)
        det = np.array([d.bbox_xywh_norm for d in dets], float).reshape(-1, 4)
        gt = by_file.get(frame.file, np.zeros((0, 4)))
        matched = _match(det, gt, iou)
        animals += len(gt)
        found += matched
        false_all += len(det) - matched
        if not len(gt):
            empty += 1
            false_empty += len(det)
    return DetectorScores(threshold, iou, animals, found, empty, false_empty, false_all)
