"""SpeciesNet's ``predictions.json`` (its ensemble's output) as a MegaDetector results file, so SpeciesNet runs can
be reviewed (``hakuna review``) and their detections fused by Hakuna.

Per image SpeciesNet gives ``filepath``, optional ``failures``, ``detections`` (MegaDetector's boxes with a
``label``), top-5 ``classifications`` and the ensemble's ``prediction`` (a seven-token taxonomy string
``uuid;class;order;family;genus;species;common name``) with ``prediction_score`` and ``prediction_source``.
The ensemble's prediction becomes the classification of every detection of the image (as SpeciesNet's own
converter does); a non-blank prediction on an image without detections gets a whole-image detection of category
"unknown" (kept, never cropped); a blank prediction classifies nothing.  Classification categories are named by
their common name, with the full taxonomy string in ``classification_category_descriptions``.  SpeciesNet's
other per-image fields are kept.
"""

from __future__ import annotations

import os
from pathlib import Path

from camtrap.fileio import DataError, read_json
from camtrap.mdjson import DetectionResults, to_json, validate
from camtrap.results import Detection, FrameDetections

__all__ = ["BLANK", "common_name", "results_from_speciesnet", "read_speciesnet"]

BLANK = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
_RANKS = ("category", "class", "order", "family", "species", "", "")
_KEPT = ("prediction_source", "model_version", "classifications", "prediction", "prediction_score")


def common_name(taxonomy: str) -> str:
    """A readable name for a taxonomy string: the common name, else the most specific rank that is there."""
    tokens = [t.strip() for t in taxonomy.split(";")]
    if len(tokens) != 7:
        return taxonomy
    if tokens[6]:
        return tokens[6]
    if tokens[5] and tokens[4]:
        return f"{tokens[4]} {tokens[5]}"
    for i in (4, 3, 2, 1, 0):
        if tokens[i]:
            return f"{tokens[i]} {('species' if i == 4 else _RANKS[i])}"
    return "unnamed"


def _relative(path: str, base: str | None) -> str:
    path = path.replace("\\", "/")
    if base:
        base = base.replace("\\", "/").rstrip("/") + "/"
        if path.startswith(base):
            return path[len(base) :]
    return path


def _frame(i: int, pred: dict, base: str | None, class_ids: dict[str, str], classes: dict,
           det_ids: dict[str, str]) -> FrameDetections:  # fmt: skip
    if not isinstance(pred, dict) or not isinstance(pred.get("filepath"), str):
        raise ValueError(f"predictions[{i}] has no filepath")
    file = _relative(pred["filepath"], base)
    extra = {f"speciesnet_{k}": pred[k] for k in _KEPT if k in pred}
    if pred.get("failures"):
        return FrameDetections(file, None, f"speciesnet failures: {pred['failures']}", extra=extra)
    dets = []
    for d in pred.get("detections") or ():
        label = str(d.get("label") or "animal")
        det_ids.setdefault(str(d.get("category", "")), label)
        dets.append(Detection(label, float(d["conf"]), tuple(float(v) for v in d["bbox"])))
    prediction = pred.get("prediction")
    if isinstance(prediction, str) and prediction != BLANK:
        if not dets:
            dets.append(Detection("unknown", float(pred.get("prediction_score", 0.0)), (0.0, 0.0, 1.0, 1.0)))
        cid = class_ids.setdefault(prediction, str(len(class_ids)))
        for k in range(len(dets)):
            classes[(file, k)] = ((cid, float(pred.get("prediction_score", 0.0))),)
    return FrameDetections(file, tuple(dets), extra=extra)


def results_from_speciesnet(data: object, source: str | os.PathLike[str] = "predictions.json", *,
                            base_folder: str | None = None) -> DetectionResults:  # fmt: skip
    """The results file for a parsed ``predictions.json``; ``base_folder`` is cut from the front of file paths."""
    if not isinstance(data, dict) or not isinstance(data.get("predictions"), list):
        raise DataError(source, "not a SpeciesNet predictions file (no 'predictions' list)")
    class_ids: dict[str, str] = {}
    det_ids: dict[str, str] = {}
    classes: dict = {}
    frames = []
    for i, pred in enumerate(data["predictions"]):
        try:
            frames.append(_frame(i, pred, base_folder, class_ids, classes, det_ids))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise DataError(source, f"predictions[{i}]: {exc}") from exc
    names = {cid: common_name(tax) for tax, cid in class_ids.items()}
    descriptions = {cid: tax for tax, cid in class_ids.items()}
    categories = {k: v for k, v in det_ids.items() if k.isdigit()} or None
    results = DetectionResults(tuple(frames), "speciesnet", {}, **({"detection_categories": categories}
                                                                   if categories else {}),
                               classifier="speciesnet ensemble", classification_categories=names or None,
                               classification_category_descriptions=descriptions or None,
                               classifications=classes or None)  # fmt: skip
    # What is written must read back: the results file's own checks (confidences in [0, 1], boxes inside the
    # frame, finite numbers), its images numbered as the predictions are.
    if problems := validate(to_json(results)):
        raise DataError(source, "; ".join(p.replace("images[", "predictions[", 1) for p in problems[:3]))
    return results


def read_speciesnet(path: str | os.PathLike[str], *, base_folder: str | None = None) -> DetectionResults:
    """:func:`results_from_speciesnet` for a file."""
    return results_from_speciesnet(read_json(path), Path(path), base_folder=base_folder)
