"""Which fusion goes with which models: output columns from a classifier's classes, and the fingerprints that let
a fusion file fitted for one classifier and detector refuse any other pair."""

from __future__ import annotations

import hashlib
import json
import logging

from camtrap.labels import COLUMNS, EMPTY
from fusion import FusionMismatchError, FusionModel

__all__ = ["output_columns", "fingerprints", "check_fusion", "fusion_for"]

log = logging.getLogger(__name__)


def output_columns(classes: tuple[str, ...]) -> tuple[str, ...]:
    """Sequence columns for a classifier: the competition's 54 when its classes are the competition's, else its
    own classes with ``empty`` (appended when it has none)."""
    if set(classes) <= set(COLUMNS):
        return COLUMNS
    return tuple(classes) if EMPTY in classes else (*classes, EMPTY)


def _digest(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprints(detector, classifier) -> dict[str, str]:
    """Short digests of the two models' specs (the same for a ``.pt`` and its ONNX export)."""
    spec = classifier.spec
    clf = {"classes": list(spec.classes), "backbone": spec.backbone, "backbones": list(spec.backbones),
           "training": spec.training, "temperature": spec.temperature}  # fmt: skip
    return {"classifier": _digest(clf), "detector": _digest(json.loads(detector.spec.to_json()))}


def check_fusion(fusion: FusionModel, detector, classifier) -> FusionModel:
    """``fusion`` bound to ``detector``; refused (:class:`FusionMismatchError`) when it was fitted for other models."""
    cols = output_columns(classifier.spec.classes)
    if tuple(fusion.classes) != cols:
        raise FusionMismatchError(f"the fusion file's classes ({len(fusion.classes)}: {', '.join(fusion.classes[:4])}"
                                  f", ...) are not the classifier's; fit fusion for it (`hakuna fit-fusion`)")
    mine = fingerprints(detector, classifier)
    for role in ("classifier", "detector"):
        theirs = fusion.fitted_for.get(role)
        if theirs is not None and theirs != mine[role]:
            raise FusionMismatchError(f"the fusion file was fitted for another {role} (fingerprint {theirs}, this one "
                                      f"is {mine[role]}); fit fusion for these models (`hakuna fit-fusion`)")
    if not fusion.fitted_for:
        log.warning("the fusion file does not record which models it was fitted for (an older file); not checked")
    return fusion.bind(detector.spec.typical_threshold, str(getattr(detector, "file", detector.spec.name)))


def fusion_for(fusion: FusionModel | None, detector, classifier) -> tuple[FusionModel, str]:
    """The fusion to use and how to describe it: the checked file, or the stated default when there is none."""
    if fusion is not None:
        return check_fusion(fusion, detector, classifier), fusion.fit_summary()
    model = FusionModel.default_for(output_columns(classifier.spec.classes))
    return (model.bind(detector.spec.typical_threshold),
            "default, not fitted: P(empty) = 1 - the detector's best confidence, species = crop probabilities pooled "
            "by confidence (fit one with `hakuna fit-fusion --images-csv`)")  # fmt: skip
