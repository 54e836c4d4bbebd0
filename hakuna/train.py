"""``hakuna train``: the whole system trained on a competition training layout, one resumable step at a time.

Steps, each skipped when its output under ``MODELS/`` exists (so a rerun, or a run after an interruption, does
only what is left; every step writes its output atomically, last):

1. the detector: a release name (``mdv5a``, fetched into the cache by ``weights fetch``), a file, or none: a
   YOLO trained on the layout's boxes (``detector.pt``);
2. detection on the training frames, one results file per season (``detections/S01.json``; checkpointed);
3. the crop classifier on those crops (``classifier.pt``; recipe ``auto`` by default);
4. optionally the one-stage whole-frame baseline (``one_stage.pt``) and its blend with the priors, fitted on
   the validation seasons (``one_stage_blend.json``);
5. fusion fitted on the validation seasons (``fusion.json``; their fused predictions in ``validation.csv``);
6. ONNX exports (``detector.onnx``, ``classifier.onnx``) and the offline package (``submission.zip``);
7. ``report.md``: validation scores and per-class losses against the class priors.

The classifier (unless ``classifier_sees_validation``) and the one-stage baseline learn from the training seasons
only; the validation seasons are kept for fitting fusion and the blend, and for the report.  ``hakuna demo`` is
``synth`` followed by this.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from camtrap.dataset import SequenceSet, read_train, season_split
from camtrap.engine import EngineConfig
from camtrap.fileio import atomic_write_csv, atomic_write_json, atomic_write_text
from camtrap.labels import COLUMNS
from classifier.config import ClassifierTrainConfig
from detector.train import DetectorTrainConfig

__all__ = ["TrainConfig", "TrainError", "run_training", "train_models", "read_layout", "find_boxes", "step",
           "detector_step"]

log = logging.getLogger(__name__)
Say = Callable[[str], None]


class TrainError(Exception):
    """Something the user must fix before training can go on (offline release, no boxes, bad seasons)."""


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how; every field has a default fit for real data on a GPU."""

    detector: str | None = None  # release name or file; None: train one on the layout's boxes
    boxes: Path | None = None  # LILA boxes JSON (default: DATA/lila/SnapshotSerengetiBboxes_*.json)
    val_seasons: tuple[int, ...] = ()  # default: the latest training season
    detector_train: DetectorTrainConfig = field(default_factory=DetectorTrainConfig)
    classifier: ClassifierTrainConfig = field(default_factory=lambda: ClassifierTrainConfig(recipe="auto"))
    one_stage: ClassifierTrainConfig | None = None  # None: no one-stage baseline
    engine: EngineConfig = field(default_factory=EngineConfig)
    device: str | None = None  # None: cuda when available
    checkpoint_every: int = 1000  # detection checkpoints (frames)
    # The crop classifier learns from the validation seasons too (fusion is still fitted on them only).  On the
    # demo's small synthetic set this scores better on the unseen test season (0.0189 against 0.0220 before fusion's
    # crop trust, with the demo's 20-epoch detector).
    classifier_sees_validation: bool = False


def step(name: str, output: Path, make: Callable[[], object], say: Say) -> bool:
    """Run ``make`` unless ``output`` exists; returns whether it ran."""
    if output.exists():
        say(f"[skip] {name}: {output} exists")
        return False
    t0 = time.perf_counter()
    say(f"[....] {name}")
    make()
    say(f"[done] {name} in {time.perf_counter() - t0:.0f} s -> {output}")
    return True


def read_layout(data_root: Path) -> SequenceSet:
    """The training part of a dataset folder (``train/train_metadata.csv``, labels, per-season folders)."""
    train = data_root / "train"
    if not (train / "train_metadata.csv").exists():
        raise TrainError(f"{data_root}: no train/train_metadata.csv (`hakuna data lila` or `hakuna synth` make one)")
    return read_train(train / "train_metadata.csv", train / "train_labels.csv", train)


def find_boxes(data_root: Path, boxes: Path | None) -> Path:
    """The boxes file to train a detector on: ``boxes``, else the one under ``DATA/lila/`` (``data lila``'s
    ``_selected`` subset before LILA's whole file, which it downloads beside it)."""
    found = boxes or next(iter(sorted((data_root / "lila").glob("SnapshotSerengetiBboxes_*.json"),
                                      key=lambda p: (not p.stem.endswith("_selected"), p.name))), None)  # fmt: skip
    if found is None:
        raise TrainError(f"no detector given and no boxes to train one: pass --detector (mdv5a, mdv5b or a file), "
                         f"--boxes, or build the layout with `hakuna data lila --boxes` (none under {data_root}/lila)")
    return found


def _split(data: SequenceSet, val_seasons: tuple[int, ...]) -> tuple[SequenceSet, SequenceSet]:
    try:
        return season_split(data, list(val_seasons) or None)
    except ValueError as exc:
        raise TrainError(f"--val-seasons: {exc}") from exc


def _release_path(name: str, say: Say) -> Path:
    """A registry release in the cache, downloaded (md5-checked) when missing; offline: what to do instead."""
    from camtrap.download import DownloadError
    from detector.weights import cache_dir, fetch, release_named

    release = release_named(name)
    assert release is not None
    cached = cache_dir() / release.filename
    try:
        path = fetch(release.name)
    except DownloadError as exc:
        raise TrainError(f"cannot fetch {release.name} ({exc}). Offline? On a machine with internet run "
                         f"`hakuna weights fetch {release.name}` and copy {release.filename} to {cached}, or pass "
                         f"--detector /path/to/{release.filename}") from exc
    say(f"[skip] detector: release {release.name} at {path}")
    return path


def _check_detector(name: str) -> None:
    """Refuse a ``--detector`` that is neither a file nor a release."""
    from detector.weights import known_releases, release_named

    if not Path(name).expanduser().exists() and release_named(name) is None:
        raise TrainError(f"--detector {name}: no such file and no known release ({', '.join(known_releases())})")


def detector_step(data: SequenceSet, data_root: Path, models: Path, cfg: TrainConfig, say: Say) -> Path:
    """Step 1: the detector file to use (given, fetched, or trained on the layout's boxes unless done)."""
    if cfg.detector is not None:
        path = Path(cfg.detector).expanduser()
        if path.exists():
            say(f"[skip] detector: {path} given")
            return path
        _check_detector(cfg.detector)
        return _release_path(cfg.detector, say)
    from detector.train import train as train_detector

    out = models / "detector.pt"
    boxes = find_boxes(data_root, cfg.boxes)  # checked before anything runs
    det_cfg = dataclasses.replace(cfg.detector_train, val_seasons=cfg.val_seasons)
    step("train detector on the layout's boxes", out,
         lambda: train_detector(data, boxes, out, det_cfg, work_dir=models / "detector-work"), say)  # fmt: skip
    return out


def _load_detector(path: Path, cfg: TrainConfig):
    from detector.model import load

    return load(path, device=cfg.device)


def _detect(part: SequenceSet, detector_path: Path, models: Path, cfg: TrainConfig, say: Say):
    """Step 2: detections on ``part``'s frames, one results file per season; returns them merged."""
    from camtrap.mdjson import read_results
    from detector.predict import DetectConfig, detect_files

    loaded: list = []
    parts = []
    for season in sorted(int(s) for s in part.frames["season"].dropna().unique()):
        out = models / "detections" / f"S{season:02d}.json"
        season_part = part.subset(list(part.frames.loc[part.frames["season"] == season, "seq_id"].unique()))

        def run(season_part=season_part, out=out) -> None:
            loaded[:] = loaded or [_load_detector(detector_path, cfg)]
            detect_files(loaded[0], season_part.frame_refs(), DetectConfig(engine=cfg.engine,
                         checkpoint_every=cfg.checkpoint_every), out=out, resume=True)  # fmt: skip

        step(f"detect on training season {season} ({len(season_part.frames)} frames)", out, run, say)
        parts.append(read_results(out))
    return dataclasses.replace(parts[0], frames=tuple(f for p in parts for f in p.frames))


def _classifier(part: SequenceSet, results, models: Path, cfg: TrainConfig, say: Say) -> Path:
    """Step 3: the crop classifier."""
    from classifier.data import crop_samples
    from classifier.train import train as train_classifier
    from detector.weights import results_threshold

    out = models / "classifier.pt"
    threshold = results_threshold(results, models / "detections")
    clf_cfg = dataclasses.replace(cfg.classifier, device=cfg.device or cfg.classifier.device)
    step(f"train crop classifier (recipe {clf_cfg.recipe})", out, lambda: train_classifier(
        crop_samples(part, results, threshold=threshold), out, clf_cfg, cache_dir=models / "cache"), say)  # fmt: skip
    return out


def _one_stage(part: SequenceSet, val: SequenceSet, priors: tuple[float, ...], models: Path, cfg: TrainConfig,
               say: Say) -> None:  # fmt: skip
    """Step 4: the one-stage baseline and its blend with the priors (fitted on the validation seasons)."""
    from classifier.data import frame_samples
    from classifier.predict import load as load_classifier
    from classifier.train import train as train_classifier
    from hakuna.baselines import fit_blend, one_stage_submission

    assert cfg.one_stage is not None
    out, blend = models / "one_stage.pt", models / "one_stage_blend.json"
    one_cfg = dataclasses.replace(cfg.one_stage, device=cfg.device or cfg.one_stage.device)
    step("train one-stage whole-frame classifier", out, lambda: train_classifier(
        frame_samples(part), out, one_cfg, cache_dir=models / "cache"), say)  # fmt: skip

    def fit() -> None:
        raw = one_stage_submission(val, load_classifier(out, device=cfg.device), priors, blend=None)
        atomic_write_json(blend, fit_blend(raw, val.labels, priors))

    step("fit the one-stage blend with the priors on the validation seasons", blend, fit, say)


def _fusion(data: SequenceSet, val: SequenceSet, detector_path: Path, classifier: Path, models: Path,
            cfg: TrainConfig, say: Say) -> Path:  # fmt: skip
    """Step 5: fusion fitted on the validation seasons (and their fused predictions, for the report)."""
    from classifier.predict import load as load_classifier
    from fusion import fit, fuse_all
    from fusion.fit import class_priors
    from hakuna.bindings import fingerprints
    from hakuna.pipeline import PipelineConfig, collect_evidence

    out = models / "fusion.json"

    def make() -> None:
        detector = _load_detector(detector_path, cfg)
        clf = load_classifier(classifier, device=cfg.device)
        evidence, _ = collect_evidence(val, detector, clf, PipelineConfig(engine=cfg.engine))
        log.info("fusion: %d validation sequences, %d crops", len(evidence), sum(len(e.crop_probs) for e in evidence))
        model = fit(evidence, val.labels, animal_threshold=detector.spec.typical_threshold,
                    priors=class_priors(data.labels), fitted_for=fingerprints(detector, clf))  # fmt: skip
        ids = pd.Index([e.seq_id for e in evidence], name="seq_id")
        atomic_write_csv(models / "validation.csv", pd.DataFrame(fuse_all(evidence, model), index=ids,
                                                                 columns=list(COLUMNS)))  # fmt: skip
        model.save(out)

    step(f"fit fusion on validation season(s) {_seasons(val)}", out, make, say)
    return out


def _seasons(part: SequenceSet) -> str:
    return ", ".join(str(int(s)) for s in sorted(part.frames["season"].dropna().unique()))


def train_models(data: SequenceSet, data_root: Path, models: Path, cfg: TrainConfig, say: Say = print) -> dict:
    """Steps 1-5 on ``data`` (a labelled training part); returns the model paths by role."""
    train_part, val = _split(data, cfg.val_seasons)
    detector = detector_step(data, data_root, models, cfg, say)
    classifier = models / "classifier.pt"
    if classifier.exists():  # the detections were only needed for its crops
        say(f"[skip] detect on the training seasons and train crop classifier: {classifier} exists")
    else:
        part = data if cfg.classifier_sees_validation else train_part
        classifier = _classifier(part, _detect(part, detector, models, cfg, say), models, cfg, say)
    if cfg.one_stage is not None:
        from fusion.fit import class_priors

        _one_stage(train_part, val, class_priors(data.labels), models, cfg, say)  # the priors fusion falls back to
    fusion = _fusion(data, val, detector, classifier, models, cfg, say)
    return {"detector": detector, "classifier": classifier, "fusion": fusion, "validation": val, "train": train_part}


def _package(paths: dict, models: Path, say: Say) -> Path:
    """Step 6: ONNX exports and ``submission.zip``."""
    from classifier.onnx import export_onnx as export_classifier
    from detector.model import export_onnx as export_detector
    from submission.package import build_package

    detector, classifier = paths["detector"], paths["classifier"]
    if detector.suffix != ".onnx":
        step("export detector to ONNX", models / "detector.onnx",
             lambda: export_detector(detector, models / "detector.onnx"), say)  # fmt: skip
        detector = models / "detector.onnx"
    step("export classifier to ONNX", models / "classifier.onnx",
         lambda: export_classifier(classifier, models / "classifier.onnx"), say)  # fmt: skip
    out = models / "submission.zip"
    step("package submission.zip", out,
         lambda: build_package(detector, models / "classifier.onnx", paths["fusion"], out), say)  # fmt: skip
    return out


def run_training(data_root: Path, models: Path, cfg: TrainConfig = TrainConfig(), say: Say = print) -> dict:  # noqa: B008
    """Every step on the training layout under ``data_root``; returns the model paths (and ``zip``, ``report``)."""
    from hakuna.train_report import write_report

    data = read_layout(data_root)
    if cfg.detector is None:
        find_boxes(data_root, cfg.boxes)
    else:
        _check_detector(cfg.detector)
    _split(data, cfg.val_seasons)  # refuse bad seasons before any work
    models.mkdir(parents=True, exist_ok=True)
    paths = train_models(data, data_root, models, cfg, say)
    paths["zip"] = _package(paths, models, say)
    report = models / "report.md"
    step("write report.md", report, lambda: atomic_write_text(report, write_report(paths, models, cfg)), say)
    paths["report"] = report
    return paths

