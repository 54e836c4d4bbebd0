"""The two-stage pipeline end to end: detector -> crops -> classifier -> fusion, over competition-layout data.

Frames stream through the engine (:mod:`camtrap.engine`: one decode per frame, stages overlapped, bounded
memory); each sequence is fused as soon as its last frame is out.  Past the time budget no new sequence is
started, and the ones not reached get the class priors, so a submission is always complete.

Thresholds come from the models: animal detections at or above the detector's ``conservative_threshold`` are
classified (fusion weighs them by confidence), fusion counts frames with the detector's animal threshold
(``typical_threshold``, bound into the fusion model), and crops are cut with the classifier's margin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.dataset import SequenceSet, read_test
from camtrap.engine import EngineConfig, EngineTimes, FrameOutcome, counted, run
from camtrap.fileio import atomic_write_csv
from camtrap.frames import FrameRef
from camtrap.labels import COLUMNS, SPECIES
from camtrap.mdjson import DetectionResults
from camtrap.metric import validate_submission
from classifier.predict import Classifier, CropClassifier, framing_notice, with_classifications
from detector.model import Detector
from detector.predict import FrameDetector, results_for
from fusion import FusionMismatchError, FusionModel, SequenceEvidence, fuse_all

__all__ = ["PipelineConfig", "StageTimes", "OutcomeSource", "species_matrix", "evidence_of", "stream_evidence",
           "collect_evidence", "predict_sequences", "predict_submission"]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    """Runner settings (model thresholds live with the models; fusion's with the fusion file)."""

    engine: EngineConfig = EngineConfig()
    tta: bool = False
    time_budget_s: float | None = None


@dataclass
class StageTimes(EngineTimes):
    """Seconds and counts per stage, filled in as the pipeline runs."""

    fuse: float = 0.0
    sequences: int = 0
    prior_budget: int = 0  # sequences not reached within the time budget
    prior_unlisted: int = 0  # sequences of the submission format with no image listed
    prior_unreadable: int = 0  # sequences whose frames all failed to load
    results: list = field(default_factory=list)  # FrameOutcomes kept for a results file (when asked for)

    @property
    def prior_only(self) -> int:
        """Sequences that got the class priors, for whatever reason."""
        return self.prior_budget + self.prior_unlisted + self.prior_unreadable


def species_matrix(classes: tuple[str, ...], probs: np.ndarray, species: tuple[str, ...] = SPECIES) -> np.ndarray:
    """Crop probabilities re-indexed to ``species`` (the 53 by default; a 54-way classifier's empty column is
    dropped)."""
    idx = np.array([classes.index(s) if s in classes else -1 for s in species])
    probs = np.asarray(probs, np.float64).reshape(-1, len(classes))
    out = np.where(idx >= 0, probs[:, np.maximum(idx, 0)], 0.0)
    sums = out.sum(axis=1, keepdims=True)
    return np.divide(out, sums, out=np.full_like(out, 1 / len(species)), where=sums > 0)


def evidence_of(seq_id: str, outcomes: list[FrameOutcome], classes: tuple[str, ...],
                species: tuple[str, ...] = SPECIES) -> SequenceEvidence:  # fmt: skip
    """One sequence's evidence from its frames' outcomes (crop rows over ``species``)."""
    seen = [o.frame for o in outcomes if o.frame.ok]
    crops = [c for o in outcomes for c in o.crops]
    rows = (species_matrix(classes, np.array([c.probs for c in crops]), species) if crops
            else np.zeros((0, len(species))))  # fmt: skip
    return SequenceEvidence(seq_id, len(outcomes), tuple(f.max_animal_conf() for f in seen),
                            tuple(tuple(r) for r in rows), tuple(c.detection.conf for c in crops))  # fmt: skip


def _within_budget(refs: list[FrameRef], budget_s: float | None, start: float) -> Iterator[FrameRef]:
    """The frames of every sequence started before the budget ran out."""
    current = None
    for ref in refs:
        if ref.seq_id != current:
            if budget_s is not None and time.perf_counter() - start > budget_s:
                return
            current = ref.seq_id
        yield ref


def _grouped(outcomes: Iterable[FrameOutcome]) -> Iterator[tuple[str, list[FrameOutcome]]]:
    """Consecutive outcomes of one sequence together (the frame source lists a sequence's frames together)."""
    group: list[FrameOutcome] = []
    for outcome in outcomes:
        if group and outcome.seq_id != group[0].seq_id:
            yield group[0].seq_id, group
            group = []
        group.append(outcome)
    if group:
        yield group[0].seq_id, group


OutcomeSource = Callable[[list[FrameRef]], Iterable[FrameOutcome]]
"""Computes frames' outcomes elsewhere (a Ray cluster: :mod:`hakuna.ray_runner`), in input order."""


def stream_evidence(part: SequenceSet, detector: Detector, classifier: Classifier, cfg: PipelineConfig,
                    times: StageTimes, *, keep_outcomes: bool = False,
                    source: OutcomeSource | None = None,
                    species: tuple[str, ...] = SPECIES) -> Iterator[SequenceEvidence]:  # fmt: skip
    """Evidence for each sequence of ``part`` as soon as its frames are through the engine (or ``source``)."""
    start = time.perf_counter()
    framing_notice(classifier.spec, "crops")
    crop = CropClassifier(classifier, detector.spec.conservative_threshold, tta=cfg.tta)
    if source is not None:
        outcomes = counted(source(part.frame_refs()), times)
    else:
        frames = _within_budget(part.frame_refs(), cfg.time_budget_s, start)
        outcomes = run(frames, detect=FrameDetector(detector), crop=crop, cfg=cfg.engine, times=times)
    for seq_id, group in _grouped(outcomes):
        if keep_outcomes:
            times.results += group
        yield evidence_of(seq_id, group, classifier.spec.classes, species)


def _results(times: StageTimes, detector: Detector, classifier: Classifier) -> DetectionResults:
    results = results_for(detector, [o.frame for o in times.results])
    preds = [c for o in times.results for c in o.crops]
    return with_classifications(results, preds, classifier.spec.classes, classifier=getattr(classifier, "file", None))


def collect_evidence(part: SequenceSet, detector: Detector, classifier: Classifier, cfg: PipelineConfig,
                     times: StageTimes | None = None, *,
                     source: OutcomeSource | None = None, species: tuple[str, ...] = SPECIES,
                     progress: Callable[[int], None] | None = None,
                     ) -> tuple[list[SequenceEvidence], DetectionResults]:  # fmt: skip
    """Evidence for every sequence of ``part`` (e.g. a validation season, to fit fusion on) and all detections."""
    times = times if times is not None else StageTimes()
    evidence = []
    for ev in stream_evidence(part, detector, classifier, cfg, times, keep_outcomes=True, source=source,
                              species=species):  # fmt: skip
        evidence.append(ev)
        if progress:
            progress(1)
    return evidence, _results(times, detector, classifier)


def predict_sequences(part: SequenceSet, detector: Detector, classifier: Classifier, fusion: FusionModel,
                      cfg: PipelineConfig, *, progress: Callable[[int], None] | None = None,
                      times: StageTimes | None = None, keep_results: bool = True,
                      source: OutcomeSource | None = None) -> tuple[pd.DataFrame, DetectionResults | None]:  # fmt: skip
    """Probabilities over ``fusion.classes`` (the 54 columns in the competition) per sequence of ``part`` (seq_id
    index, in ``part.seq_ids`` order) and, with ``keep_results``, every frame's detections and crop
    classifications."""
    times = times if times is not None else StageTimes()
    fusion = fusion.bind(detector.spec.typical_threshold, getattr(detector, "file", detector.spec.name))
    rows: dict[str, np.ndarray] = {}
    for ev in stream_evidence(part, detector, classifier, cfg, times, keep_outcomes=keep_results, source=source,
                              species=fusion.species):  # fmt: skip
        times.prior_unreadable += not ev.frame_animal_conf
        t0 = time.perf_counter()
        rows[ev.seq_id] = fuse_all([ev], fusion)[0]
        times.fuse += time.perf_counter() - t0
        if progress:
            progress(1)
    seq_ids = list(part.seq_ids)
    if len(rows) < len(seq_ids):
        log.warning("time budget of %.0f s spent: %d sequences get the class priors", cfg.time_budget_s or 0,
                    len(seq_ids) - len(rows))  # fmt: skip
    priors = np.asarray(fusion.priors)
    times.prior_budget += len(seq_ids) - len(rows)
    times.sequences += len(seq_ids)
    table = pd.DataFrame([rows.get(s, priors) for s in seq_ids], index=pd.Index(seq_ids, name="seq_id"),
                         columns=list(fusion.classes), dtype=np.float64)  # fmt: skip
    return table, (_results(times, detector, classifier) if keep_results else None)


def predict_submission(data_dir: Path, detector: Detector, classifier: Classifier, fusion: FusionModel,
                       out_csv: Path, cfg: PipelineConfig, *, progress: Callable[[int], None] | None = None,
                       times: StageTimes | None = None, keep_results: bool = False,
                       source: OutcomeSource | None = None) -> tuple[pd.DataFrame, DetectionResults | None]:
    """Read ``data_dir`` (test_metadata.csv, submission_format.csv, images), predict, validate, write the CSV.

    Sequences of the format with no image rows get the class priors; rows and columns follow the format.
    Sequences listed only in the metadata (not in the format) are not predicted, and counted in the log.
    """
    if tuple(fusion.classes) != COLUMNS:
        raise FusionMismatchError(f"the fusion file is for a classifier with its own classes ({len(fusion.classes)} "
                                  "columns), not the competition's 54; use folder mode (`hakuna predict --images`)")
    part, fmt = read_test(data_dir)
    known = set(part.frames["seq_id"])
    missing = [s for s in fmt.index if s not in known]
    if missing:
        log.warning("%d sequence(s) of the submission format have no images listed; they get the priors",
                    len(missing))  # fmt: skip
    extra = known.difference(fmt.index)
    if extra:
        log.warning("%d sequence(s) in test_metadata.csv are not in submission_format.csv; they are not predicted "
                    "(e.g. %r)", len(extra), sorted(extra)[0])  # fmt: skip
    part = part.subset([s for s in fmt.index if s in known])
    table, results = predict_sequences(part, detector, classifier, fusion, cfg, progress=progress, times=times,
                                       keep_results=keep_results, source=source)  # fmt: skip
    if times is not None:
        times.prior_unlisted += len(missing)
        times.sequences += len(missing)
    if missing:
        priors = pd.DataFrame([fusion.priors] * len(missing), index=pd.Index(missing, name="seq_id"),
                              columns=list(COLUMNS), dtype=np.float64)  # fmt: skip
        table = pd.concat([table, priors])
    sub = table.loc[fmt.index, list(fmt.columns)].astype(np.float64)
    validate_submission(sub, fmt.index, source=str(out_csv))
    atomic_write_csv(out_csv, sub, float_format="%.10g")
    return sub, results
