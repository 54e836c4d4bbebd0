"""The demo: ``synth`` followed by ``hakuna train`` (:mod:`hakuna.train`, the same code path as real data), then
the package run offline on the unseen test season and scored, on CPU.

Everything lands under one folder so the numbers can be checked: ``data/``, ``models/`` (with
``submission.zip`` and ``report.md``), ``submission.csv`` and ``scores.json``.  Each step is skipped when its
output already exists, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from camtrap.dataset import read_labels, read_test
from camtrap.engine import EngineConfig
from camtrap.fileio import atomic_write_json
from camtrap.labels import COLUMNS
from camtrap.metric import per_class_log_loss, read_submission
from camtrap.synth import SynthConfig, generate
from classifier.config import ClassifierTrainConfig
from classifier.predict import load as load_classifier
from detector.train import DetectorTrainConfig
from fusion import FusionModel
from hakuna.baselines import one_stage_submission
from hakuna.train import TrainConfig, run_training, step
from submission.harness import run_submission

__all__ = ["DemoConfig", "run_demo", "format_scores"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes chosen so the whole demo fits in about seven minutes on two CPU cores (README)."""

    synth: SynthConfig = SynthConfig(sequences=400, seed=0, size=(768, 576))
    detector_epochs: int = 20
    detector_imgsz: int = 256
    classifier_epochs: int = 5
    classifier_size: int = 112
    one_stage_epochs: int = 2
    one_stage_size: int = 96
    workers: int = 2

    def training(self) -> TrainConfig:
        """The ``hakuna train`` configuration: a detector trained on the synthetic boxes, the full recipe."""
        clf = ClassifierTrainConfig(input_size=self.classifier_size, epochs=self.classifier_epochs, lr=0.002,
                                    device="cpu")  # fmt: skip
        one = ClassifierTrainConfig(input_size=self.one_stage_size, epochs=self.one_stage_epochs, lr=0.002,
                                    device="cpu")  # fmt: skip
        det = DetectorTrainConfig(epochs=self.detector_epochs, imgsz=self.detector_imgsz)
        return TrainConfig(detector_train=det, classifier=clf, one_stage=one, engine=EngineConfig(workers=self.workers),
                           device="cpu", classifier_sees_validation=True)  # fmt: skip


def _scores(sub: pd.DataFrame, labels: pd.DataFrame) -> tuple[float, dict[str, float]]:
    losses = per_class_log_loss(sub.loc[labels.index], labels)
    return float(losses.mean()), {k: float(v) for k, v in losses.items()}


def run_demo(out: Path, cfg: DemoConfig = DemoConfig(), say: Callable[[str], None] = print) -> dict:  # noqa: B008
    """Run every step (skipping finished ones); returns and writes ``scores.json``."""
    data_root, models = out / "data", out / "models"
    step("synthetic dataset", data_root / "synth.json",
         lambda: generate(cfg.synth, data_root, workers=cfg.workers), say)  # fmt: skip
    paths = run_training(data_root, models, cfg.training(), say)
    step("run submission.zip offline on the test season", out / "submission.csv",
         lambda: run_submission(paths["zip"], data_root / "test" / "data", out / "submission.csv",
                                 allow_network=True), say)  # our own zip: sandboxed where bwrap works, else warned
    return _write_scores(out, data_root, models, cfg)


def _write_scores(out: Path, data_root: Path, models: Path, cfg: DemoConfig) -> dict:
    labels = read_labels(data_root / "test" / "test_labels.csv")
    test, _ = read_test(data_root / "test" / "data")
    two, two_per = _scores(read_submission(out / "submission.csv"), labels)
    priors = FusionModel.load(models / "fusion.json").priors  # the training layout's class frequencies
    prior, prior_per = _scores(pd.DataFrame([priors] * len(labels), index=labels.index, columns=list(COLUMNS)),
                               labels)  # fmt: skip
    blend = json.loads((models / "one_stage_blend.json").read_text())
    one_sub = one_stage_submission(test, load_classifier(models / "one_stage.pt", device="cpu"), priors, blend=blend)
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
