"""Building the competition's training layout from LILA's public Snapshot Serengeti release (``hakuna data lila``).

LILA publishes per-season COCO Camera Traps metadata (``SnapshotSerengetiS01.json.zip`` .. ``S11``), the boxes
(``SnapshotSerengetiBboxes_20190903.json.zip``) and the images under ``snapshotserengeti-unzipped/``.  This module
downloads the seasons asked for, chooses sequences (species, a cap per class, a sample of the empty ones, which
are ~71% of the data), downloads their images concurrently (retries, HTTP Range resume, size checks; a finished
file is never fetched again) and writes the layout the competition used::

    OUT/train/train_metadata.csv        file_name, seq_id, datetime   (one row per image)
    OUT/train/train_labels.csv          seq_id + the 54 columns
    OUT/train/SnapshotSerengeti_S01_v2_0/S1/B04/B04_R1/S1_B04_R1_PICT0001.JPG ...
    OUT/lila/SnapshotSerengetiBboxes_selected.json   (with boxes: the chosen images' boxes, LILA's format)

Images that cannot be fetched (a 404, a server that keeps failing) are left out and listed in
``OUT/train/download_failures.csv``; a sequence left with no image is left out too.  The base address can point
at any mirror (LILA's Azure, GCP or AWS copies).
"""

from __future__ import annotations

import logging
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.dataset import SequenceSet, season_folder
from camtrap.download import DownloadError, download
from camtrap.fileio import DataError, atomic_write_csv, atomic_write_json, read_json
from camtrap.frames import frame_ref
from camtrap.labels import COLUMNS, EMPTY
from camtrap.lila import read_lila_sequences

__all__ = ["LILA_BASE_URL", "LilaRequest", "LilaProgress", "LilaBuild", "build_lila_layout", "season_archive"]

log = logging.getLogger(__name__)
LILA_BASE_URL = "https://lilawildlife.blob.core.windows.net/lila-wildlife/snapshotserengeti-v-2-0/"
IMAGES_PREFIX = "snapshotserengeti-unzipped/"
BOXES_ARCHIVE = "SnapshotSerengetiBboxes_20190903.json.zip"
MAX_JSON_BYTES = 8 << 30  # a metadata member bigger than this is refused (the largest LILA file is 5.2 GB)


def season_archive(season: int) -> str:
    """LILA's per-season metadata archive name, e.g. ``SnapshotSerengetiS01.json.zip``."""
    return f"SnapshotSerengetiS{season:02d}.json.zip"


@dataclass(frozen=True)
class LilaRequest:
    """What to build: seasons, which sequences, from where."""

    seasons: tuple[int, ...]
    species: tuple[str, ...] = ()  # columns to keep (empty: every species)
    per_class: int | None = None  # at most this many sequences per species column (seeded sample)
    empty: float = 0.1  # empty sequences kept: a fraction (<= 1) of them, or a number (> 1)
    boxes: bool = False
    base_url: str = LILA_BASE_URL
    workers: int = 8
    retries: int = 3
    timeout_s: float = 60.0
    seed: int = 0


@dataclass
class LilaProgress:
    """Counts shared by the download threads (read by a progress bar)."""

    images: int = 0
    done: int = 0
    failed: int = 0
    bytes: int = 0
    started: float = field(default_factory=time.perf_counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / max(time.perf_counter() - self.started, 1e-9)

    @property
    def estimated_total_gb(self) -> float:
        """The whole download's size, extrapolated from the images finished so far."""
        return self.bytes / max(self.done, 1) * self.images / 1e9


@dataclass(frozen=True)
class LilaBuild:
    """What was written."""

    root: Path
    sequences: int
    images: int
    failed_images: int
    label_counts: dict


def _fetch_json(url: str, archive: Path, member_out: Path, req: LilaRequest) -> Path:
    """Download a ``.json.zip`` and extract its one JSON member to ``member_out`` (skipped when already there)."""
    if member_out.exists():
        return member_out
    download(url, archive, retries=req.retries, timeout=req.timeout_s)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if m.filename.endswith(".json")]
            if len(members) != 1 or members[0].file_size > MAX_JSON_BYTES:
                raise DataError(archive, "expected one JSON file of reasonable size inside")
            tmp = member_out.with_name(f".{member_out.name}.tmp")
            with zf.open(members[0]) as src, open(tmp, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise DataError(archive, f"not a readable zip file ({exc}); it was removed, run again") from exc
    tmp.replace(member_out)
    return member_out


def _select(part: SequenceSet, req: LilaRequest) -> SequenceSet:
    """The sequences asked for: chosen species (a seeded cap per class), and a sample of the empty ones."""
    labels = part.labels
    assert labels is not None
    rng = np.random.default_rng(req.seed)
    species = [c for c in (req.species or COLUMNS) if c != EMPTY]
    keep: list[str] = []
    for col in species:
        ids = labels.index[(labels[col] == 1).to_numpy()].difference(keep)
        if req.per_class is not None and len(ids) > req.per_class:
            ids = ids[np.sort(rng.choice(len(ids), req.per_class, replace=False))]
        keep += list(ids)
    empties = labels.index[(labels[EMPTY] == 1).to_numpy()]
    n_empty = int(round(req.empty * len(empties))) if req.empty <= 1 else min(int(req.empty), len(empties))
    keep += list(empties[np.sort(rng.choice(len(empties), n_empty, replace=False))]) if n_empty else []
    return part.subset(keep)


def _download_images(part: SequenceSet, train: Path, req: LilaRequest, progress: LilaProgress,
                     on_progress: Callable[[LilaProgress], None] | None) -> dict[str, str]:  # fmt: skip
    """Fetch every frame of ``part`` into its season folder; returns the failures (file name -> reason)."""
    failures: dict[str, str] = {}
    progress.images = len(part.frames)

    def one(file_name: str, season: int) -> None:
        ref = frame_ref(train, file_name, folder=season_folder(season))
        url = req.base_url + IMAGES_PREFIX + file_name
        try:
            if ref.path is None:
                raise DownloadError(f"{file_name!r} would be written outside {train}")
            if not ref.path.exists():
                download(url, ref.path, retries=req.retries, timeout=req.timeout_s)
            size = ref.path.stat().st_size
        except DownloadError as exc:
            with progress.lock:
                failures[file_name] = str(exc)
                progress.failed += 1
            size = 0
        with progress.lock:
            progress.done += 1
            progress.bytes += size
        if on_progress:
            on_progress(progress)

    with ThreadPoolExecutor(max(1, req.workers), thread_name_prefix="lila") as pool:
        for future in [pool.submit(one, f, int(s)) for f, s in zip(part.frames["file_name"], part.frames["season"])]:
            future.result()
    return failures


def _write_boxes(boxes_json: Path, files: set[str], out: Path) -> Path:
    """The LILA boxes of ``files`` only, in LILA's own format (what ``hakuna detector train`` reads)."""
    data = read_json(boxes_json)
    images = [im for im in data.get("images", []) if im.get("file_name") in files]
    ids = {im["id"] for im in images}
    annotations = [a for a in data.get("annotations", []) if a.get("image_id") in ids]
    subset = {k: v for k, v in data.items() if k not in ("images", "annotations")}
    return atomic_write_json(out, {**subset, "images": images, "annotations": annotations})


def build_lila_layout(req: LilaRequest, out: Path, *,
                      on_progress: Callable[[LilaProgress], None] | None = None) -> LilaBuild:  # fmt: skip
    """Download and write the training layout described in the module docstring; rerunning resumes."""
    lila, train = out / "lila", out / "train"
    lila.mkdir(parents=True, exist_ok=True)
    parts = []
    for season in req.seasons:
        name = season_archive(season)
        path = _fetch_json(req.base_url + name, lila / name, lila / name.removesuffix(".zip"), req)
        parts.append(read_lila_sequences(path, train))
    frames = pd.concat([p.frames for p in parts], ignore_index=True)
    part = _select(SequenceSet(frames, pd.concat([p.labels for p in parts]), train), req)
    progress = LilaProgress()
    assert part.labels is not None
    failures = _download_images(part, train, req, progress, on_progress)
    ok = ~part.frames["file_name"].isin(failures)
    meta = part.frames.loc[ok, ["file_name", "seq_id", "datetime"]]  # the competition's column order
    kept = part.labels[part.labels.index.isin(meta["seq_id"])]
    atomic_write_csv(train / "train_metadata.csv", meta, index=False)
    atomic_write_csv(train / "train_labels.csv", kept.reset_index(), index=False)
    failure_table = pd.DataFrame(sorted(failures.items()), columns=["file_name", "reason"])
    atomic_write_csv(train / "download_failures.csv", failure_table, index=False)
    if req.boxes:
        boxes = _fetch_json(req.base_url + BOXES_ARCHIVE, lila / BOXES_ARCHIVE,
                            lila / BOXES_ARCHIVE.removesuffix(".zip"), req)  # fmt: skip
        _write_boxes(boxes, set(meta["file_name"]), lila / "SnapshotSerengetiBboxes_selected.json")
    counts = {c: int(n) for c, n in kept.sum(axis=0).items() if n}
    log.info("LILA layout: %d sequences, %d images (%d failed) -> %s", len(kept), len(meta), len(failures), out)
    return LilaBuild(out, len(kept), len(meta), len(failures), counts)

