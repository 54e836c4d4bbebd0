"""Result types passed between stages: frozen dataclasses, bbox conventions in the field names."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["DetectionCategory", "Detection", "FrameDetections", "CropPrediction", "SequencePrediction"]


class DetectionCategory(enum.IntEnum):
    """MegaDetector's categories, numbered as in its results files ("1": animal, "2": person, "3": vehicle)."""

    ANIMAL = 1
    PERSON = 2
    VEHICLE = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Detection:
    """One box: category, confidence, and [x_min, y_min, width, height] normalised to the upright image."""

    category: DetectionCategory
    conf: float
    bbox_xywh_norm: tuple[float, float, float, float]


@dataclass(frozen=True)
class FrameDetections:
    """A detector's answer for one image.  ``detections`` is None exactly when the image failed to load.

    ``file`` is relative to the image root, as in MegaDetector results files.
    """

    file: str
    detections: tuple[Detection, ...] | None
    failure: str | None = None
    width: int | None = None
    height: int | None = None
    datetime: str | None = None

    @property
    def ok(self) -> bool:
        return self.detections is not None

    def max_conf(self, category: DetectionCategory | None = DetectionCategory.ANIMAL) -> float:
        """Highest confidence of ``category`` (any category if None); 0 for an empty or failed frame."""
        return max((d.conf for d in self.detections or () if category is None or d.category == category),
                   default=0.0)  # fmt: skip


@dataclass(frozen=True)
class CropPrediction:
    """Classifier output for one detection crop: ``probs`` over the classifier's classes, in its order."""

    file: str
    detection_index: int
    detection: Detection
    probs: tuple[float, ...]


@dataclass(frozen=True)
class SequencePrediction:
    """The fused answer for one sequence: 54 probabilities in competition column order."""

    seq_id: str
    probs: tuple[float, ...]
    n_frames: int
    n_failed: int = 0
