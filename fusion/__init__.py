"""Fusion: per-frame detections and per-crop class probabilities -> calibrated sequence probabilities.

Pure functions (``fuse``) driven by :class:`fusion.model.FusionConfig`; calibration (``fit``) fitted on a
validation split and saved as a small JSON file (:class:`fusion.model.FusionModel`) next to the models.
"""

from fusion.fit import fit
from fusion.fuse import fuse, fuse_all
from fusion.model import FusionConfig, FusionMismatchError, FusionModel, Pooling, SequenceEvidence

__all__ = ["FusionConfig", "FusionMismatchError", "FusionModel", "Pooling", "SequenceEvidence", "fit", "fuse",
           "fuse_all"]
