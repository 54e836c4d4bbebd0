"""Result types passed between stages: frozen dataclasses, bbox conventions in the field names.

Detection categories are carried by *name* ("animal", "person", "vehicle", or whatever a results file calls
them), never by a numeric id: MegaDetector results files map their own string ids to names in
``detection_categories``, and only the names mean something.  Only ``animal`` boxes are cropped and
classified; other categories are kept and written back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ANIMAL", "PERSON", "VEHICLE", "MD_DETECTION_CATEGORIES", "Detection", "FrameDetections",
           "CropPrediction", "SequencePrediction"]  # fmt: skip

ANIMAL, PERSON, VEHICLE = "animal", "person", "vehicle"
MD_DETECTION_CATEGORIES: dict[str, str] = {"1": ANIMAL, "2": PERSON, "3": VEHICLE}
"""MegaDetector's own category ids (what its detectors write; other files may use other ids)."""


@dataclass(frozen=True)
class Detection:
    """One box: category name, confidence, and [x_min, y_min, width, height] normalised to the upright image."""

    category: str
    conf: float
    bbox_xywh_norm: tuple[float, float, float, float]

    @property
    def is_animal(self) -> bool:
        return self.category.strip().lower() == ANIMAL


@dataclass(frozen=True)
class FrameDetections:
    """A detector's answer for one image.  ``detections`` is None exactly when the image failed to load.

    ``file`` is relative to the image root, as in MegaDetector results files.  ``extra`` keeps per-image
    fields of a results file that Hakuna does not use, so a rewrite loses nothing.
    """

    file: str
    detections: tuple[Detection, ...] | None
    failure: str | None = None
    width: int | None = None
    height: int | None = None
    datetime: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.detections is not None

    def max_animal_conf(self) -> float:
        """Highest animal confidence; 0 for an empty or failed frame."""
        return max((d.conf for d in self.detections or () if d.is_animal), default=0.0)


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
