"""Training samples for the classifier, from three sources, decoded once and cached at the training size.

* crops: a detector's results joined with sequence labels.  Every animal box of a labelled sequence becomes
  a crop whose target is the sequence's species; a multi-species sequence gives each of its crops a soft
  target split evenly between its species (kept, not dropped, and counted in the log).  Empty sequences
  give no crops.
* frames: every frame of the competition layout, target = the sequence's 54 columns (one-stage).
* an ``--images-csv`` with ``path,label`` (and optional ``seq_id``, ``group_id``): one whole image per row
  (:func:`read_labelled_csv`: the one reader of that format).

Images that cannot be read are recorded and skipped with a count, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.dataset import SequenceSet
from camtrap.failures import failure_line
from camtrap.fileio import DataError, atomic_write_text, read_csv
from camtrap.frames import FrameRef, frame_ref
from camtrap.geometry import cut_crop
from camtrap.images import load_frame
from camtrap.labels import COLUMNS, EMPTY, SPECIES, is_empty_label, skipped_labels_line
from camtrap.mdjson import DetectionResults
from camtrap.stream import ordered_map
from classifier.spec import ModelSpec

__all__ = ["SampleError", "Sample", "SampleSet", "crop_samples", "frame_samples", "csv_samples", "classes_of",
           "correction_samples", "holdout_group_per_class", "decode_cached", "decode_sample", "csv_unlabelled",
           "report_unreadable", "read_labelled_csv",
           "CORRECTION_COLUMNS", "CORRECTION_STATUSES", "decode_failures", "read_corrections", "SEQUENCE_ROW"]

log = logging.getLogger(__name__)


class SampleError(ValueError):
    """Training data that cannot train a model (no labels, too few readable images); the message says which."""
CORRECTION_COLUMNS = ("crop_id", "file", "detection_index", "bbox", "predicted", "status", "label", "seq_id")
"""Columns of ``corrections.csv`` as the review site writes it (bbox: "x_min y_min width height", normalised).
Rows whose ``crop_id`` starts with ``seq:`` review a whole sequence (``file``: its files ``;``-joined; ``label``:
the species present, ``;``-joined, or ``empty``); ``seq_id`` is absent in files of older versions.  Cells a
spreadsheet would run as formulas are written with a leading ``'``, which reading removes."""
SEQUENCE_ROW = "seq:"
UNLABELLED = frozenset({"", "unlabeled", "unlabelled", "unknown"})  # labels that mean "no label": rows skipped
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


def classes_of(labels: list[str] | pd.Series) -> tuple[str, ...]:
    """The classes a label set trains: the competition's (53 species, or the 54 columns when ``empty`` is among
    them) when every label is a column, else the labels themselves, sorted (a model of your own classes)."""
    found = set(labels)
    if found <= set(COLUMNS):
        return COLUMNS if EMPTY in found else SPECIES
    return tuple(sorted(found))


def _first_column(df: pd.DataFrame, *names: str) -> pd.Series:
    """The first of ``names`` the table has, a blank cell (or no such column) falling back to the row's path."""
    given = next((df[n] for n in names if n in df.columns), df["path"])
    return given.where(given.str.strip() != "", df["path"])


def read_labelled_csv(csv_path: str | os.PathLike[str]) -> pd.DataFrame:
    """A ``path,label[,seq_id][,group_id]`` CSV as columns ``path, label, seq, group`` (every ``--images-csv``
    reader's view of it).

    ``seq``: the sequence (``seq_id``; else ``group_id``; else the photo's own path).  ``group``: what a
    cross-validation split keeps together (``group_id``; else ``seq_id``; else the path).  A blank cell falls back
    to the path.  Empty-photo labels (``empty``, ``blank``, any case: :data:`camtrap.labels.EMPTY_LABELS`) become
    ``empty``; rows labelled "", "unlabeled"/"unlabelled" or "unknown" are dropped (counted in the log)."""
    csv_path = Path(csv_path)
    df = read_csv(csv_path, dtype=str, keep_default_na=False)
    for col in ("path", "label"):
        if col not in df.columns:
            raise DataError(csv_path, f"missing column {col!r} (has {list(df.columns)})", line=1)
    blank = df["path"].str.strip() == ""
    if blank.any():
        raise DataError(csv_path, "empty path", line=int(np.flatnonzero(blank)[0]) + 2)
    out = pd.DataFrame({"path": df["path"], "label": df["label"].map(lambda v: EMPTY if is_empty_label(v) else v),
                        "seq": _first_column(df, "seq_id", "group_id"),
                        "group": _first_column(df, "group_id", "seq_id")})  # fmt: skip
    if "seq_id" not in df.columns and "group_id" in df.columns:
        log.info("%s: no seq_id column: each group_id is taken as one sequence", csv_path.name)
    unlabelled = out["label"].str.strip().str.lower().isin(UNLABELLED)
    if unlabelled.any():
        log.info("%s: %d unlabelled row(s) skipped", csv_path.name, int(unlabelled.sum()))
    return out[~unlabelled]


def csv_samples(csv_path: str | os.PathLike[str], root: Path | None = None, *, skip_unknown: bool = False,
                allow_outside_root: bool = True) -> SampleSet:
    """Rows ``path,label[,group_id]`` (:func:`read_labelled_csv`): relative paths under ``root`` (default: the
    CSV's folder), absolute ones as given (a CSV the user names is the user's; ``allow_outside_root=False`` keeps
    every path inside the root).

    Any label set trains (see :func:`classes_of`); empty photos (``empty``/``blank``) are skipped and counted
    (the classifier learns animals); ``skip_unknown`` instead keeps only the rows labelled with one of the 54
    columns, ``empty`` included (and counts the others), for figures comparable with the competition's."""
    csv_path = Path(csv_path)
    df = read_labelled_csv(csv_path)
    if skip_unknown:
        unknown = ~df["label"].isin(COLUMNS)
        if unknown.any():
            log.info("%s: %s", csv_path.name, skipped_labels_line(df["label"][unknown], "the competition's 54 columns"))
            df = df[~unknown]
    else:
        empty = df["label"] == EMPTY
        if empty.any():
            log.info("%s: %d empty photo(s) (label empty/blank) skipped: the classifier learns animals, P(empty) "
                     "comes from the detector and fusion", csv_path.name, int(empty.sum()))
            df = df[~empty]
    classes = classes_of(df["label"])
    base = root or csv_path.parent
    samples = []
    for path, label, group in zip(df["path"], df["label"], df["group"]):
        target = tuple(1.0 if c == label else 0.0 for c in classes)
        ref = frame_ref(base, path, allow_outside_root=allow_outside_root)
        samples.append(Sample(ref, None, target, group, path))
    log.info("%s: %d photo(s) in %d group(s) (group_id, else seq_id, else each photo)", csv_path.name, len(samples),
             df["group"].nunique())
    return SampleSet(tuple(samples), classes, False, f"csv:{csv_path.name}")


def csv_unlabelled(csv_path: str | os.PathLike[str], root: Path | None, classes: tuple[str, ...], *,
                   allow_outside_root: bool = False) -> SampleSet:  # fmt: skip
    """The rows of a ``path,label[,group_id]`` CSV whose label is not one of ``classes`` ("unlabeled", a species
    outside the set): photos without a usable label, for self-training (targets all zero)."""
    csv_path = Path(csv_path)
    df = read_csv(csv_path, dtype=str, keep_default_na=False)
    df = df[~df["label"].isin(classes)] if "label" in df.columns else df
    base, blank = root or csv_path.parent, tuple(0.0 for _ in classes)
    samples = tuple(Sample(frame_ref(base, p, allow_outside_root=allow_outside_root), None, blank, g, p)
                    for p, g in zip(df["path"], _first_column(df, "group_id", "seq_id")))  # fmt: skip
    return SampleSet(samples, classes, False, f"unlabelled:{csv_path.name}")


def _correction_row(path: Path, line: int, row) -> tuple[str, tuple[float, ...]]:
    """(label, bbox) of one corrections row that is a training sample."""
    if row.status not in CORRECTION_STATUSES:
        raise DataError(path, f"status {row.status!r} is not one of {CORRECTION_STATUSES}", line=line)
    label = row.label if row.status == "relabelled" else (row.label or row.predicted)
    if not label:
        raise DataError(path, "no label (a relabelled row needs one)", line=line)
    try:
        bbox = tuple(float(v) for v in row.bbox.split())
    except ValueError:
        bbox = ()
    if (len(bbox) != 4 or not all(math.isfinite(v) for v in bbox) or min(bbox) < 0 or bbox[0] + bbox[2] > 1.001
            or bbox[1] + bbox[3] > 1.001):  # fmt: skip
        raise DataError(path, f"bbox {row.bbox!r} is not four normalised numbers (x_min y_min width height)", line=line)
    return label, bbox  # type: ignore[return-value]


def _crop_kind(row, verdict: list[str] | None, include_unreviewed: bool) -> tuple[str, bool]:
    """(what a crop row is, whether it is learned from): a person's crop verdict, its sequence's, or none."""
    if row.status not in CORRECTION_STATUSES:
        return row.status, True  # refused by _correction_row, naming the line
    if row.status != "unreviewed":
        return row.status, row.status != "rejected"
    if verdict is None:
        return "unreviewed", include_unreviewed
    if verdict == [EMPTY] or len(verdict) != 1:  # called empty, or several species: which crop is which is unknown
        return "in a sequence called empty or with several species", False
    return "unreviewed in a sequence a person labelled", include_unreviewed


def correction_samples(csv_path: str | os.PathLike[str], image_root: Path, *, include_unreviewed: bool = False,
                       allow_outside_root: bool = False) -> SampleSet:  # fmt: skip
    """Crops from a review site's ``corrections.csv``: confirmed crops keep the predicted label, relabelled ones take
    the reviewer's, rejected ones are left out.  Crops nobody reviewed are left out too unless
    ``include_unreviewed`` (then they keep the prediction, or take their sequence's one-species verdict): an
    unreviewed box may be a rock.  Crops are cut from the original frames under ``image_root`` (kept inside it)."""
    csv_path = Path(csv_path)
    df = read_corrections(csv_path)
    seq_labels = _sequence_reviews(df)
    rows, used, unused = [], {}, {}
    for i, row in enumerate(df.itertuples(index=False)):
        if row.crop_id.startswith(SEQUENCE_ROW):
            continue
        verdict = seq_labels.get(row.seq_id)
        kind, learn = _crop_kind(row, verdict, include_unreviewed)
        (used if learn else unused)[kind] = (used if learn else unused).get(kind, 0) + 1
        if not learn:
            continue
        if row.status == "unreviewed" and verdict is not None:  # the sequence's review decides for its crops
            row = row._replace(status="relabelled", label=verdict[0])
        rows.append((row, *_correction_row(csv_path, i + 2, row)))
    classes = classes_of([label for _, label, _ in rows])
    samples = [Sample(frame_ref(image_root, row.file, allow_outside_root=allow_outside_root), bbox,
                      tuple(1.0 if c == label else 0.0 for c in classes), row.file, row.crop_id)
               for row, label, bbox in rows]  # fmt: skip
    hint = "" if include_unreviewed or not any(k.startswith("unreviewed") for k in unused) else \
        " (--include-unreviewed learns from unreviewed crops too)"
    log.info("%s: %d crops to learn from (%s); not used: %d (%s)%s", csv_path.name, len(samples), _counts(used),
             sum(unused.values()), _counts(unused), hint)  # fmt: skip
    return SampleSet(tuple(samples), classes, False, f"corrections:{csv_path.name}")


def _counts(kinds: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])) or "none"


def _unescape(value: str) -> str:
    return value[1:] if value[:1] == "'" and value[1:2] in ("=", "+", "-", "@", "\t", "\r") else value


def read_corrections(csv_path: str | os.PathLike[str]) -> pd.DataFrame:
    """A review site's ``corrections.csv`` as strings (formula escapes removed; ``seq_id`` "" when absent)."""
    csv_path = Path(csv_path)
    df = read_csv(csv_path, dtype=str, keep_default_na=False)
    if "seq_id" not in df.columns:
        df["seq_id"] = ""
    missing = [c for c in CORRECTION_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(csv_path, f"missing column(s) {missing} (has {list(df.columns)})", line=1)
    return df[list(CORRECTION_COLUMNS)].map(_unescape)


def _sequence_reviews(df: pd.DataFrame) -> dict[str, list[str]]:
    """seq_id -> the labels a person gave the whole sequence (confirmed or relabelled sequence rows)."""
    rows = df[df["crop_id"].str.startswith(SEQUENCE_ROW) & df["status"].isin(("confirmed", "relabelled"))]
    return {r.seq_id or r.crop_id[len(SEQUENCE_ROW):]: [v for v in (r.label or r.predicted).split(";") if v]
            for r in rows.itertuples(index=False)}  # fmt: skip


def holdout_group_per_class(samples: SampleSet) -> tuple[str, ...]:
    """For tiny sets: one group of every class that has at least two groups goes to validation."""
    groups: dict[int, list[str]] = {}
    for s in samples.samples:
        c = int(np.argmax(s.target))
        if s.group not in groups.setdefault(c, []):
            groups[c].append(s.group)
    return tuple(sorted(g[0] for g in groups.values() if len(g) >= 2))


def decode_sample(sample: Sample, spec: ModelSpec) -> np.ndarray | None:
    """A sample at the model's input size, decoded and cropped exactly as inference will; None if unreadable."""
    return _decode(sample, spec)[0]


def _decode(sample: Sample, spec: ModelSpec) -> tuple[np.ndarray | None, str]:
    """A sample at the model's input size, decoded and cropped exactly as inference will (the spec's margin and
    source resolution); (None, why) when it cannot be read."""
    img = load_frame(sample.frame, max_side=spec.source_max_side)
    if not img.ok:
        return None, f"{img.failure.value}: {img.detail}".rstrip(": ")
    box = sample.bbox_xywh_norm
    return spec.resize_uint8(img.pixels if box is None else cut_crop(img.pixels, box, spec.crop_margin)), ""


def _cache_paths(samples: SampleSet, spec: ModelSpec, cache_dir: Path) -> tuple[Path, Path, Path]:
    h, w = spec.input_hw
    identity = (f"{h}x{w}|{spec.resize.value}|{spec.crop_margin}|{spec.source_max_side}|{spec.views}|"
                + "\n".join(s.key + str(s.frame.path) for s in samples.samples))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return cache_dir / f"pixels-{digest}.npy", cache_dir / f"ok-{digest}.npy", cache_dir / f"failures-{digest}.json"


def decode_failures(samples: SampleSet, spec: ModelSpec, cache_dir: Path) -> list[tuple[str, str]]:
    """(file, reason) of the samples :func:`decode_cached` could not read, in sample order."""
    path = _cache_paths(samples, spec, cache_dir)[2]
    return [tuple(pair) for pair in json.loads(path.read_text())] if path.exists() else []  # type: ignore[misc]


def decode_cached(samples: SampleSet, spec: ModelSpec, cache_dir: Path, *, workers: int = 2,
                  progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode every sample once at the model's input size into a memory-mapped cache file.

    Returns (pixels N x H x W x 3 uint8, ok mask).  A later call with the same samples and size reuses the
    cache.  Unreadable images are masked out, counted and named (:func:`decode_failures`).
    """
    h, w = spec.input_hw
    cache_dir.mkdir(parents=True, exist_ok=True)
    data_path, ok_path, fail_path = _cache_paths(samples, spec, cache_dir)
    n = len(samples.samples)
    if data_path.exists() and ok_path.exists():
        if progress:
            progress(n)
        return np.load(data_path, mmap_mode="r"), _reported(np.load(ok_path), decode_failures(samples, spec, cache_dir))
    tmp = data_path.with_name("." + data_path.stem + ".tmp.npy")
    pixels = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, h, w, 3))
    ok = np.zeros(n, bool)
    failures = []
    decoded = ordered_map(lambda sample: _decode(sample, spec), samples.samples, workers=workers, lookahead=32)
    for i, (arr, why) in enumerate(decoded):
        if arr is not None:
            pixels[i], ok[i] = arr, True
        else:
            failures.append((str(samples.samples[i].frame.file), why))
        if progress:
            progress(1)
    pixels.flush()
    del pixels
    atomic_write_text(fail_path, json.dumps(failures))
    os.replace(tmp, data_path)
    np.save(ok_path, ok)
    return np.load(data_path, mmap_mode="r"), _reported(ok, failures)


def report_unreadable(samples: SampleSet, ok: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """``ok`` (a mask over ``samples``), after naming the samples it masks out, with the reason each could not be
    read (the failure line: a warning, or a :class:`SampleError` when none could be read)."""
    failures = [(str(s.frame.file), _decode(s, spec)[1] or "not readable")
                for s, good in zip(samples.samples, ok) if not good]  # fmt: skip
    return _reported(ok, failures)


def _reported(ok: np.ndarray, failures: list[tuple[str, str]]) -> np.ndarray:
    """``ok``, after the failure line (a warning; a :class:`SampleError` when no image could be read)."""
    line = failure_line(failures, len(ok), what="training images")
    if line and not ok.any():
        raise SampleError(line)
    if line:
        log.warning("%s", line)
    return ok
