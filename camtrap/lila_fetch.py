"""Building the competition's training layout from LILA's public Snapshot Serengeti release (``hakuna data lila``).

LILA's container (``.../lila-wildlife/`` on Azure; the same names under its GCP and AWS copies) holds the metadata
under ``snapshotserengeti-v-2-0/``: per-season COCO Camera Traps files (``SnapshotSerengetiS01.json.zip`` .. ``S11``),
the all-seasons file (``SnapshotSerengeti_S1-11_v2_1.json.zip``) and the boxes
(``SnapshotSerengetiBboxes_20190903.json.zip``); the images sit under the sibling prefix
``snapshotserengeti-unzipped/<file_name>`` (names URL-quoted in the request).  This module
downloads the seasons asked for, chooses sequences (species, a cap per class, a sample of the empty ones, which
are ~71% of the data), downloads their images concurrently (retries, HTTP Range resume, size checks; a finished
file is never fetched again) and writes the layout the competition used::

    OUT/train/train_metadata.csv        file_name, seq_id, datetime   (one row per image)
    OUT/train/train_labels.csv          seq_id + the 54 columns
    OUT/train/SnapshotSerengeti_S01_v2_0/S1/B04/B04_R1/S1_B04_R1_PICT0001.JPG ...
    OUT/lila/SnapshotSerengetiBboxes_selected.json   (with boxes: the chosen images' boxes, LILA's format)

Images that cannot be fetched (a 404, a server that keeps failing) are left out and listed in
``OUT/train/download_failures.csv``; a sequence left with no image is left out too.  The base address names the
container root of a mirror (:data:`LILA_MIRRORS`: LILA's Azure, GCP or AWS copies, or a local copy of that layout).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
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

__all__ = ["LILA_MIRRORS", "LILA_BASE_URL", "METADATA_PREFIX", "IMAGES_PREFIX", "ALL_SEASONS_ARCHIVE",
           "LilaRequest", "LilaProgress", "LilaBuild", "LilaPlan", "build_lila_layout", "plan_lila_layout",
           "season_archive", "image_url"]  # fmt: skip

log = logging.getLogger(__name__)
# The container roots of LILA's three copies; file names are the same under each (MegaDetector's
# megadetector/data_management/lila/lila_common.py, ``lila_base_urls``).
LILA_MIRRORS = {
    "azure": "https://lilawildlife.blob.core.windows.net/lila-wildlife/",
    "gcp": "https://storage.googleapis.com/public-datasets-lila/",
    "aws": "http://us-west-2.opendata.source.coop.s3.amazonaws.com/agentmorris/lila-wildlife/",
}
LILA_BASE_URL = LILA_MIRRORS["azure"]
METADATA_PREFIX = "snapshotserengeti-v-2-0/"
IMAGES_PREFIX = "snapshotserengeti-unzipped/"
ALL_SEASONS_ARCHIVE = "SnapshotSerengeti_S1-11_v2_1.json.zip"
BOXES_ARCHIVE = "SnapshotSerengetiBboxes_20190903.json.zip"
MEAN_IMAGE_BYTES = 0.9e6  # Snapshot Serengeti's average JPEG (~6 TB for 6.7 M training images): dry-run estimates
MAX_JSON_BYTES = 8 << 30  # a metadata member bigger than this is refused (the largest LILA file is 5.2 GB)


def season_archive(season: int) -> str:
    """LILA's per-season metadata archive name, e.g. ``SnapshotSerengetiS01.json.zip``."""
    return f"SnapshotSerengetiS{season:02d}.json.zip"


def image_url(base_url: str, file_name: str) -> str:
    """The address of one image on a mirror whose container root is ``base_url`` (the name URL-quoted)."""
    return base_url + IMAGES_PREFIX + urllib.parse.quote(file_name, safe="/")


@dataclass(frozen=True)
class LilaRequest:
    """What to build: seasons, which sequences, from where."""

    seasons: tuple[int, ...]
    species: tuple[str, ...] = ()  # columns to keep (empty: every species)
    per_class: int | None = None  # at most this many sequences per species column (seeded sample)
    empty: float = 0.1  # empty sequences kept: a fraction (<= 1) of them, or a number (> 1)
    boxes: bool = False
    base_url: str = LILA_BASE_URL  # a container root (ends with /)
    all_seasons: bool = False  # read the all-seasons file (5.2 GB unzipped) instead of one file per season
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
        url = image_url(req.base_url, file_name)
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
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(boxes_json, "no 'images' list: not a COCO Camera Traps boxes file")
    images = [im for im in data["images"] if isinstance(im, dict) and im.get("file_name") in files]
    if bad := next((im for im in images if "id" not in im), None):
        raise DataError(boxes_json, f"image {bad['file_name']!r} has no 'id'")
    ids = {im["id"] for im in images}
    annotations = [a for a in data.get("annotations") or [] if isinstance(a, dict) and a.get("image_id") in ids]
    subset = {k: v for k, v in data.items() if k not in ("images", "annotations")}
    return atomic_write_json(out, {**subset, "images": images, "annotations": annotations})


@dataclass(frozen=True)
class LilaPlan:
    """What a build would fetch: the chosen sequences, and the images still missing on disk."""

    part: SequenceSet
    missing_images: int

    @property
    def estimated_gb(self) -> float:
        """The missing images' size at Snapshot Serengeti's average JPEG size (an estimate)."""
        return self.missing_images * MEAN_IMAGE_BYTES / 1e9


def _metadata(req: LilaRequest, lila: Path, train: Path) -> SequenceSet:
    """The labelled sequences of the seasons asked for, from the per-season files or the all-seasons file."""
    names = [ALL_SEASONS_ARCHIVE] if req.all_seasons else [season_archive(s) for s in req.seasons]
    parts = []
    for name in names:
        path = _fetch_json(req.base_url + METADATA_PREFIX + name, lila / name, lila / name.removesuffix(".zip"), req)
        parts.append(read_lila_sequences(path, train))
    frames = pd.concat([p.frames for p in parts], ignore_index=True)
    part = SequenceSet(frames, pd.concat([p.labels for p in parts]), train)
    if req.all_seasons:
        keep = frames.loc[frames["season"].isin(req.seasons), "seq_id"].unique()
        part = part.subset(list(keep))
    return part


def plan_lila_layout(req: LilaRequest, out: Path) -> LilaPlan:
    """Fetch the metadata only and say what :func:`build_lila_layout` would download (``data lila --dry-run``)."""
    lila, train = out / "lila", out / "train"
    lila.mkdir(parents=True, exist_ok=True)
    part = _select(_metadata(req, lila, train), req)
    missing = 0
    for file_name, season in zip(part.frames["file_name"], part.frames["season"]):
        ref = frame_ref(train, file_name, folder=season_folder(int(season)))
        missing += ref.path is None or not ref.path.exists()
    return LilaPlan(part, missing)


def build_lila_layout(req: LilaRequest, out: Path, *,
                      on_progress: Callable[[LilaProgress], None] | None = None) -> LilaBuild:  # fmt: skip
    """Download and write the training layout described in the module docstring; rerunning resumes."""
    lila, train = out / "lila", out / "train"
    part = plan_lila_layout(req, out).part
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
    if req.boxes and len(meta):
        boxes = _fetch_json(req.base_url + METADATA_PREFIX + BOXES_ARCHIVE, lila / BOXES_ARCHIVE,
                            lila / BOXES_ARCHIVE.removesuffix(".zip"), req)  # fmt: skip
        _write_boxes(boxes, set(meta["file_name"]), lila / "SnapshotSerengetiBboxes_selected.json")
    counts = {c: int(n) for c, n in kept.sum(axis=0).items() if n}
    log.info("LILA layout: %d sequences, %d images (%d failed) -> %s", len(kept), len(meta), len(failures), out)
    return LilaBuild(out, len(kept), len(meta), len(failures), counts)
