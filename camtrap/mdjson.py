"""MegaDetector batch-results JSON: reading, writing and checking it by MegaDetector's own rules.

Written from MegaDetector's format document (format 1.6) and its validator: ``info.format_version`` (a
string; older files wrote numbers, which are read), ``detection_categories`` mapping string integer ids to
names, ``images[]`` with ``file`` relative to the image root and ``detections[]`` of
``category``/``conf``/``bbox`` (``[x_min, y_min, width, height]`` normalised, top-left origin), ``failure``
+ ``detections: null`` for images that could not be processed, optional per-detection ``classifications``
(``[[class id, conf], ...]``) with ``classification_categories`` and ``classification_category_descriptions``.

Rules followed:

* Categories are read by **name** through the file's own ``detection_categories``: a file may number them
  differently or add its own (``"4": "group"``).  Unknown names are kept, written back and never cropped.
* A rewrite keeps what Hakuna does not use: other ``info`` keys (``detection_completion_time``, ...),
  other top-level keys, and extra per-image fields.
* Written files say ``format_version`` "1.6", ``info.detector`` names the model file and ``info.classifier``
  the classifier, when one added classifications.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camtrap.fileio import DataError, atomic_write_json, read_json
from camtrap.results import MD_DETECTION_CATEGORIES, Detection, FrameDetections

__all__ = ["FORMAT_VERSION", "DetectionResults", "to_json", "write_results", "read_results", "results_from_json",
           "validate", "results_from_boxes"]  # fmt: skip

FORMAT_VERSION = "1.6"
_IMAGE_KEYS = ("file", "failure", "detections", "width", "height", "datetime")
_INFO_KEYS = ("format_version", "detector", "detector_metadata", "classifier")
_TOP_KEYS = ("info", "detection_categories", "classification_categories", "classification_category_descriptions",
             "images")  # fmt: skip
Classifications = dict[tuple[str, int], tuple[tuple[str, float], ...]]


@dataclass(frozen=True)
class DetectionResults:
    """A whole results file: per-image detections, the detector's identity and thresholds, and what else the
    file held (kept so a rewrite loses nothing)."""

    frames: tuple[FrameDetections, ...]
    detector: str = "unknown"  # info.detector: the model file's name
    detector_metadata: dict = field(default_factory=dict)
    detection_categories: dict[str, str] = field(default_factory=lambda: dict(MD_DETECTION_CATEGORIES))
    classifier: str | None = None  # info.classifier
    classification_categories: dict[str, str] | None = None
    classification_category_descriptions: dict[str, str] | None = None
    classifications: Classifications | None = None  # (file, detection index) -> [(class id, p)], best first
    info_extra: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def by_file(self) -> dict[str, FrameDetections]:
        return {f.file: f for f in self.frames}

    @property
    def typical_threshold(self) -> float | None:
        """The detector's recommended animal threshold, as its metadata records it (None if absent)."""
        value = self.detector_metadata.get("typical_detection_threshold")
        return float(value) if isinstance(value, (int, float)) else None


def _category_ids(results: DetectionResults) -> dict[str, str]:
    """name -> id for every category used: the file's own ids first, MegaDetector's for new standard names,
    then the next free integer."""
    ids = {name: cid for cid, name in results.detection_categories.items()}
    taken = set(results.detection_categories)
    standard = {name: cid for cid, name in MD_DETECTION_CATEGORIES.items()}
    for frame in results.frames:
        for d in frame.detections or ():
            if d.category in ids:
                continue
            cid = standard.get(d.category)
            if cid is None or cid in taken:
                cid = str(max((int(t) for t in taken), default=0) + 1)
            ids[d.category] = cid
            taken.add(cid)
    return ids


def _image_entry(frame: FrameDetections, ids: dict[str, str], classes: Classifications | None) -> dict:
    entry: dict = {"file": frame.file}
    if frame.detections is None:
        entry["failure"] = frame.failure or "unknown failure"
        entry["detections"] = None
    else:
        dets = []
        for i, d in enumerate(frame.detections):
            det = {"category": ids[d.category], "conf": round(float(d.conf), 3),
                   "bbox": [round(float(v), 4) for v in d.bbox_xywh_norm]}  # fmt: skip
            if classes and (frame.file, i) in classes:
                det["classifications"] = [[cid, round(float(p), 3)] for cid, p in classes[(frame.file, i)]]
            dets.append(det)
        entry["detections"] = dets
    if frame.width:
        entry["width"], entry["height"] = frame.width, frame.height
    if frame.datetime:
        entry["datetime"] = frame.datetime
    entry.update({k: v for k, v in frame.extra.items() if k not in entry})
    return entry


def to_json(results: DetectionResults) -> dict:
    """The results as a MegaDetector-format JSON object."""
    info: dict[str, Any] = {"format_version": FORMAT_VERSION, "detector": results.detector}
    if results.detector_metadata:
        info["detector_metadata"] = results.detector_metadata
    if results.classifier:
        info["classifier"] = results.classifier
    info.update({k: v for k, v in results.info_extra.items() if k not in info})
    ids = _category_ids(results)
    out: dict[str, Any] = {"info": info, "detection_categories": {cid: name for name, cid in ids.items()}}
    if results.classification_categories:
        out["classification_categories"] = dict(results.classification_categories)
    if results.classification_category_descriptions:
        out["classification_category_descriptions"] = dict(results.classification_category_descriptions)
    out["images"] = [_image_entry(f, ids, results.classifications) for f in results.frames]
    out.update({k: v for k, v in results.extra.items() if k not in out})
    return out


def write_results(path: str | os.PathLike[str], results: DetectionResults) -> Path:
    """Write a results file atomically."""
    return atomic_write_json(path, to_json(results), indent=1)


def _frame(entry: dict, names: dict[str, str], where: str) -> tuple[FrameDetections, Classifications]:
    extra = {k: v for k, v in entry.items() if k not in _IMAGE_KEYS}
    if entry.get("detections") is None:
        return FrameDetections(entry["file"], None, entry.get("failure") or "unknown failure", extra=extra), {}
    dets, classes = [], {}
    for i, d in enumerate(entry["detections"]):
        try:
            bbox = tuple(float(v) for v in d["bbox"])
            dets.append(Detection(names[str(d["category"])], float(d["conf"]), bbox))  # type: ignore[arg-type]
            if d.get("classifications"):
                classes[(entry["file"], i)] = tuple((str(c), float(p)) for c, p in d["classifications"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{where}.detections[{i}]: {exc!r}") from exc
    width, height = entry.get("width"), entry.get("height")
    frame = FrameDetections(entry["file"], tuple(dets), None, width if _size(width) else None,
                            height if _size(height) else None, entry.get("datetime"), extra)  # fmt: skip
    return frame, classes


def results_from_json(data: object, source: str | os.PathLike[str] = "<results>") -> DetectionResults:
    """Parse a results object (ours, MegaDetector's or any tool's that follows its format).

    Raises:
        DataError: the object breaks the format; the message names ``source`` and the first problems.
    """
    problems = validate(data)
    if problems:
        raise DataError(source, "not a MegaDetector results file: " + "; ".join(problems[:5]))
    assert isinstance(data, dict)
    names = {str(k): str(v) for k, v in data["detection_categories"].items()}
    frames, classes = [], {}
    for i, entry in enumerate(data["images"]):
        try:
            frame, cls = _frame(entry, names, f"images[{i}]")
        except ValueError as exc:
            raise DataError(source, str(exc)) from exc
        frames.append(frame)
        classes.update(cls)
    info = data["info"]
    return DetectionResults(
        tuple(frames), str(info.get("detector", "unknown")), dict(info.get("detector_metadata") or {}), names,
        info.get("classifier"), data.get("classification_categories"), data.get("classification_category_descriptions"),
        classes or None, {k: v for k, v in info.items() if k not in _INFO_KEYS},
        {k: v for k, v in data.items() if k not in _TOP_KEYS})  # fmt: skip


def read_results(path: str | os.PathLike[str]) -> DetectionResults:
    """Read a results file after checking it with :func:`validate`."""
    return results_from_json(read_json(path), path)


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _size(v: object) -> bool:
    """A plausible image side in pixels (anything else is ignored, as a missing size is)."""
    return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1_000_000


def _unit(v: object) -> bool:
    """A finite number in [0, 1] (NaN fails every comparison, so it is tested for first)."""
    return _number(v) and 0 <= v <= 1  # type: ignore[operator]


def _check_detection(w: str, d: object, cats: dict, class_cats: dict) -> list[str]:
    if not isinstance(d, dict) or not isinstance(d.get("category"), str) or d["category"] not in cats:
        return [f"{w}: category must be one of the detection_categories ids {sorted(cats)}"]
    problems = []
    conf, bbox = d.get("conf"), d.get("bbox")
    if not _unit(conf):
        problems.append(f"{w}: conf must be a number in [0, 1]")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) for v in bbox)):
        problems.append(f"{w}: bbox must be [x_min, y_min, width, height] (finite numbers)")
    elif min(bbox) < -1e-6 or bbox[0] + bbox[2] > 1 + 1e-3 or bbox[1] + bbox[3] > 1 + 1e-3:
        problems.append(f"{w}: bbox {bbox} is not normalised to [0, 1]")
    classes = d.get("classifications")
    if classes is not None and not isinstance(classes, list):
        problems.append(f"{w}: classifications must be a list")
        classes = []
    for c in classes or []:
        if not (isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) and c[0] in class_cats
                and _unit(c[1])):  # fmt: skip
            problems.append(f"{w}: classification {c!r} must be [category id, confidence in [0, 1]]")
    return problems


def _check_image(i: int, im: object, cats: dict, class_cats: dict) -> list[str]:
    where = f"images[{i}]"
    if not isinstance(im, dict) or not isinstance(im.get("file"), str):
        return [f"{where}: needs a string 'file'"]
    dets = im.get("detections")
    failure = im.get("failure")
    if failure is not None and not isinstance(failure, str):
        return [f"{where}: failure must be a string"]
    if dets is None:
        return [] if isinstance(failure, str) else [f"{where}: detections is null but there is no 'failure'"]
    if not isinstance(dets, list):
        return [f"{where}: detections must be a list or null"]
    if failure is not None:
        return [f"{where}: has a failure but a non-null detections list"]
    return [p for j, d in enumerate(dets) for p in _check_detection(f"{where}.detections[{j}]", d, cats, class_cats)]


def _check_categories(data: dict, key: str) -> tuple[dict, list[str]]:
    cats = data.get(key)
    if cats is None and key != "detection_categories":
        return {}, []
    if not isinstance(cats, dict) or not all(isinstance(k, str) and k.strip().isdigit() and isinstance(v, str)
                                             and v.strip() for k, v in cats.items()):  # fmt: skip
        return {}, [f"{key} must map string integer ids to non-blank names"]
    return cats, []


def _version_ok(version: object) -> bool:
    try:
        return not isinstance(version, bool) and float(str(version)) >= 1.0
    except ValueError:
        return False


def validate(data: object) -> list[str]:
    """Problems with a results object, by MegaDetector's format rules (empty list: valid)."""
    if not isinstance(data, dict):
        return ["top level must be an object"]
    problems = []
    info = data.get("info")
    if not isinstance(info, dict) or not _version_ok(info.get("format_version")):
        problems.append("info.format_version (a version number such as \"1.6\") is required")
    cats, bad = _check_categories(data, "detection_categories")
    class_cats, bad2 = _check_categories(data, "classification_categories")
    problems += bad + bad2
    images = data.get("images")
    if not isinstance(images, list):
        return problems + ["images must be a list"]
    seen: dict[str, int] = {}
    for i, im in enumerate(images):
        problems += _check_image(i, im, cats, class_cats)
        file = im.get("file") if isinstance(im, dict) else None
        if isinstance(file, str) and seen.setdefault(file, i) != i:
            problems.append(f"images[{i}]: file {file!r} is listed twice (first at images[{seen[file]}])")
        if len(problems) > 20:
            break
    return problems


def results_from_boxes(files: Iterable[str], boxes, *, detector: str = "ground-truth") -> DetectionResults:
    """Ground-truth boxes (a table with :data:`camtrap.lila.BOX_COLUMNS`) as results with confidence 1.

    Lets the classifier train on annotated boxes, and the rest of the pipeline run on an oracle detector.
    LILA's ``group`` boxes are animals.
    """
    by_file: dict[str, list[Detection]] = {}
    for b in boxes.itertuples(index=False):
        name = b.category if b.category in ("person", "vehicle") else "animal"
        by_file.setdefault(b.file_name, []).append(
            Detection(name, 1.0, (b.x_min_norm, b.y_min_norm, b.width_norm, b.height_norm)))  # fmt: skip
    return DetectionResults(tuple(FrameDetections(f, tuple(by_file.get(f, ()))) for f in files), detector)

