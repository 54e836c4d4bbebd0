"""Training samples for the classifier, from three sources, decoded once and cached at the training size.

* crops: a detector's results joined with sequence labels.  Every animal box of a labelled sequence becomes
  a crop whose target is the sequence's species; a multi-species sequence gives each of its crops a soft
  target split evenly between its species (kept, not dropped, and counted in the log).  Empty sequences
  give no crops.
* frames: every frame of the competition layout, target = the sequence's 54 columns (one-stage).
* an ``--images-csv`` with ``path,label`` (and optional ``group_id``): one whole image per row.

Images that cannot be read are recorded and skipped with a count, never fatal.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.dataset import SequenceSet
from camtrap.fileio import DataError, read_csv
from camtrap.frames import FrameRef, frame_ref
from camtrap.geometry import cut_crop
from camtrap.images import load_frame
from camtrap.labels import COLUMNS, EMPTY, SPECIES
from camtrap.mdjson import DetectionResults
from camtrap.stream import ordered_map
from classifier.spec import ModelSpec

__all__ = ["SampleError", "Sample", "SampleSet", "crop_samples", "frame_samples", "csv_samples", "correction_samples",
           "holdout_group_per_class", "decode_cached", "CORRECTION_COLUMNS", "CORRECTION_STATUSES"]

log = logging.getLogger(__name__)


class SampleError(ValueError):
    """Training data that cannot train a model (no labels, too few readable images); the message says which."""
CORRECTION_COLUMNS = ("crop_id", "file", "detection_index", "bbox", "predicted", "status", "label")
"""Columns of ``corrections.csv`` as the review site writes it (bbox: "x_min y_min width height", normalised)."""
CORRECTION_STATUSES = ("unreviewed", "confirmed", "rejected", "relabelled")


@dataclass(frozen=True)
class Sample:
    """One training image: where its pixels come from, its target over the set's classes, and its group."""

    frame: FrameRef
    bbox_xywh_norm: tuple[float, float, float, float] | None  # None: the whole image
    target: tuple[float, ...]
    group: str  # season ("S3") or group_id: what a validation split keeps together
    key: str  # stable identity (file + box)


@dataclass(frozen=True)
class SampleSet:
    """Samples with their class list and kind (softmax over species, or multi-label over columns)."""

    samples: tuple[Sample, ...]
    classes: tuple[str, ...]
    multilabel: bool
    source: str

    def targets(self) -> np.ndarray:
        return np.array([s.target for s in self.samples], np.float32).reshape(-1, len(self.classes))

    def subset(self, keep: np.ndarray) -> SampleSet:
        return SampleSet(tuple(s for s, k in zip(self.samples, keep) if k), self.classes, self.multilabel, self.source)


def _season_group(season: object) -> str:
    return f"S{int(season)}" if pd.notna(season) else "S?"


def crop_samples(data: SequenceSet, results: DetectionResults, *, threshold: float) -> SampleSet:
    """Crops of animal detections (conf >= ``threshold``, the detector's animal threshold) in labelled non-empty
    sequences."""
    if data.labels is None:
        raise SampleError("crop samples need labelled sequences (a training layout with train_labels.csv)")
    by_file = results.by_file()
    species = data.labels[list(SPECIES)]
    samples, multi, missing = [], 0, 0
    refs = data.frame_refs()
    for i, row in enumerate(data.frames.itertuples(index=False)):
        present = species.loc[row.seq_id].to_numpy(np.float32)
        if present.sum() == 0:
            continue
        frame = by_file.get(row.file_name)
        if frame is None:
            missing += 1
            continue
        target = tuple(float(v) for v in present / present.sum())
        multi += present.sum() > 1
        for k, det in enumerate(frame.detections or ()):
            if det.is_animal and det.conf >= threshold:
                samples.append(Sample(refs[i], det.bbox_xywh_norm, target, _season_group(row.season),
                                      f"{row.file_name}#{k}"))  # fmt: skip
    if missing:
        log.warning("%d labelled frame(s) have no entry in the detector results", missing)
    if not samples:
        why = (f"none of the {missing} labelled frames is in the detector results (are its file names relative "
               f"to another folder?)") if missing and missing == _labelled_frames(data) else \
            f"no animal detection reaches the threshold {threshold:g}"  # fmt: skip
        raise SampleError(f"no crops to train on: {why}")
    log.info("%d crops (%d from multi-species frames, soft targets)", len(samples), multi)
    return SampleSet(tuple(samples), SPECIES, False, "crops")


def _labelled_frames(data: SequenceSet) -> int:
    """Frames of sequences with at least one species."""
    assert data.labels is not None
    has = data.labels[list(SPECIES)].sum(axis=1) > 0
    return int(data.frames["seq_id"].map(has).fillna(False).sum())


def frame_samples(data: SequenceSet) -> SampleSet:
    """Whole frames with their sequence's 54 columns (multi-label, for one-stage scoring)."""
    if data.labels is None:
        raise SampleError("frame samples need labelled sequences (a training layout with train_labels.csv)")
    labels = data.labels.loc[data.frames["seq_id"], list(COLUMNS)].to_numpy(np.float32)
    frames = zip(data.frame_refs(), labels, data.frames["season"], data.frames["file_name"])
    samples = tuple(Sample(r, None, tuple(map(float, y)), _season_group(s), f) for r, y, s, f in frames)
    return SampleSet(samples, COLUMNS, True, "frames")


def csv_samples(csv_path: str | os.PathLike[str], root: Path | None = None, *, skip_unknown: bool = False,
                allow_outside_root: bool = False) -> SampleSet:
    """Rows ``path,label[,group_id]``; paths relative to the CSV's folder (or ``root``), and kept inside it.
    Labels are columns; other labels are an error naming the row, or skipped (and counted) with
    ``skip_unknown``."""
    csv_path = Path(csv_path)
    df = read_csv(csv_path, dtype=str, keep_default_na=False)
    for col in ("path", "label"):
        if col not in df.columns:
            raise DataError(csv_path, f"missing column {col!r} (has {list(df.columns)})", line=1)
    unknown = ~df["label"].isin(COLUMNS)
    if unknown.any() and skip_unknown:
        log.info("%s: %d row(s) with labels that are not columns skipped", csv_path.name, int(unknown.sum()))
        df = df[~unknown]
    elif unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise DataError(csv_path, f"label {df['label'].iat[i]!r} is not one of the 54 columns", line=i + 2)
    classes = COLUMNS if (df["label"] == EMPTY).any() else SPECIES
    base = root or csv_path.parent
    groups = df["group_id"] if "group_id" in df.columns else df["path"]
    samples = []
    for path, label, group in zip(df["path"], df["label"], groups):
        target = tuple(1.0 if c == label else 0.0 for c in classes)
        ref = frame_ref(base, path, allow_outside_root=allow_outside_root)
        samples.append(Sample(ref, None, target, group or path, path))
    return SampleSet(tuple(samples), classes, False, f"csv:{csv_path.name}")


def _correction_row(path: Path, line: int, row, reviewed_only: bool) -> tuple[str, tuple[float, ...]] | None:
    """(label, bbox) of one corrections row, None when it is not a training sample."""
    if row.status not in CORRECTION_STATUSES:
        raise DataError(path, f"status {row.status!r} is not one of {CORRECTION_STATUSES}", line=line)
    if row.status == "rejected" or (reviewed_only and row.status == "unreviewed"):
        return None
    label = row.label if row.status == "relabelled" else (row.label or row.predicted)
    if label not in COLUMNS:
        raise DataError(path, f"label {label!r} is not one of the 54 columns", line=line)
    try:
        bbox = tuple(float(v) for v in row.bbox.split())
    except ValueError:
        bbox = ()
    if len(bbox) != 4 or min(bbox) < 0 or bbox[0] + bbox[2] > 1.001 or bbox[1] + bbox[3] > 1.001:
        raise DataError(path, f"bbox {row.bbox!r} is not four normalised numbers (x_min y_min width height)", line=line)
    return label, bbox  # type: ignore[return-value]


def correction_samples(csv_path: str | os.PathLike[str], image_root: Path, *, reviewed_only: bool = False,
                       allow_outside_root: bool = False) -> SampleSet:  # fmt: skip
    """Crops from a review site's ``corrections.csv``: confirmed crops keep the predicted label, relabelled ones take
    the reviewer's, rejected ones are left out; unreviewed ones keep the prediction unless ``reviewed_only``.
    Crops are cut from the original frames under ``image_root`` (kept inside it)."""
    csv_path = Path(csv_path)
    df = read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [c for c in CORRECTION_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(csv_path, f"missing column(s) {missing} (has {list(df.columns)})", line=1)
    rows = []
    for i, row in enumerate(df.itertuples(index=False)):
        parsed = _correction_row(csv_path, i + 2, row, reviewed_only)
        if parsed is not None:
            rows.append((row, *parsed))
    classes = COLUMNS if any(label == EMPTY for _, label, _ in rows) else SPECIES
    samples = [Sample(frame_ref(image_root, row.file, allow_outside_root=allow_outside_root), bbox,
                      tuple(1.0 if c == label else 0.0 for c in classes), row.file, row.crop_id)
               for row, label, bbox in rows]  # fmt: skip
    kinds = df["status"].value_counts().to_dict()
    log.info("%s: %d crops to learn from (%s)", csv_path.name, len(samples), kinds)
    return SampleSet(tuple(samples), classes, False, f"corrections:{csv_path.name}")


def holdout_group_per_class(samples: SampleSet) -> tuple[str, ...]:
    """For tiny sets: one group of every class that has at least two groups goes to validation."""
    groups: dict[int, list[str]] = {}
    for s in samples.samples:
        c = int(np.argmax(s.target))
        if s.group not in groups.setdefault(c, []):
            groups[c].append(s.group)
    return tuple(sorted(g[0] for g in groups.values() if len(g) >= 2))


def _decode(sample: Sample, spec: ModelSpec) -> np.ndarray | None:
    """A sample at the model's input size, decoded and cropped exactly as inference will (the spec's margin and
    source resolution)."""
    img = load_frame(sample.frame, max_side=spec.source_max_side)
    if not img.ok:
        return None
    box = sample.bbox_xywh_norm
    return spec.resize_uint8(img.pixels if box is None else cut_crop(img.pixels, box, spec.crop_margin))


def decode_cached(samples: SampleSet, spec: ModelSpec, cache_dir: Path, *, workers: int = 2,
                  progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode every sample once at the model's input size into a memory-mapped cache file.

    Returns (pixels N x H x W x 3 uint8, ok mask).  A later call with the same samples and size reuses the
    cache.  Unreadable images are masked out and counted.
    """
    h, w = spec.input_hw
    identity = (f"{h}x{w}|{spec.resize.value}|{spec.crop_margin}|{spec.source_max_side}|"
                + "\n".join(s.key + str(s.frame.path) for s in samples.samples))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_path, ok_path = cache_dir / f"pixels-{digest}.npy", cache_dir / f"ok-{digest}.npy"
    n = len(samples.samples)
    if data_path.exists() and ok_path.exists():
        if progress:
            progress(n)
        return np.load(data_path, mmap_mode="r"), np.load(ok_path)
    tmp = cache_dir / f".pixels-{digest}.tmp.npy"
    pixels = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, h, w, 3))
    ok = np.zeros(n, bool)
    decoded = ordered_map(lambda sample: _decode(sample, spec), samples.samples, workers=workers, lookahead=32)
    for i, arr in enumerate(decoded):
        if arr is not None:
            pixels[i], ok[i] = arr, True
        if progress:
            progress(1)
    pixels.flush()
    del pixels
    os.replace(tmp, data_path)
    np.save(ok_path, ok)
    if (~ok).any():
        log.warning("%d of %d training images could not be read and are skipped", int((~ok).sum()), n)
    return np.load(data_path, mmap_mode="r"), ok
