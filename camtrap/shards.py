"""Frame outcomes on disk, one file per shard of whole sequences: what lets a distributed run restart without
redoing finished work.

A shard is a run of consecutive sequences of the frame source (never a sequence split in two).  Its file holds
every frame's outcome -- detections (or failure) and classified crops, floats at full precision -- written
atomically when the last frame of the shard is done, so a file that exists is complete.  Reading the shards back
in order gives exactly the outcomes a single-machine run streams.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from camtrap.engine import FrameOutcome
from camtrap.fileio import atomic_write_json, read_json
from camtrap.frames import FrameRef
from camtrap.results import CropPrediction, Detection, FrameDetections

__all__ = ["outcome_to_json", "outcome_from_json", "shard_frames", "ShardStore"]


def _det(d: Detection) -> list:
    return [d.category, d.conf, *d.bbox_xywh_norm]


def outcome_to_json(o: FrameOutcome) -> dict:
    """A frame outcome as plain JSON (floats keep every digit)."""
    f = o.frame
    return {"file": f.file, "seq_id": o.seq_id, "failure": f.failure, "width": f.width, "height": f.height,
            "datetime": f.datetime, "detections": None if f.detections is None else [_det(d) for d in f.detections],
            "crops": [[c.detection_index, list(c.probs)] for c in o.crops]}  # fmt: skip


def outcome_from_json(raw: dict) -> FrameOutcome:
    """The inverse of :func:`outcome_to_json`."""
    dets = None if raw["detections"] is None else tuple(Detection(d[0], d[1], tuple(d[2:6])) for d in raw["detections"])
    frame = FrameDetections(raw["file"], dets, raw["failure"], raw["width"], raw["height"], raw["datetime"])
    crops = tuple(CropPrediction(raw["file"], k, dets[k], tuple(p)) for k, p in raw["crops"])  # type: ignore[index]
    return FrameOutcome(frame, raw["seq_id"], crops)


def shard_frames(frames: Iterable[FrameRef], sequences_per_shard: int) -> list[list[FrameRef]]:
    """Consecutive frames cut into shards of ``sequences_per_shard`` whole sequences."""
    shards: list[list[FrameRef]] = []
    sequences, current = 0, object()
    for ref in frames:
        if ref.seq_id != current:
            current = ref.seq_id
            if sequences % sequences_per_shard == 0:
                shards.append([])
            sequences += 1
        shards[-1].append(ref)
    return shards


class ShardStore:
    """A folder of ``shard-NNNNN.json`` files; ``done`` tells which shards exist (complete by construction)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def path(self, k: int) -> Path:
        return self.folder / f"shard-{k:05d}.json"

    def done(self, k: int, expected_files: list[str]) -> bool:
        """Whether shard ``k`` was finished for exactly these frames (a changed frame list redoes it)."""
        path = self.path(k)
        return path.exists() and read_json(path).get("files") == expected_files

    def write(self, k: int, outcomes: list[FrameOutcome]) -> Path:
        return self.write_json(k, [outcome_to_json(o) for o in outcomes])

    def write_json(self, k: int, outcomes: list[dict]) -> Path:
        """:meth:`write` for outcomes already as :func:`outcome_to_json` made them (as a cluster's actors send them)."""
        return atomic_write_json(self.path(k), {"files": [o["file"] for o in outcomes], "outcomes": outcomes},
                                 indent=None)  # fmt: skip

    def read(self, k: int) -> list[FrameOutcome]:
        return [outcome_from_json(raw) for raw in read_json(self.path(k))["outcomes"]]
