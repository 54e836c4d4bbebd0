"""Crops where photos have boxes: a MegaDetector results file, or a COCO Camera Traps file with boxes (LILA's
format, :func:`camtrap.lila.read_lila_boxes`), turns each photo it covers into the crop of its best box, so the
few-shot recipe trains and predicts on the animal rather than the scene.  Photos the file does not cover (or
whose boxes are all below the threshold) stay whole photos.

A file is matched to a photo by its file name and, among files of that name, the most trailing folders in
common (results files name frames relative to wherever the detector ran).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np

from camtrap.fileio import read_json
from camtrap.mdjson import DetectionResults, read_results, results_from_boxes
from classifier.data import SampleSet

__all__ = ["read_box_file", "with_boxes", "DEFAULT_BOX_THRESHOLD"]

log = logging.getLogger(__name__)
DEFAULT_BOX_THRESHOLD = 0.2  # MegaDetector's animal threshold unless its file recommends one


def read_box_file(path: str | os.PathLike[str]) -> DetectionResults:
    """Boxes from a MegaDetector results file or a COCO Camera Traps file (``images`` + ``annotations``)."""
    from camtrap.lila import read_lila_boxes

    path = Path(path)
    data = read_json(path)
    if isinstance(data, dict) and "annotations" in data:
        boxes = read_lila_boxes(path)
        return results_from_boxes(sorted(set(boxes["file_name"])), boxes, detector=f"boxes:{path.name}")
    return read_results(path)


def _common_tail(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _match(name: str, by_base: dict[str, list[str]]) -> str | None:
    """The results file standing for photo ``name``: of those with its file name, the one sharing the most
    trailing folders with it (None when two tie)."""
    parts = name.split("/")
    scored = sorted(((_common_tail(parts, f.split("/")), f) for f in by_base.get(parts[-1], ())), reverse=True)
    if not scored or (len(scored) > 1 and scored[0][0] == scored[1][0]):
        return None
    return scored[0][1]


def with_boxes(samples: SampleSet, results: DetectionResults, *,
               threshold: float | None = None) -> tuple[SampleSet, np.ndarray]:  # fmt: skip
    """``samples`` with each photo the results cover replaced by the crop of its most confident animal box at or
    above ``threshold`` (the file's recommended threshold, else :data:`DEFAULT_BOX_THRESHOLD`; the larger box on
    a tie); and the mask of samples that became crops."""
    thr = threshold if threshold is not None else (results.typical_threshold or DEFAULT_BOX_THRESHOLD)
    frames = results.by_file()
    norm = {f.replace("\\", "/"): f for f in frames}
    by_base: dict[str, list[str]] = {}
    for f in norm:
        by_base.setdefault(f.rsplit("/", 1)[-1], []).append(f)
    out, boxed = [], np.zeros(len(samples.samples), bool)
    for i, s in enumerate(samples.samples):
        hit = _match(s.frame.file.replace("\\", "/"), by_base) if s.bbox_xywh_norm is None else None
        dets = [d for d in (frames[norm[hit]].detections or ()) if d.is_animal and d.conf >= thr] if hit else []
        if dets:
            best = max(dets, key=lambda d: (d.conf, d.bbox_xywh_norm[2] * d.bbox_xywh_norm[3]))
            s, boxed[i] = dataclasses.replace(s, bbox_xywh_norm=best.bbox_xywh_norm, key=f"{s.key}#box"), True
        out.append(s)
    log.info("%s: %d of %d photos become crops of their boxes", results.detector, int(boxed.sum()),
             len(samples.samples))  # fmt: skip
    return dataclasses.replace(samples, samples=tuple(out)), boxed
