"""The demo: synthetic data -> detector -> crop classifier -> fusion -> package -> offline run -> scores, on CPU.

Everything lands under one folder so the numbers can be checked: ``data/``, ``models/``, ``submission.zip``,
``submission.csv`` and ``scores.json``.  Each step is skipped when its output already exists, so an
interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from camtrap.dataset import read_labels, read_test, read_train, season_split
from camtrap.engine import EngineConfig
from camtrap.fileio import atomic_write_json
from camtrap.labels import COLUMNS
from camtrap.mdjson import read_results
from camtrap.metric import per_class_log_loss, read_submission
from camtrap.synth import SynthConfig, generate
from classifier.config import ClassifierTrainConfig
from classifier.data import crop_samples, frame_samples
from classifier.predict import load as load_classifier
from detector.model import load as load_detector
from detector.predict import DetectConfig, detect_files
from detector.train import DetectorTrainConfig
from fusion import fit
from fusion.fit import class_priors
from hakuna.baselines import one_stage_submission, prior_submission
from hakuna.pipeline import PipelineConfig, collect_evidence
from submission.harness import run_submission
from submission.package import build_package

__all__ = ["DemoConfig", "run_demo", "ensure_models", "format_scores"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes chosen so the whole demo fits in about ten minutes on two CPU cores."""

    synth: SynthConfig = SynthConfig(sequences=400, seed=0, size=(768, 576))
    detector_epochs: int = 20
    detector_imgsz: int = 256
    classifier_epochs: int = 5
    classifier_size: int = 112
    one_stage_epochs: int = 2
    one_stage_size: int = 96
    workers: int = 2


def _step(name: str, output: Path, make: Callable[[], object], say: Callable[[str], None]) -> None:
    if output.exists():
        say(f"[skip] {name}: {output} exists")
        return
    t0 = time.perf_counter()
    say(f"[....] {name}")
    make()
    say(f"[done] {name} in {time.perf_counter() - t0:.0f} s -> {output}")


def _scores(sub: pd.DataFrame, labels: pd.DataFrame) -> tuple[float, dict[str, float]]:
    losses = per_class_log_loss(sub.loc[labels.index], labels)
    return float(losses.mean()), {k: float(v) for k, v in losses.items()}


def run_demo(out: Path, cfg: DemoConfig = DemoConfig(), say: Callable[[str], None] = print) -> dict:  # noqa: B008
    """Run every step (skipping finished ones); returns and writes ``scores.json``."""
    data_root, models = out / "data", out / "models"
    _step("synthetic dataset", data_root / "synth.json",
          lambda: generate(cfg.synth, data_root, workers=cfg.workers), say)
    train = ensure_models(data_root, models, cfg, say)
    _step("package submission.zip", out / "submission.zip", lambda: build_package(
        models / "detector.pt", models / "classifier.pt", models / "fusion.json", out / "submission.zip"), say)
    _step("run submission.zip offline on the test season", out / "submission.csv",
          lambda: run_submission(out / "submission.zip", data_root / "test" / "data", out / "submission.csv",
                                 allow_network=True), say)  # our own zip: sandboxed where bwrap works, else warned
    return _write_scores(out, data_root, train, models, cfg)


def ensure_models(data_root: Path, models: Path, cfg: DemoConfig, say: Callable[[str], None] = print):
    """Train whatever of detector, crop classifier, fusion and one-stage classifier is missing under ``models``
    (on the training seasons of ``data_root``); returns the training set."""
    from classifier.train import train as train_classifier
    from detector.train import train as train_detector

    train = read_train(data_root / "train" / "train_metadata.csv", data_root / "train" / "train_labels.csv",
                       data_root / "train")  # fmt: skip
    boxes = data_root / "lila" / "SnapshotSerengetiBboxes_synth.json"
    det_cfg = DetectorTrainConfig(epochs=cfg.detector_epochs, imgsz=cfg.detector_imgsz)
    _step("train detector", models / "detector.pt",
          lambda: train_detector(train, boxes, models / "detector.pt", det_cfg, work_dir=models / "detector-work"), say)
    detections = models / "train_detections.json"
    engine = EngineConfig(workers=cfg.workers)
    _step("detect on training frames", models / "classifier.pt" if (models / "classifier.pt").exists() else detections,
          lambda: detect_files(load_detector(models / "detector.pt", device="cpu"), train.frame_refs(),
                               DetectConfig(engine=engine), out=detections, resume=True), say)  # fmt: skip
    clf_cfg = ClassifierTrainConfig(input_size=cfg.classifier_size, epochs=cfg.classifier_epochs, lr=0.002,
                                    device="cpu")
    _step("train crop classifier", models / "classifier.pt", lambda: train_classifier(
        crop_samples(train, (results := read_results(detections)), threshold=results.typical_threshold),
        models / "classifier.pt", clf_cfg, cache_dir=models / "cache"), say)  # fmt: skip
    _step("fit fusion on the validation season", models / "fusion.json", lambda: _fit_fusion(train, models, cfg), say)
    one_cfg = ClassifierTrainConfig(input_size=cfg.one_stage_size, epochs=cfg.one_stage_epochs, lr=0.002, device="cpu")
    _step("train one-stage whole-frame classifier", models / "one_stage.pt", lambda: train_classifier(
        frame_samples(train), models / "one_stage.pt", one_cfg, cache_dir=models / "cache"), say)  # fmt: skip
    return train


def _fit_fusion(train, models: Path, cfg: DemoConfig) -> None:
    _, val = season_split(train)
    from hakuna.bindings import fingerprints

    detector = load_detector(models / "detector.pt", device="cpu")
    classifier = load_classifier(models / "classifier.pt", device="cpu")
    evidence, _ = collect_evidence(val, detector, classifier,
                                   PipelineConfig(engine=EngineConfig(workers=cfg.workers)))  # fmt: skip
    crops = sum(len(ev.crop_probs) for ev in evidence)
    log.info("fusion: %d validation sequences, %d crops classified", len(evidence), crops)
    fit(evidence, val.labels, animal_threshold=detector.spec.typical_threshold, priors=class_priors(train.labels),
        fitted_for=fingerprints(detector, classifier)).save(models / "fusion.json")


def _write_scores(out: Path, data_root: Path, train, models: Path, cfg: DemoConfig) -> dict:
    labels = read_labels(data_root / "test" / "test_labels.csv")
    test, _ = read_test(data_root / "test" / "data")
    two, two_per = _scores(read_submission(out / "submission.csv"), labels)
    prior, prior_per = _scores(prior_submission(train.labels, labels.index), labels)
    one_sub = one_stage_submission(test, load_classifier(models / "one_stage.pt", device="cpu"),
                                   class_priors(train.labels))  # fmt: skip
    one, one_per = _scores(one_sub, labels)
    scores = {"two_stage": two, "one_stage": one, "prior": prior,
              "per_class": {"two_stage": two_per, "one_stage": one_per, "prior": prior_per},
              "test_sequences": len(labels), "config": json.loads(json.dumps(asdict(cfg), default=str))}  # fmt: skip
    atomic_write_json(out / "scores.json", scores)
    return scores


def format_scores(scores: dict) -> str:
    """The demo's closing table: score and empty-column loss of each approach."""
    lines = [f"{'approach':12s} {'score':>10s} {'empty loss':>11s}"]
    for key in ("two_stage", "one_stage", "prior"):
        lines.append(f"{key:12s} {scores[key]:10.5f} {scores['per_class'][key]['empty']:11.5f}")
    lines.append(f"({scores['test_sequences']} test sequences; mean binary log loss over {len(COLUMNS)} columns)")
    return "\n".join(lines)
