"""A static review site for ecologists: crops grouped by predicted species, each sequence's frames with boxes,
per-crop top-3 and fused probabilities, and the images that failed.  Opens from disk; no server.

Reviewers confirm, reject or relabel crops (keyboard: arrows move, c confirm, x reject, r relabel, u undo,
Enter opens the sequence) and download ``corrections.csv`` (:data:`classifier.data.CORRECTION_COLUMNS`), which
``hakuna classifier train --corrections`` learns from.  Their work is kept in the browser's local storage.

Thumbnails are written once (existing ones are reused), so a site with 10,000 crops is rebuilt quickly and
the page loads small JPEGs lazily.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from camtrap.fileio import atomic_write_text
from camtrap.frames import frame_ref
from camtrap.geometry import DEFAULT_CROP_MARGIN, cut_crop
from camtrap.images import load_frame
from camtrap.mdjson import DetectionResults
from camtrap.results import FrameDetections
from classifier.data import CORRECTION_COLUMNS

__all__ = ["ReviewConfig", "build_review"]

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent / "review_assets"


@dataclass(frozen=True)
class ReviewConfig:
    """What the page shows and how big its thumbnails are."""

    crop_px: int = 160
    frame_px: int = 640
    margin: float = DEFAULT_CROP_MARGIN
    allow_outside_root: bool = False
    top_fused: int = 5
    min_box_conf: float = 0.1  # unclassified boxes below this are counted, not drawn
    title: str = "Hakuna review"


def _thumb(path: Path, rgb: np.ndarray, size: int) -> None:
    if path.exists():
        return
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])


def _slug(file: str) -> str:
    return file.rsplit(".", 1)[0].replace("/", "__").replace("\\", "__")


def _frame_entry(frame: FrameDetections, results: DetectionResults, image_root: Path, out: Path, cfg: ReviewConfig,
                 seq: str, crops: list[dict]) -> dict:  # fmt: skip
    """Thumbnails of one frame and its classified detections; appends crop records to ``crops``."""
    names = results.classification_categories or {}
    entry: dict = {"file": frame.file, "failure": frame.failure, "boxes": [], "hidden": 0}
    if not frame.ok:
        return entry
    ref = frame_ref(image_root, frame.file, allow_outside_root=cfg.allow_outside_root)
    img = load_frame(ref, max_side=max(cfg.frame_px * 2, 1024))
    if not img.ok:
        entry["failure"] = img.failure.value
        return entry
    entry["thumb"] = f"thumbs/frames/{_slug(frame.file)}.jpg"
    _thumb(out / entry["thumb"], img.pixels, cfg.frame_px)
    for i, det in enumerate(frame.detections):
        classes = (results.classifications or {}).get((frame.file, i))
        top3 = [[names.get(c, c), round(p, 4)] for c, p in (classes or ())[:3]]
        if not top3 and det.conf < cfg.min_box_conf:
            entry["hidden"] += 1
            continue
        box = {"bbox": [round(v, 4) for v in det.bbox_xywh_norm], "conf": round(det.conf, 3),
               "category": det.category, "top3": top3}  # fmt: skip
        if top3:
            crop_id = f"{_slug(frame.file)}__{i}"
            thumb = f"thumbs/crops/{crop_id}.jpg"
            _thumb(out / thumb, cut_crop(img.pixels, det.bbox_xywh_norm, cfg.margin), cfg.crop_px)
            crops.append({"id": crop_id, "seq": seq, "file": frame.file, "det": i, "conf": box["conf"],
                          "bbox": box["bbox"], "species": top3[0][0], "prob": top3[0][1], "top3": top3,
                          "thumb": thumb})  # fmt: skip
            box["crop"] = crop_id
        entry["boxes"].append(box)
    return entry


def build_review(results: DetectionResults, image_root: Path, out: Path, *, seq_of: dict[str, str] | None = None,
                 predictions: pd.DataFrame | None = None, cfg: ReviewConfig = ReviewConfig(),  # noqa: B008
                 progress: Callable[[int], None] | None = None) -> Path:  # fmt: skip
    """Write the site under ``out``; returns ``out/index.html``.

    ``seq_of`` maps file -> sequence (each file is its own sequence when absent); ``predictions`` are fused
    sequence probabilities (seq_id x columns), shown in the sequence view.
    """
    (out / "thumbs" / "frames").mkdir(parents=True, exist_ok=True)
    (out / "thumbs" / "crops").mkdir(parents=True, exist_ok=True)
    seq_of = seq_of or {}
    crops: list[dict] = []
    sequences: dict[str, dict] = {}
    failures = []
    for frame in results.frames:
        seq = seq_of.get(frame.file, frame.file)
        entry = _frame_entry(frame, results, image_root, out, cfg, seq, crops)
        sequences.setdefault(seq, {"frames": [], "fused": []})["frames"].append(entry)
        if entry["failure"]:
            failures.append({"file": frame.file, "seq": seq, "reason": entry["failure"]})
        if progress:
            progress(1)
    if predictions is not None:
        for seq, row in predictions.iterrows():
            if seq in sequences:
                top = row.sort_values(ascending=False).head(cfg.top_fused)
                sequences[seq]["fused"] = [[k, round(float(v), 4)] for k, v in top.items()]
    crops.sort(key=lambda c: (-c["prob"], c["id"]))
    species = sorted({c["species"] for c in crops}, key=lambda s: (-sum(c["species"] == s for c in crops), s))
    labels = sorted(set((results.classification_categories or {}).values()) | set(species))
    data = {"title": cfg.title, "species": species, "labels": labels, "crops": crops, "sequences": sequences,
            "failures": failures, "detector": results.detector, "columns": list(CORRECTION_COLUMNS)}  # fmt: skip
    atomic_write_text(out / "data.js", "window.REVIEW = " + json.dumps(data, separators=(",", ":")) + ";\n")
    for name in ("index.html", "app.js", "style.css"):
        shutil.copyfile(ASSETS / name, out / name)
    log.info("review site: %d crops, %d sequences, %d failures -> %s", len(crops), len(sequences), len(failures), out)
    return out / "index.html"
