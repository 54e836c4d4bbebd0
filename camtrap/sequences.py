"""Sequences from a folder of photos: which images are one trigger of one camera.

A camera trap writes a burst of frames per trigger.  An SD card copied to disk keeps one folder per camera
(often with a folder per date inside), so the **camera** of an image is its folder -- or, with
``camera_depth`` N, the first N folders of its path (``site/camera/2024-01-02/x.jpg`` with N = 2:
``site/camera``).  The **time** of an image is its EXIF DateTimeOriginal, else the file's modification time
(recorded in :attr:`TimedImage.source`).  Within one camera, images sorted by time form one sequence while
the gap to the previous image is at most ``gap_s`` seconds (60 by default, as animl's ``maxdiff``).  A burst
longer than ``max_frames`` is cut into pieces of at most that many frames; an image without a time is a
sequence of its own.  Both are counted in :class:`SequenceReport`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd
from PIL import Image

from camtrap.fileio import DataError, read_csv
from camtrap.images import exif_datetime

__all__ = ["TIME_SOURCES", "DEFAULT_GAP_S", "TimedImage", "Sequence", "SequenceReport", "camera_of", "parse_exif_time",
           "capture_time", "timed_images", "form_sequences", "sequences_from_csv", "sequence_table"]  # fmt: skip

log = logging.getLogger(__name__)
TIME_SOURCES = ("exif", "mtime", "none")
DEFAULT_GAP_S = 60.0


@dataclass(frozen=True)
class TimedImage:
    """One image with its camera and capture time (``time`` None when it has none; ``source`` says which)."""

    file: str  # relative to the folder, '/'-separated
    camera: str
    time: dt.datetime | None
    source: str  # one of TIME_SOURCES


@dataclass(frozen=True)
class Sequence:
    """Consecutive images of one camera (``start``/``end`` None for an image with no time)."""

    seq_id: str
    camera: str
    files: tuple[str, ...]
    start: dt.datetime | None
    end: dt.datetime | None


@dataclass
class SequenceReport:
    """What sequence forming had to decide: images without a time, bursts cut at ``max_frames``."""

    images: int = 0
    sequences: int = 0
    time_sources: dict = field(default_factory=dict)  # source -> count
    no_time: list = field(default_factory=list)  # files that became sequences of their own
    split: list = field(default_factory=list)  # (seq_id of the first piece, frames in the burst)

    def summary(self) -> str:
        """One line for people."""
        sources = ", ".join(f"{n} {s}" for s, n in sorted(self.time_sources.items()))
        line = f"{self.images} images in {self.sequences} sequences (time from: {sources or 'nothing'})"
        if self.no_time:
            line += f"; {len(self.no_time)} without a time, each its own sequence (e.g. {self.no_time[0]})"
        if self.split:
            line += f"; {len(self.split)} burst(s) over --max-frames cut (e.g. {self.split[0][0]}: {self.split[0][1]})"
        return line


def camera_of(file: str, depth: int | None = None) -> str:
    """The camera an image belongs to: its folder, or the first ``depth`` folders of its path ("." at the top)."""
    parts = PurePosixPath(file).parts[:-1]
    if depth is not None:
        parts = parts[:depth]
    return "/".join(parts) or "."


def parse_exif_time(value: str | None) -> dt.datetime | None:
    """EXIF's ``YYYY:MM:DD HH:MM:SS`` (or ISO-like ``YYYY-MM-DD HH:MM:SS``) as a datetime; None when unparseable."""
    if not value:
        return None
    text = value.strip().replace("\x00", "")[:19]
    for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y:%m:%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def capture_time(path: str | os.PathLike[str], *, use_mtime: bool = True) -> tuple[dt.datetime | None, str]:
    """(time, source) of one image: EXIF DateTimeOriginal from the header (no decoding), else its mtime."""
    try:
        with Image.open(path) as img:
            stamp = parse_exif_time(exif_datetime(img))
    except Exception:  # noqa: BLE001 - an unreadable file is the engine's failure to record; here only its time
        stamp = None
    if stamp is not None:
        return stamp, "exif"
    if use_mtime:
        try:
            return dt.datetime.fromtimestamp(os.stat(path).st_mtime).replace(microsecond=0), "mtime"
        except OSError:
            pass
    return None, "none"


def timed_images(root: Path, files: Iterable[str], *, camera_depth: int | None = None,
                 use_mtime: bool = True) -> list[TimedImage]:  # fmt: skip
    """Camera and capture time of each of ``files`` (relative to ``root``)."""
    out = []
    for f in files:
        stamp, source = capture_time(root / f, use_mtime=use_mtime)
        out.append(TimedImage(f, camera_of(f, camera_depth), stamp, source))
    return out


def _seq_id(camera: str, k: int) -> str:
    return f"{camera}#{k:05d}" if camera != "." else f"seq#{k:05d}"


def _bursts(images: list[TimedImage], gap_s: float) -> list[list[TimedImage]]:
    """One camera's timed images (sorted) cut where the gap exceeds ``gap_s``."""
    bursts: list[list[TimedImage]] = []
    for im in images:
        if bursts and (im.time - bursts[-1][-1].time).total_seconds() <= gap_s:
            bursts[-1].append(im)
        else:
            bursts.append([im])
    return bursts


def form_sequences(images: list[TimedImage], *, gap_s: float = DEFAULT_GAP_S,
                   max_frames: int | None = None) -> tuple[list[Sequence], SequenceReport]:  # fmt: skip
    """Sequences of ``images``: by camera, then time (gaps over ``gap_s`` start a new one).

    Cameras in name order; within a camera, sequences in time order with ids ``camera#00001``, ...; images with
    no time follow, one sequence each.  Every image is in exactly one sequence.
    """
    if gap_s < 0 or (max_frames is not None and max_frames < 1):
        raise ValueError("gap_s must be >= 0 and max_frames >= 1")
    report = SequenceReport(images=len(images))
    for im in images:
        report.time_sources[im.source] = report.time_sources.get(im.source, 0) + 1
    by_camera: dict[str, list[TimedImage]] = {}
    for im in images:
        by_camera.setdefault(im.camera, []).append(im)
    out: list[Sequence] = []
    for camera in sorted(by_camera):
        timed = sorted((im for im in by_camera[camera] if im.time is not None), key=lambda im: (im.time, im.file))
        pieces: list[list[TimedImage]] = []
        for burst in _bursts(timed, gap_s):
            step = max_frames or len(burst)
            if len(burst) > step:
                report.split.append((_seq_id(camera, len(pieces) + 1), len(burst)))
            pieces += [burst[k : k + step] for k in range(0, len(burst), step)]
        untimed = sorted((im for im in by_camera[camera] if im.time is None), key=lambda im: im.file)
        report.no_time += [im.file for im in untimed]
        pieces += [[im] for im in untimed]
        out += [Sequence(_seq_id(camera, k), camera, tuple(im.file for im in p), p[0].time, p[-1].time)
                for k, p in enumerate(pieces, start=1)]  # fmt: skip
    report.sequences = len(out)
    return out, report


def sequences_from_csv(csv_path: str | os.PathLike[str], images: list[TimedImage]) -> list[Sequence]:
    """Sequences given by a ``file,seq_id`` CSV (``file`` relative to the photo folder); every image must be listed.

    Sequences in first-appearance order, frames by time then name.  Errors name the CSV and line.
    """
    csv_path = Path(csv_path)
    df = read_csv(csv_path, dtype=str, keep_default_na=False)
    for col in ("file", "seq_id"):
        if col not in df.columns:
            raise DataError(csv_path, f"missing column {col!r} (has {list(df.columns)})", line=1)
    blank = (df["file"] == "") | (df["seq_id"] == "")
    if blank.any():
        raise DataError(csv_path, "empty file or seq_id", line=int(blank.to_numpy().argmax()) + 2)
    dup = df["file"].duplicated()
    if dup.any():
        line = int(dup.to_numpy().argmax()) + 2
        raise DataError(csv_path, f"file {df['file'][dup].iat[0]!r} listed twice", line=line)
    seq_of = dict(zip(df["file"], df["seq_id"]))
    by_file = {im.file: im for im in images}
    if missing := [f for f in by_file if f not in seq_of]:
        raise DataError(csv_path, f"{len(missing)} image(s) of the folder are not listed, e.g. {missing[0]!r}")
    groups: dict[str, list[TimedImage]] = {}
    for f, s in seq_of.items():
        if f in by_file:
            groups.setdefault(s, []).append(by_file[f])
    out = []
    for s, members in groups.items():
        members.sort(key=lambda im: (im.time or dt.datetime.min, im.file))
        times = [im.time for im in members if im.time is not None]
        out.append(Sequence(s, members[0].camera, tuple(im.file for im in members), min(times, default=None),
                            max(times, default=None)))  # fmt: skip
    return out


def sequence_table(sequences: list[Sequence]) -> pd.DataFrame:
    """``seq_id, file_name`` rows (the frame table the engine reads), sequence by sequence."""
    rows = [(s.seq_id, f) for s in sequences for f in s.files]
    return pd.DataFrame(rows, columns=["seq_id", "file_name"], dtype=str)
