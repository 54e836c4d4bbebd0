"""Empty screening and crop export: which frames hold an animal, and the crops of its boxes written as JPEGs
for people (the classifier cuts its own crops in memory, with the same geometry: :mod:`camtrap.geometry`)."""

from __future__ import annotations

import logging
import os
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

__all__ = ["MAX_CROPS_PER_FRAME", "is_empty_frame", "export_crops"]

log = logging.getLogger(__name__)
MAX_CROPS_PER_FRAME = 10


def is_empty_frame(frame: FrameDetections, threshold: float) -> bool:
    """True when no animal reaches ``threshold`` (a failed frame is not called empty: it is unknown)."""
    return frame.ok and frame.max_animal_conf() < threshold


def export_crops(results: DetectionResults, frames: Mapping[str, FrameRef], out: Path, *, threshold: float,
                 margin: float, quality: int = 92, progress: Callable[[int], None] | None = None) -> int:
    """Write the crops of animal boxes at or above ``threshold`` as JPEGs under ``out``, plus ``out/crops.json``
    mapping each back to its image, box and confidence.  ``frames`` maps each results ``file`` to where it is.
    Frames that cannot be read are logged and skipped."""
    out.mkdir(parents=True, exist_ok=True)
    entries, failed = [], 0
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
                name = f"{frame.file.rsplit('.', 1)[0].replace('/', '__')}__det{i:02d}.jpg"
                pixels = cut_crop(img.pixels, det.bbox_xywh_norm, margin)
                cv2.imwrite(os.fspath(out / name), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality])  # fmt: skip
                entries.append({"crop": name, "file": frame.file, "detection_index": i, "category": det.category,
                                "conf": round(det.conf, 4), "bbox": [round(v, 5) for v in det.bbox_xywh_norm]})
        if progress:
            progress(1)
    atomic_write_json(out / "crops.json", {"margin": margin, "threshold": threshold, "crops": entries,
                                           "unreadable_frames": failed})  # fmt: skip
    return len(entries)
