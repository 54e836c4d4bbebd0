"""A static review site for ecologists: crops grouped by predicted species, each sequence's frames with boxes,
per-crop top-3 and fused probabilities, and the images that failed.  Opens from disk; no server.

Reviewers confirm, reject or relabel crops (keyboard: arrows move, c confirm, x reject, r relabel, u undo,
Enter opens the sequence) and download ``corrections.csv`` (:data:`classifier.data.CORRECTION_COLUMNS`), which
``hakuna classifier train --corrections`` learns from.  Their work is kept in the browser's local storage.

Thumbnails are written once (existing ones are reused), so a site with 10,000 crops is rebuilt quickly and
the page loads small JPEGs lazily.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from camtrap.fileio import DataError, atomic_write, atomic_write_text
from camtrap.frames import FrameRef, frame_ref
from camtrap.geometry import DEFAULT_CROP_MARGIN, cut_crop
from camtrap.images import load_frame
from camtrap.labels import EMPTY
from camtrap.mdjson import DetectionResults
from camtrap.results import FrameDetections
from classifier.data import CORRECTION_COLUMNS

__all__ = ["ReviewConfig", "build_review", "review_labels"]

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
    empty_threshold: float = 0.5  # a sequence whose fused P(empty) is at least this is "called empty"
    title: str = "Hakuna review"


def _thumb(path: Path, rgb: np.ndarray, size: int) -> None:
    if path.exists():
        return
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise OSError(f"{path}: the thumbnail could not be encoded")
    # atomic: an existing thumbnail is reused, so one cut short by a killed run would have stayed broken
    atomic_write(path, lambda f: f.write(jpeg.tobytes()), binary=True, fsync=False)


def _slug(file: str) -> str:
    """A thumbnail name unique by construction: the file's stem (readable) and a short hash of its whole relative
    path (so ``x.jpg`` and ``x.png``, or ``a/b_c.jpg`` and ``a_b/c.jpg``, never share one)."""
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in file.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    return f"{stem[:40]}-{hashlib.sha1(file.encode('utf-8', 'surrogateescape')).hexdigest()[:10]}"


def _frame_entry(frame: FrameDetections, results: DetectionResults, ref: FrameRef, out: Path, cfg: ReviewConfig,
                 seq: str, crops: list[dict], date: str = "") -> dict:  # fmt: skip
    """Thumbnails of one frame and its classified detections; appends crop records to ``crops``."""
    names = results.classification_categories or {}
    entry: dict = {"file": frame.file, "failure": frame.failure, "boxes": [], "hidden": 0,
                   "date": date or frame.datetime or "",
                   "best": round(max(frame.max_animal_conf(), 0.0), 3) if frame.ok else 0}
    if not frame.ok:
        return entry
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
                          "thumb": thumb, "date": entry["date"]})  # fmt: skip
            box["crop"] = crop_id
        entry["boxes"].append(box)
    return entry


def _summarise(entry: dict, mine: list[dict], cfg: ReviewConfig) -> None:
    """A sequence's line in the sequence list: date, frames, detector's best confidence, what was called."""
    frames = entry["frames"]
    entry["best"] = max((f.get("best", 0) for f in frames), default=0)
    entry["date"] = next((f["date"] for f in frames if f.get("date")), "")
    entry["n"] = len(frames)
    entry["failed"] = sum(1 for f in frames if f.get("failure"))
    entry["unreadable"] = entry["failed"] == len(frames)
    p_empty = entry.get("p_empty")
    if entry["unreadable"]:  # nothing was seen: no call (never the first class, never "empty")
        entry["empty"], entry["called"], entry["source"] = False, [], "no frame could be read"
    elif p_empty is not None:  # fused probabilities: called empty by fusion
        entry["empty"] = p_empty >= cfg.empty_threshold
        entry["called"] = [k for k, _ in entry["fused"] if k != EMPTY][:1] if not entry["empty"] else []
        entry["source"] = "fusion"
    else:  # no fused probabilities: empty when the classifier saw no animal crop
        entry["empty"] = not mine
        entry["called"] = sorted({c["species"] for c in mine})
        entry["source"] = "detector + classifier"


def build_review(results: DetectionResults, image_root: Path, out: Path, *, seq_of: dict[str, str] | None = None,
                 predictions: pd.DataFrame | None = None, cfg: ReviewConfig = ReviewConfig(),  # noqa: B008
                 progress: Callable[[int], None] | None = None, frames: dict[str, FrameRef] | None = None,
                 dated: dict[str, str] | None = None) -> Path:  # fmt: skip
    """Write the site under ``out``; returns ``out/index.html``.

    ``seq_of`` maps file -> sequence (each file is its own sequence when absent); ``predictions`` are fused
    sequence probabilities (seq_id x columns), shown in the sequence view.  ``frames`` maps each results file to
    where it is read from (the shared frame source: per-season folders of a metadata table); default: the file
    under ``image_root``.  ``dated`` maps files to the time shown for them (folder mode: the time and its
    source, as in ``images.csv``); default: the results' ``datetime``.
    """
    (out / "thumbs" / "frames").mkdir(parents=True, exist_ok=True)
    (out / "thumbs" / "crops").mkdir(parents=True, exist_ok=True)
    seq_of = seq_of or {}
    crops: list[dict] = []
    sequences: dict[str, dict] = {}
    failures = []
    for frame in results.frames:
        seq = seq_of.get(frame.file, frame.file)
        ref = (frames or {}).get(frame.file) or frame_ref(image_root, frame.file,
                                                          allow_outside_root=cfg.allow_outside_root)  # fmt: skip
        entry = _frame_entry(frame, results, ref, out, cfg, seq, crops, (dated or {}).get(frame.file, ""))
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
                sequences[seq]["p_empty"] = round(float(row[EMPTY]), 4) if EMPTY in row.index else None
    by_seq: dict[str, list[dict]] = {}
    for c in crops:
        by_seq.setdefault(c["seq"], []).append(c)
    for seq, entry in sequences.items():
        _summarise(entry, by_seq.get(seq, []), cfg)
    crops.sort(key=lambda c: (-c["prob"], c["id"]))
    species = sorted({c["species"] for c in crops}, key=lambda s: (-sum(c["species"] == s for c in crops), s))
    labels = sorted(set((results.classification_categories or {}).values()) | set(species))  # the classifier's
    data = {"title": cfg.title, "species": species, "labels": labels, "crops": crops, "sequences": sequences,
            "failures": failures, "detector": results.detector, "columns": list(CORRECTION_COLUMNS)}  # fmt: skip
    atomic_write_text(out / "data.js", "window.REVIEW = " + json.dumps(data, separators=(",", ":")) + ";\n")
    for name in ("index.html", "app.js", "style.css"):
        shutil.copyfile(ASSETS / name, out / name)
    log.info("review site: %d crops, %d sequences, %d failures -> %s", len(crops), len(sequences), len(failures), out)
    return out / "index.html"


def review_labels(where: Path) -> tuple[str, ...]:
    """The classes of the classifier whose predictions a review site shows (its ``data.js`` ``labels``); ``where``
    is the site's folder, its ``index.html`` or a folder-mode output folder (with ``review/``).

    Raises:
        DataError: naming ``data.js`` when it is missing or not a review site's.
    """
    folder = where.parent if where.suffix == ".html" else where
    path = folder / "data.js" if (folder / "data.js").exists() or not (folder / "review").is_dir() else \
        folder / "review" / "data.js"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read the review site's data ({exc.__class__.__name__})") from None
    head, _, body = text.partition("=")
    try:
        labels = json.loads(body.strip().rstrip(";"))["labels"] if head.strip() == "window.REVIEW" else None
    except (ValueError, KeyError, TypeError):
        labels = None
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels):
        raise DataError(path, "labels: not a review site's data.js (a list of class names expected)")
    return tuple(labels)
