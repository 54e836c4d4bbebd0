"""The two-stage pipeline end to end: detector -> crops -> classifier -> fusion, over competition-layout data.

Sequences are processed in chunks: each chunk's frames are detected in batches pooled across sequences,
its crops classified in batches pooled across frames, then its sequences fused.  Between chunks the time
budget is checked; past it, the remaining sequences get the class priors, so a submission is always
complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.dataset import SequenceSet, read_test
from camtrap.fileio import atomic_write_csv
from camtrap.labels import COLUMNS, SPECIES
from camtrap.metric import validate_submission
from camtrap.results import CropPrediction, DetectionCategory, FrameDetections
from classifier.predict import Classifier, classify_detections, with_classifications
from detector.crops import CropConfig
from detector.mdjson import DetectionResults
from detector.model import Detector
from detector.predict import DetectConfig, detect_files
from fusion import FusionModel, SequenceEvidence, fuse_all

__all__ = ["PipelineConfig", "StageTimes", "gather_evidence", "collect_evidence", "predict_sequences",
           "predict_submission"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    """Runner settings (model thresholds live with the models; fusion's with the fusion file)."""

    detect: DetectConfig = DetectConfig()
    crop_threshold: float = 0.1  # detections classified (fusion weighs them by confidence)
    crop_margin: float = 0.1
    classifier_batch: int = 64
    tta: bool = False
    chunk_sequences: int = 256
    time_budget_s: float | None = None


@dataclass
class StageTimes:
    """Seconds spent per stage, and counts (filled in as the pipeline runs)."""

    detect: float = 0.0
    classify: float = 0.0
    fuse: float = 0.0
    images: int = 0
    sequences: int = 0
    crops: int = 0
    prior_only: int = 0
    failed_images: int = 0
    extra: dict = field(default_factory=dict)


def _species_matrix(clf: Classifier, preds: list[CropPrediction]) -> np.ndarray:
    """Crop probabilities re-indexed to the 53 species (a 54-way classifier's empty column is dropped)."""
    classes = clf.spec.classes
    idx = [classes.index(s) if s in classes else -1 for s in SPECIES]
    probs = np.array([p.probs for p in preds], np.float64).reshape(len(preds), len(classes))
    out = np.where(np.array(idx) >= 0, probs[:, np.maximum(idx, 0)], 0.0)
    sums = out.sum(axis=1, keepdims=True)
    return np.divide(out, sums, out=np.full_like(out, 1 / len(SPECIES)), where=sums > 0)


def gather_evidence(part: SequenceSet, frames: list[FrameDetections], preds: list[CropPrediction],
                    clf_probs: np.ndarray) -> list[SequenceEvidence]:
    """Group frame detections and crop predictions by sequence."""
    by_file = {f.file: f for f in frames}
    crops: dict[str, list[int]] = {}
    for i, p in enumerate(preds):
        crops.setdefault(p.file, []).append(i)
    evidence = []
    for seq_id, group in part.frames.groupby("seq_id", sort=False):
        files = group["file_name"].tolist()
        seen = [by_file[f] for f in files if f in by_file and by_file[f].ok]
        idx = [i for f in files for i in crops.get(f, [])]
        evidence.append(SequenceEvidence(
            seq_id, len(files), tuple(f.max_conf(DetectionCategory.ANIMAL) for f in seen),
            tuple(tuple(row) for row in clf_probs[idx]), tuple(preds[i].detection.conf for i in idx)))  # fmt: skip
    return evidence


def _chunk_evidence(chunk: SequenceSet, detector: Detector, classifier: Classifier, cfg: PipelineConfig,
                    times: StageTimes) -> tuple[list[SequenceEvidence], DetectionResults]:
    files = list(zip(chunk.frames["file_name"], chunk.image_paths()))
    t0 = time.perf_counter()
    results = detect_files(detector, files, cfg.detect)
    t1 = time.perf_counter()
    crop_cfg = CropConfig(threshold=cfg.crop_threshold, margin=cfg.crop_margin)
    preds = classify_detections(classifier, results, chunk.image_root, crop_cfg, batch_size=cfg.classifier_batch,
                                tta=cfg.tta)  # fmt: skip
    times.detect, times.classify = times.detect + t1 - t0, times.classify + time.perf_counter() - t1
    times.images += len(files)
    times.crops += len(preds)
    times.failed_images += sum(1 for f in results.frames if not f.ok)
    evidence = gather_evidence(chunk, list(results.frames), preds, _species_matrix(classifier, preds))
    return evidence, with_classifications(results, preds, classifier.spec.classes)


def _merge(parts: list[DetectionResults], detector: Detector) -> DetectionResults:
    """One results object (frames and classifications) from per-chunk ones."""
    frames = tuple(f for r in parts for f in r.frames)
    classes = next((r.classification_categories for r in parts if r.classification_categories), None)
    per_det = {k: v for r in parts for k, v in (r.classifications or {}).items()}
    meta = {"image_size": detector.spec.input_size, "typical_detection_threshold": detector.spec.typical_threshold}
    return DetectionResults(frames, detector.spec.name, meta, classes, per_det or None)


def collect_evidence(part: SequenceSet, detector: Detector, classifier: Classifier, cfg: PipelineConfig,
                     times: StageTimes | None = None) -> tuple[list[SequenceEvidence], DetectionResults]:
    """Evidence for every sequence of ``part`` (e.g. a validation season, to fit fusion on)."""
    times = times or StageTimes()
    evidence: list[SequenceEvidence] = []
    parts: list[DetectionResults] = []
    seq_ids = list(part.seq_ids)
    for k in range(0, len(seq_ids), cfg.chunk_sequences):
        ev, results = _chunk_evidence(part.subset(seq_ids[k : k + cfg.chunk_sequences]), detector, classifier, cfg,
                                      times)  # fmt: skip
        evidence += ev
        parts.append(results)
    return evidence, _merge(parts, detector)


def predict_sequences(part: SequenceSet, detector: Detector, classifier: Classifier, fusion: FusionModel,
                      cfg: PipelineConfig, *, progress: Callable[[int], None] | None = None,
                      times: StageTimes | None = None) -> tuple[pd.DataFrame, DetectionResults]:  # fmt: skip
    """54 probabilities per sequence of ``part`` (seq_id index, in ``part.seq_ids`` order) and all detections."""
    times = times or StageTimes()
    start = time.perf_counter()
    seq_ids = list(part.seq_ids)
    rows: dict[str, np.ndarray] = {}
    parts: list[DetectionResults] = []
    for k in range(0, len(seq_ids), cfg.chunk_sequences):
        if cfg.time_budget_s is not None and time.perf_counter() - start > cfg.time_budget_s:
            log.warning("time budget of %.0f s spent: %d sequences get the class priors", cfg.time_budget_s,
                        len(seq_ids) - k)  # fmt: skip
            break
        evidence, results = _chunk_evidence(part.subset(seq_ids[k : k + cfg.chunk_sequences]), detector, classifier,
                                            cfg, times)  # fmt: skip
        t0 = time.perf_counter()
        for ev, row in zip(evidence, fuse_all(evidence, fusion)):
            rows[ev.seq_id] = row
        times.fuse += time.perf_counter() - t0
        parts.append(results)
        if progress:
            progress(len(evidence))
    priors = np.asarray(fusion.priors)
    times.prior_only += len(seq_ids) - len(rows)
    times.sequences += len(seq_ids)
    table = pd.DataFrame([rows.get(s, priors) for s in seq_ids], index=pd.Index(seq_ids, name="seq_id"),
                         columns=list(COLUMNS))  # fmt: skip
    return table, _merge(parts, detector)


def predict_submission(data_dir: Path, detector: Detector, classifier: Classifier, fusion: FusionModel,
                       out_csv: Path, cfg: PipelineConfig, *, progress: Callable[[int], None] | None = None,
                       times: StageTimes | None = None) -> tuple[pd.DataFrame, DetectionResults]:  # fmt: skip
    """Read ``data_dir`` (test_metadata.csv, submission_format.csv, images), predict, validate, write the CSV.

    Sequences of the format with no image rows get the class priors; rows and columns follow the format.
    """
    part, fmt = read_test(data_dir)
    known = set(part.frames["seq_id"])
    missing = [s for s in fmt.index if s not in known]
    if missing:
        log.warning("%d sequence(s) of the submission format have no images listed; they get the priors",
                    len(missing))  # fmt: skip
    part = part.subset([s for s in fmt.index if s in known])
    table, results = predict_sequences(part, detector, classifier, fusion, cfg, progress=progress, times=times)
    if missing:
        priors = pd.DataFrame([fusion.priors] * len(missing), index=pd.Index(missing, name="seq_id"),
                              columns=list(COLUMNS), dtype=np.float64)  # fmt: skip
        table = pd.concat([table, priors])
    sub = table.loc[fmt.index, list(fmt.columns)].astype(np.float64)
    validate_submission(sub, fmt.index, source=str(out_csv))
    atomic_write_csv(out_csv, sub, float_format="%.10g")
    return sub, results
