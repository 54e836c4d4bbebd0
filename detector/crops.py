"""Empty screening and crop export: which frames hold an animal, and the crops of its boxes written as JPEGs
for people (the classifier cuts its own crops in memory, with the same geometry: :mod:`camtrap.geometry`)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import cv2

from camtrap.engine import wanted_detections
from camtrap.fileio import atomic_write_json
from camtrap.frames import FrameRef
from camtrap.geometry import cut_crop
from camtrap.images import load_frame
from camtrap.mdjson import DetectionResults
from camtrap.results import FrameDetections

__all__ = ["MAX_CROPS_PER_FRAME", "is_empty_frame", "crop_name", "export_crops"]

log = logging.getLogger(__name__)
MAX_CROPS_PER_FRAME = 10


def is_empty_frame(frame: FrameDetections, threshold: float) -> bool:
    """True when no animal reaches ``threshold`` (a failed frame is not called empty: it is unknown)."""
    return frame.ok and frame.max_animal_conf() < threshold


def crop_name(file: str, index: int) -> str:
    """The crop file of detection ``index`` of ``file``: readable (the image's stem, shortened) and unique by
    construction (a hash of the whole relative path), so ``a/b.jpg`` and ``a__b.jpg`` never share a crop."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", file.rsplit("/", 1)[-1].rsplit(".", 1)[0])[:60]
    digest = hashlib.sha1(file.encode("utf-8", "surrogateescape")).hexdigest()[:12]  # noqa: S324 - a name, not security
    return f"{stem}-{digest}__det{index:02d}.jpg"


def _write_jpeg(path: Path, rgb, quality: int) -> bool:
    try:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        return bool(cv2.imwrite(os.fspath(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, quality]))
    except cv2.error as exc:
        log.warning("cannot write %s: %s", path, exc)
        return False


def export_crops(results: DetectionResults, frames: Mapping[str, FrameRef], out: Path, *, threshold: float,
                 margin: float, quality: int = 92, progress: Callable[[int], None] | None = None) -> int:
    """Write the crops of animal boxes at or above ``threshold`` as JPEGs under ``out``, plus ``out/crops.json``
    mapping each back to its image, box and confidence.  ``frames`` maps each results ``file`` to where it is.
    Frames that cannot be read and crops that cannot be written are logged, counted and not listed."""
    out.mkdir(parents=True, exist_ok=True)
    entries, failed, unwritten = [], 0, 0
    for frame in results.frames:
        wanted = wanted_detections(frame.detections, threshold, MAX_CROPS_PER_FRAME)
        ref = frames.get(frame.file)
        if wanted and ref is not None:
            img = load_frame(ref)
            if not img.ok:
                log.warning("cannot crop %s: %s", frame.file, img.failure.value)
                failed += 1
                wanted = []
            for i, det in wanted:
                name = crop_name(frame.file, i)
                if not _write_jpeg(out / name, cut_crop(img.pixels, det.bbox_xywh_norm, margin), quality):
                    log.warning("cannot write the crop %s of %s", name, frame.file)
                    unwritten += 1
                    continue
                entries.append({"crop": name, "file": frame.file, "detection_index": i, "category": det.category,
                                "conf": round(det.conf, 4), "bbox": [round(v, 5) for v in det.bbox_xywh_norm]})
        if progress:
            progress(1)
    atomic_write_json(out / "crops.json", {"margin": margin, "threshold": threshold, "crops": entries,
                                           "unreadable_frames": failed, "unwritten_crops": unwritten})  # fmt: skip
    return len(entries)
