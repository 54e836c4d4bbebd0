"""One-stage vs two-stage scoring, on the same season-based split, reported fairly and reproducibly.

Rows: (a) one-stage, first frame only (the seed benchmark), (b) one-stage, all frames pooled, (c) two-stage
(detector + crop classifier + calibrated fusion), (d) two-stage with fusion ablated (no calibration; a raw
threshold on the detector decides empty).  Each row: the metric, per-class log loss, the ROC AUC of
``empty`` and images/s.  Written as ``ablation.json`` (one record per row), ``ablation_config.json`` (the
configuration and the sha256 of every model, so a rerun can be checked) and ``report.md`` with plots.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.dataset import SequenceSet, read_labels, read_test
from camtrap.fileio import atomic_write_json, atomic_write_text
from camtrap.labels import COLUMNS, EMPTY
from camtrap.metric import per_class_log_loss
from classifier.predict import load as load_classifier
from detector.model import load as load_detector
from fusion import FusionConfig, FusionModel, fuse_all
from hakuna.baselines import one_stage_submission
from hakuna.demo import DemoConfig
from hakuna.pipeline import PipelineConfig, collect_evidence
from hakuna.train import TrainConfig, TrainError, read_layout, train_models

__all__ = ["AblationRow", "roc_auc", "run_ablation", "evaluation_split"]



@dataclass(frozen=True)
class AblationRow:
    """One approach's results on the evaluation sequences."""

    name: str
    description: str
    score: float
    empty_loss: float
    empty_auc: float
    images_per_s: float
    images: int
    per_class: dict[str, float]


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (probability a positive outranks a negative; ties count half)."""
    y, score = np.asarray(y, bool), np.asarray(score, float)
    pos, neg = score[y], score[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    allv = np.concatenate([pos, neg])
    for v in np.unique(allv):  # average ranks over ties
        tie = allv == v
        ranks[tie] = ranks[tie].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _row(name: str, description: str, pred: pd.DataFrame, labels: pd.DataFrame, seconds: float,
         images: int) -> AblationRow:  # fmt: skip
    losses = per_class_log_loss(pred.loc[labels.index], labels)
    auc = roc_auc(labels[EMPTY].to_numpy() == 1, pred.loc[labels.index, EMPTY].to_numpy())
    return AblationRow(name, description, float(losses.mean()), float(losses[EMPTY]), auc,
                       images / seconds if seconds > 0 else float("nan"), images,
                       {k: float(v) for k, v in losses.items()})  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def evaluation_split(data_root: Path) -> tuple[SequenceSet, SequenceSet, pd.DataFrame, str]:
    """(training part, evaluation part, its labels, what it is): the test part when it is labelled
    (``test/test_labels.csv``, as ``synth`` writes), else the latest training season (a ``data lila`` folder)."""
    data = read_layout(data_root)
    if (data_root / "test" / "test_labels.csv").exists():
        test, _ = read_test(data_root / "test" / "data")
        labels = read_labels(data_root / "test" / "test_labels.csv")
        return data, test.subset(list(labels.index)), labels, "the labelled test part"
    seasons = sorted(int(s) for s in data.frames["season"].dropna().unique())
    if len(seasons) < 3:
        raise TrainError(f"{data_root}: no labelled test part, and {len(seasons)} season(s) are too few to hold one "
                         "out for evaluation and one for validation (need 3)")  # fmt: skip
    held = data.frames["season"] == seasons[-1]
    evaluation = data.subset(list(data.frames.loc[held, "seq_id"].unique()))
    train = data.subset(list(data.frames.loc[~held, "seq_id"].unique()))
    return train, evaluation, evaluation.labels, f"held-out training season {seasons[-1]}"


def run_ablation(data_root: Path, models: Path, out: Path, cfg: DemoConfig = DemoConfig(), *,  # noqa: B008
                 training: TrainConfig | None = None) -> list[AblationRow]:  # fmt: skip
    """Train missing models (``hakuna train``'s steps) on the training seasons, evaluate the four approaches on
    the evaluation part (:func:`evaluation_split`)."""
    import json

    train, test, labels, _ = evaluation_split(data_root)
    tcfg = training or cfg.training()
    if tcfg.one_stage is None:
        tcfg = dataclasses.replace(tcfg, one_stage=cfg.training().one_stage)
    paths = {**train_models(train, data_root, models, tcfg, print), "one_stage": models / "one_stage.pt"}
    priors = FusionModel.load(paths["fusion"]).priors
    one = load_classifier(models / "one_stage.pt", device=tcfg.device)
    blend = json.loads((models / "one_stage_blend.json").read_text())
    rows, preds = [], {}
    for first, name, text in ((True, "one_stage_first_frame", "one-stage, first frame only (seed benchmark)"),
                              (False, "one_stage_all_frames", "one-stage, all frames pooled")):  # fmt: skip
        t0 = time.perf_counter()
        pred = one_stage_submission(test, one, priors, first_frame_only=first, blend=blend)
        n = test.frames["seq_id"].nunique() if first else len(test.frames)
        rows.append(_row(name, text, pred, labels, time.perf_counter() - t0, n))
        preds[name] = pred
    t0 = time.perf_counter()
    detector = load_detector(paths["detector"], device=tcfg.device)
    evidence, _ = collect_evidence(test, detector, load_classifier(paths["classifier"], device=tcfg.device),
                                   PipelineConfig(engine=tcfg.engine))  # fmt: skip
    seconds = time.perf_counter() - t0
    fusion = FusionModel.load(paths["fusion"]).bind(detector.spec.typical_threshold)
    raw = dataclasses.replace(fusion, config=dataclasses.replace(fusion.config, calibrate=False))
    ids = pd.Index([ev.seq_id for ev in evidence], name="seq_id")
    for model, name, text in ((fusion, "two_stage", "two-stage: detector + crop classifier + calibrated fusion"),
                              (raw, "two_stage_uncalibrated", "two-stage, fusion ablated (raw threshold for empty)")):
        pred = pd.DataFrame(fuse_all(evidence, model), index=ids, columns=list(COLUMNS))
        rows.append(_row(name, text, pred, labels, seconds, len(test.frames)))
        preds[name] = pred
    _write(out, rows, preds, labels, paths, data_root, cfg, len(train.seq_ids))
    return rows


def _write(out: Path, rows: list[AblationRow], preds: dict[str, pd.DataFrame], labels: pd.DataFrame, paths: dict,
           data_root: Path, cfg: DemoConfig, n_train: int) -> None:  # fmt: skip
    from hakuna.report import ablation_markdown, ablation_plots

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "ablation.json", [dataclasses.asdict(r) for r in rows])
    config = {"data": str(data_root), "train_sequences": n_train, "test_sequences": len(labels),
              "demo_config": dataclasses.asdict(cfg), "fusion_uncalibrated": FusionConfig(calibrate=False).to_dict(),
              "models": {Path(p).name: _sha256(Path(p)) for p in (paths["detector"], paths["classifier"],
                                                                  paths["fusion"], paths["one_stage"])}}  # fmt: skip
    atomic_write_json(out / "ablation_config.json", config)
    plots = ablation_plots(out, rows, preds, labels)
    atomic_write_text(out / "report.md", ablation_markdown(rows, config, plots))
