"""Folder mode: a folder of photos in (an SD card copied to disk), species per sequence out, every sequence reviewable.

Images are listed, timed and grouped into sequences (:mod:`camtrap.sequences`), streamed through the same
engine and fusion as the competition mode (:func:`hakuna.pipeline.predict_sequences`), and written to ``OUT``:

* ``sequences.csv``: ``seq_id, camera, start, end, n_frames, files, species, confidence, empty, failed_frames,
  status`` then one probability column per class, ``p_<class>`` (the classifier's classes and ``empty``).
  ``failed_frames`` counts the frames that could not be read; a sequence is judged on its readable frames, and
  one with none (``status`` ``unreadable``; else ``ok``) has blank ``species``, ``confidence``, ``empty`` and
  probabilities: no class is made up for it.  ``species`` lists,
  ``;``-joined, the classes whose sequence probability is at least ``species_threshold`` (0.5 by default);
  when the sequence is not called empty and none reaches it, the most probable class.  ``empty`` is 1 when
  P(empty) is at least ``empty_threshold`` (0.5); ``confidence`` is the probability of what was called (the
  lowest among the listed species, or P(empty)).
* ``images.csv``: ``file, seq_id, time, time_source, failure, top_class`` (the most confident crop's class).
* ``results.json``: MegaDetector format with classifications, and ``seq_id`` on every image.
* ``review/index.html``: the review site (every sequence, empty ones included).

Files the user lists are the user's: folder mode does not confine paths to the folder (symbolic links are
followed).  Cells that a spreadsheet would run as a formula are written with a leading ``'``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.dataset import ImageLayout, SequenceSet, check_metadata
from camtrap.fileio import DataError, atomic_write_csv, spreadsheet_safe
from camtrap.frames import list_image_files
from camtrap.labels import EMPTY
from camtrap.mdjson import DetectionResults, write_results
from camtrap.sequences import (
    DEFAULT_GAP_S,
    Sequence,
    SequenceReport,
    form_sequences,
    sequence_table,
    sequences_from_csv,
    timed_images,
)
from fusion import FusionModel
from hakuna.bindings import fusion_for
from hakuna.pipeline import PipelineConfig, StageTimes, predict_sequences

__all__ = ["FolderConfig", "FolderRun", "spreadsheet_safe", "call_species", "predict_folder", "SEQUENCE_COLUMNS",
           "IMAGE_COLUMNS", "UNREADABLE"]  # fmt: skip

log = logging.getLogger(__name__)
SEQUENCE_COLUMNS = ("seq_id", "camera", "start", "end", "n_frames", "files", "species", "confidence", "empty",
                    "failed_frames", "status")
UNREADABLE = "unreadable"  # status of a sequence none of whose frames could be read
IMAGE_COLUMNS = ("file", "seq_id", "time", "time_source", "failure", "top_class")


@dataclass(frozen=True)
class FolderConfig:
    """How a folder becomes sequences, and how sequences are called."""

    recursive: bool = False
    camera_depth: int | None = None
    gap_s: float = DEFAULT_GAP_S
    max_frames: int | None = None
    sequences_csv: Path | None = None  # file,seq_id rows instead of forming sequences
    use_mtime: bool = True
    species_threshold: float = 0.5
    empty_threshold: float = 0.5
    review: bool = True


@dataclass
class FolderRun:
    """What a folder run did (for the command's summary)."""

    sequences: list[Sequence]
    report: SequenceReport
    fusion: str  # how fusion was chosen (fitted, or the stated default)
    table: pd.DataFrame  # seq_id x classes
    results: DetectionResults
    times: StageTimes = field(default_factory=StageTimes)
    outputs: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)  # seq_id -> frames that could not be read

    @property
    def unreadable(self) -> list[str]:
        """Sequences none of whose frames could be read (no call is made for them)."""
        return _unreadable(self.sequences, self.failed)

    def with_animal(self, cfg: FolderConfig) -> int:
        """Readable sequences not called empty."""
        gone = set(self.unreadable)
        return sum(1 for s in self.sequences if s.seq_id not in gone and self.table.loc[s.seq_id, EMPTY] <
                   cfg.empty_threshold)  # fmt: skip


def call_species(row: pd.Series, cfg: FolderConfig) -> tuple[str, float, int]:
    """(species ';'-joined, confidence, empty 0/1) for one sequence's probabilities."""
    p_empty = float(row[EMPTY])
    if p_empty >= cfg.empty_threshold:
        return "", p_empty, 1
    species = row.drop(EMPTY)
    listed = species[species >= cfg.species_threshold].sort_values(ascending=False)
    if listed.empty:
        listed = species.nlargest(1)
    return ";".join(listed.index), float(listed.min()), 0


def _sequences(root: Path, cfg: FolderConfig) -> tuple[list[Sequence], SequenceReport, dict]:
    files = list_image_files(root, cfg.recursive)
    if not files:
        hint = "" if cfg.recursive else " (add --recursive for sub-folders)"
        raise DataError(root, f"no image files in the folder{hint}")
    timed = timed_images(root, files, camera_depth=cfg.camera_depth, use_mtime=cfg.use_mtime)
    if cfg.sequences_csv is not None:
        seqs = sequences_from_csv(cfg.sequences_csv, timed)
        report = SequenceReport(images=len(timed), sequences=len(seqs))
        for im in timed:
            report.time_sources[im.source] = report.time_sources.get(im.source, 0) + 1
    else:
        seqs, report = form_sequences(timed, gap_s=cfg.gap_s, max_frames=cfg.max_frames)
    return seqs, report, {im.file: im for im in timed}


def _failed_frames(seqs: list[Sequence], results: DetectionResults) -> dict[str, int]:
    """Frames per sequence that could not be read (or are missing from the results)."""
    frames = results.by_file()
    return {s.seq_id: sum(1 for f in s.files if f not in frames or not frames[f].ok) for s in seqs}


def _unreadable(seqs: list[Sequence], failed: dict[str, int]) -> list[str]:
    """The sequences none of whose frames could be read."""
    return [s.seq_id for s in seqs if failed.get(s.seq_id, 0) >= len(s.files)]


def _sequence_rows(seqs: list[Sequence], table: pd.DataFrame, failed: dict[str, int],
                   cfg: FolderConfig) -> pd.DataFrame:  # fmt: skip
    """One row per sequence; an unreadable one has blank calls and probabilities (never a made-up class)."""
    gone = set(_unreadable(seqs, failed))
    unreadable = [s.seq_id in gone for s in seqs]
    rows = []
    for s, lost in zip(seqs, unreadable):
        species, conf, empty = ("", None, "") if lost else call_species(table.loc[s.seq_id], cfg)
        rows.append([s.seq_id, s.camera, s.start.isoformat(" ") if s.start else "",
                     s.end.isoformat(" ") if s.end else "", len(s.files), ";".join(s.files), species,
                     None if conf is None else round(conf, 4), empty, failed.get(s.seq_id, 0),
                     UNREADABLE if lost else "ok"])  # fmt: skip
    out = pd.DataFrame(rows, columns=list(SEQUENCE_COLUMNS))
    probs = table.loc[[s.seq_id for s in seqs]].reset_index(drop=True).astype(np.float64).add_prefix("p_")
    probs[np.array(unreadable, bool)] = np.nan  # written as blank cells
    return pd.concat([out, probs], axis=1).map(spreadsheet_safe)


def _image_rows(seqs: list[Sequence], timed: dict, results: DetectionResults, classes: dict) -> pd.DataFrame:
    frames = results.by_file()
    best: dict[str, tuple[float, str]] = {}
    for (file, _), ranked in (results.classifications or {}).items():
        if ranked and ranked[0][1] > best.get(file, (-1.0, ""))[0]:
            best[file] = (ranked[0][1], classes.get(ranked[0][0], ranked[0][0]))
    rows = []
    for s in seqs:
        for f in s.files:
            im, frame = timed[f], frames.get(f)
            rows.append([f, s.seq_id, im.time.isoformat(" ") if im.time else "", im.source,
                         (frame.failure if frame is not None else "not processed") or "", best.get(f, (0, ""))[1]])
    return pd.DataFrame(rows, columns=list(IMAGE_COLUMNS)).map(spreadsheet_safe)


def _with_seq_ids(results: DetectionResults, seq_of: dict[str, str], timed: dict) -> DetectionResults:
    """Each image's ``seq_id`` (an extra field of the results file) and, where the engine read none, its time."""
    def one(f):
        im = timed.get(f.file)
        when = f.datetime or (im.time.isoformat(" ") if im is not None and im.time and f.ok else None)
        return dataclasses.replace(f, datetime=when, extra={**f.extra, "seq_id": seq_of.get(f.file, "")})

    return dataclasses.replace(results, frames=tuple(one(f) for f in results.frames))


def predict_folder(root: Path, out: Path, detector, classifier, fusion: FusionModel | None, cfg: FolderConfig,
                   pipeline: PipelineConfig, *, progress: Callable[[int], None] | None = None,
                   on_total: Callable[[int], None] | None = None) -> FolderRun:  # fmt: skip
    """Form sequences in ``root``, predict them, write the outputs under ``out`` (see the module docstring)."""
    seqs, report, timed = _sequences(root, cfg)
    if on_total:
        on_total(len(seqs))
    model, how = fusion_for(fusion, detector, classifier)
    frames = check_metadata(sequence_table(seqs), root)
    part = SequenceSet(frames, None, root, ImageLayout.FLAT, allow_outside_root=True)
    times = StageTimes()
    table, results = predict_sequences(part, detector, classifier, model, pipeline, progress=progress, times=times)
    seq_of = {f: s.seq_id for s in seqs for f in s.files}
    results = _with_seq_ids(results, seq_of, timed)
    out.mkdir(parents=True, exist_ok=True)
    failed = _failed_frames(seqs, results)
    rows = _sequence_rows(seqs, table, failed, cfg)
    outputs = {"sequences": atomic_write_csv(out / "sequences.csv", rows, index=False, float_format="%.6g"),
               "images": atomic_write_csv(out / "images.csv", _image_rows(seqs, timed, results,
                                          results.classification_categories or {}), index=False),
               "results": write_results(out / "results.json", results)}  # fmt: skip
    run = FolderRun(seqs, report, how, table, results, times, outputs, failed)
    if cfg.review:
        from hakuna.review import ReviewConfig, build_review

        dated = {f: f"{im.time.isoformat(' ')} ({im.source})" for f, im in timed.items() if im.time}
        outputs["review"] = build_review(results, root, out / "review", seq_of=seq_of,
                                         predictions=table.drop(index=run.unreadable), dated=dated,
                                         cfg=ReviewConfig(allow_outside_root=True,
                                                          empty_threshold=cfg.empty_threshold))  # fmt: skip
    return run
