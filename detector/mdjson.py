"""MegaDetector batch-results JSON (format 1.4+): writing, reading and a schema check.

Written from MegaDetector's published format document: ``info.format_version``, ``detection_categories``
(``{"1": "animal", "2": "person", "3": "vehicle"}``), ``images[]`` with ``file`` relative to the image root,
``detections[]`` of ``category``/``conf``/``bbox`` (``[x_min, y_min, width, height]`` normalised, top-left
origin), ``failure`` + ``detections: null`` for images that could not be processed, and optional
``width``/``height``/``datetime``/``max_detection_conf`` and per-detection ``classifications``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from camtrap.fileio import DataError, atomic_write_json
from camtrap.results import Detection, DetectionCategory, FrameDetections

__all__ = ["FORMAT_VERSION", "DetectionResults", "to_json", "write_results", "read_results", "validate",
           "results_from_boxes"]

FORMAT_VERSION = "1.4"
DETECTION_CATEGORIES = {str(int(c)): c.label for c in DetectionCategory}


@dataclass(frozen=True)
class DetectionResults:
    """A whole results file: per-image detections plus the detector's identity and thresholds."""

    frames: tuple[FrameDetections, ...]
    detector: str = "unknown"
    detector_metadata: dict = field(default_factory=dict)
    classification_categories: dict[str, str] | None = None
    classifications: dict[tuple[str, int], tuple[tuple[str, float], ...]] | None = None  # (file, det idx) -> [(id, p)]

    def by_file(self) -> dict[str, FrameDetections]:
        return {f.file: f for f in self.frames}


def _image_entry(frame: FrameDetections, classes: dict | None) -> dict:
    entry: dict = {"file": frame.file}
    if frame.detections is None:
        entry["failure"] = frame.failure or "unknown failure"
        entry["detections"] = None
        return entry
    dets = []
    for i, d in enumerate(frame.detections):
        det = {"category": str(int(d.category)), "conf": round(d.conf, 3),
               "bbox": [round(v, 4) for v in d.bbox_xywh_norm]}  # fmt: skip
        if classes and (frame.file, i) in classes:
            det["classifications"] = [[cid, round(p, 3)] for cid, p in classes[(frame.file, i)]]
        dets.append(det)
    entry["detections"] = dets
    entry["max_detection_conf"] = round(max((d.conf for d in frame.detections), default=0.0), 3)
    if frame.width:
        entry["width"], entry["height"] = frame.width, frame.height
    if frame.datetime:
        entry["datetime"] = frame.datetime
    return entry


def to_json(results: DetectionResults) -> dict:
    """The results as a MegaDetector-format JSON object."""
    info = {"format_version": FORMAT_VERSION, "detector": results.detector}
    if results.detector_metadata:
        info["detector_metadata"] = results.detector_metadata
    out = {"info": info, "detection_categories": dict(DETECTION_CATEGORIES)}
    if results.classification_categories:
        out["classification_categories"] = dict(results.classification_categories)
    out["images"] = [_image_entry(f, results.classifications) for f in results.frames]
    return out


def write_results(path: str | os.PathLike[str], results: DetectionResults) -> Path:
    """Write a results file atomically."""
    return atomic_write_json(path, to_json(results), indent=1)


def _frame(entry: dict, where: str) -> tuple[FrameDetections, dict]:
    dets, classes = [], {}
    if entry.get("detections") is None:
        return FrameDetections(entry["file"], None, entry.get("failure") or "unknown failure"), classes
    for i, d in enumerate(entry["detections"]):
        try:
            cat = DetectionCategory(int(d["category"]))
            bbox = tuple(float(v) for v in d["bbox"])
            dets.append(Detection(cat, float(d["conf"]), bbox))  # type: ignore[arg-type]
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{where}.detections[{i}]: {exc!r}") from exc
        if d.get("classifications"):
            classes[(entry["file"], i)] = tuple((str(c), float(p)) for c, p in d["classifications"])
    frame = FrameDetections(entry["file"], tuple(dets), None, entry.get("width"), entry.get("height"),
                            entry.get("datetime"))  # fmt: skip
    return frame, classes


def read_results(path: str | os.PathLike[str]) -> DetectionResults:
    """Read a results file (ours or MegaDetector's own) after checking it with :func:`validate`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from exc
    problems = validate(data)
    if problems:
        raise DataError(path, "not a MegaDetector results file: " + "; ".join(problems[:5]))
    frames, classes = [], {}
    for i, entry in enumerate(data["images"]):
        try:
            frame, cls = _frame(entry, f"images[{i}]")
        except ValueError as exc:
            raise DataError(path, str(exc)) from exc
        frames.append(frame)
        classes.update(cls)
    info = data.get("info", {})
    return DetectionResults(tuple(frames), str(info.get("detector", "unknown")), info.get("detector_metadata", {}),
                            data.get("classification_categories"), classes or None)  # fmt: skip


def _check_image(i: int, im: object, cats: Iterable[str], class_cats: Iterable[str]) -> list[str]:
    where = f"images[{i}]"
    if not isinstance(im, dict) or not isinstance(im.get("file"), str):
        return [f"{where}: needs a string 'file'"]
    dets = im.get("detections")
    if dets is None:
        return [] if isinstance(im.get("failure"), str) else [f"{where}: detections is null but there is no 'failure'"]
    if not isinstance(dets, list):
        return [f"{where}: detections must be a list or null"]
    problems = []
    for j, d in enumerate(dets):
        w = f"{where}.detections[{j}]"
        if not isinstance(d, dict) or str(d.get("category")) not in cats:
            problems.append(f"{w}: category must be one of {sorted(cats)}")
            continue
        conf, bbox = d.get("conf"), d.get("bbox")
        if not isinstance(conf, (int, float)) or not 0 <= conf <= 1:
            problems.append(f"{w}: conf must be a number in [0, 1]")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox)):
            problems.append(f"{w}: bbox must be [x_min, y_min, width, height]")
        elif min(bbox) < -1e-6 or bbox[0] + bbox[2] > 1 + 1e-3 or bbox[1] + bbox[3] > 1 + 1e-3:
            problems.append(f"{w}: bbox {bbox} is not normalised to [0, 1]")
        for c in d.get("classifications") or []:
            if not (isinstance(c, list) and len(c) == 2 and str(c[0]) in class_cats):
                problems.append(f"{w}: classification {c!r} must be [category id, confidence]")
    return problems


def validate(data: object) -> list[str]:
    """Problems with a results object, as MegaDetector's format document defines it (empty list: valid)."""
    if not isinstance(data, dict):
        return ["top level must be an object"]
    problems = []
    info = data.get("info")
    if not isinstance(info, dict) or not isinstance(info.get("format_version"), str):
        problems.append("info.format_version (a string) is required")
    cats = data.get("detection_categories")
    if not isinstance(cats, dict) or not all(isinstance(k, str) and k.isdigit() for k in cats):
        problems.append("detection_categories must map string integer ids to names")
        cats = {}
    class_cats = data.get("classification_categories") or {}
    images = data.get("images")
    if not isinstance(images, list):
        return problems + ["images must be a list"]
    for i, im in enumerate(images):
        problems += _check_image(i, im, set(cats), set(class_cats))
    return problems


def results_from_boxes(files: list[str], boxes, *, detector: str = "ground-truth") -> DetectionResults:
    """Ground-truth boxes (a table with :data:`camtrap.lila.BOX_COLUMNS`) as results with confidence 1.

    Lets the classifier train on annotated boxes, and the rest of the pipeline run on an oracle detector.
    """
    by_file: dict[str, list[Detection]] = {}
    for b in boxes.itertuples(index=False):
        cat = DetectionCategory.PERSON if b.category == "person" else (
            DetectionCategory.VEHICLE if b.category == "vehicle" else DetectionCategory.ANIMAL)  # fmt: skip
        by_file.setdefault(b.file_name, []).append(
            Detection(cat, 1.0, (b.x_min_norm, b.y_min_norm, b.width_norm, b.height_norm)))  # fmt: skip
    return DetectionResults(tuple(FrameDetections(f, tuple(by_file.get(f, ()))) for f in files), detector)
