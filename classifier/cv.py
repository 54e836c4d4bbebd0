"""Group-aware K-fold comparison of training recipes on labelled photos (``hakuna classifier cv``).

Every recipe sees the same folds (photos of one group -- a sequence, a site -- stay in one fold) and is judged on
its out-of-fold predictions: top-1, top-5, multi-class log loss, the competition metric (each photo a one-frame
sequence over the 54 columns), expected calibration error and per-class recall.  Choices a recipe makes
(backbone, framing, L2, temperature) are made inside each training fold only.

* ``linear-probe``: logistic regression on frozen EfficientNet-Lite0 features of the stretched photo, flip TTA,
  L2 chosen by inner CV (the baseline to beat);
* ``fewshot``: :mod:`classifier.fewshot`;
* ``fewshot-ft``: the same, then LP-FT (:mod:`classifier.finetune`) with its epoch count chosen inside each
  training fold (``FewShotConfig.finetune_epochs``, or ``DEFAULT_FINETUNE_EPOCHS`` when that is 0);
* ``full``: today's fine-tuning (:mod:`classifier.train`, its defaults), trained per fold.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from camtrap.labels import COLUMNS
from classifier.config import DEFAULT_FINETUNE_EPOCHS, ClassifierTrainConfig, FewShotConfig
from classifier.data import SampleError, SampleSet
from classifier.spec import ResizePolicy

__all__ = ["CV_RECIPES", "RecipeScores", "cross_validate", "scores_of", "format_table"]

log = logging.getLogger(__name__)
CV_RECIPES = ("linear-probe", "fewshot", "fewshot-ft", "full")
LINEAR_PROBE_KEY = (("efficientnet_lite0",), ResizePolicy.STRETCH)
LINEAR_PROBE_L2 = (3e-3, 0.01, 0.03, 0.1, 0.3)


@dataclass(frozen=True)
class RecipeScores:
    """Out-of-fold figures of one recipe."""

    recipe: str
    top1: float
    top5: float
    log_loss: float
    metric: float  # the competition's mean binary log loss over 54 columns, each photo a one-frame sequence
    ece: float
    per_class_recall: dict[str, float] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


def scores_of(recipe: str, probs: np.ndarray, targets: np.ndarray, classes: tuple[str, ...],
              notes: dict | None = None) -> RecipeScores:  # fmt: skip
    """Figures of out-of-fold probabilities (N x classes) against one-hot (or soft) targets."""
    from camtrap.metric import score
    from classifier.fewshot import calibration_error

    truth = targets.argmax(axis=1)
    order = np.argsort(-probs, axis=1)
    p_true = np.clip(probs[np.arange(len(truth)), truth], 1e-15, 1.0)
    ids = pd.Index([f"p{i}" for i in range(len(truth))], name="seq_id")
    table = pd.DataFrame(0.0, index=ids, columns=list(COLUMNS))
    labels = table.astype(np.int8)
    for j, c in enumerate(classes):
        table[c] = probs[:, j]
        labels[c] = (targets[:, j] > 0).astype(np.int8)
    recall = {classes[c]: float((order[truth == c, 0] == c).mean()) for c in np.unique(truth)}
    top1, top5 = float((order[:, 0] == truth).mean()), float((order[:, :5] == truth[:, None]).any(axis=1).mean())
    return RecipeScores(recipe, top1, top5, float(-np.log(p_true).mean()), score(table.clip(0, 1), labels),
                        calibration_error(probs, targets), recall, notes or {})


def _linear_probe(samples, index, folds, embedded, cfg) -> tuple[np.ndarray, dict]:
    from classifier.fewshot import Setting, choose
    from classifier.probe import fit_head, head_logits, probs_of

    targets, out, chosen = samples.targets(), np.zeros((len(samples.samples), len(samples.classes))), []
    key = LINEAR_PROBE_KEY
    for f in np.unique(folds[index]):
        train, test = index[folds[index] != f], index[folds[index] == f]
        grid = [Setting(*key, l2) for l2 in LINEAR_PROBE_L2]
        setting, _ = choose(samples, train, cfg, embedded, use_prior=False, settings=grid)
        fit = fit_head(embedded[key], targets, train, l2=setting.l2, use_prior=False, multilabel=samples.multilabel)
        out[test] = probs_of(head_logits(fit, embedded[key], test), multilabel=samples.multilabel)
        chosen.append(setting.l2)
    return out, {"l2": chosen}


def _fewshot(samples, index, folds, embedded, cfg, *, finetune: bool = False, cache_dir: Path | None = None,
             device: str = "cpu") -> tuple[np.ndarray, dict]:  # fmt: skip
    from classifier.fewshot import choose, finetune_model, finetune_schedule, fit_temperature, probe_model
    from classifier.probe import fit_head, head_logits, probs_of

    targets, out, chosen = samples.targets(), np.zeros((len(samples.samples), len(samples.classes))), []
    raw = np.zeros_like(out)
    for f in np.unique(folds[index]):
        train, test = index[folds[index] != f], index[folds[index] == f]
        setting, oof = choose(samples, train, cfg, embedded)
        emb, epochs = embedded[setting.key], 0
        if finetune:
            epochs, ft_oof, pixels = finetune_schedule(samples, train, setting, emb, cfg, cache_dir, device)
            oof = ft_oof if epochs else oof
        t = fit_temperature(oof, targets[train], samples.multilabel)
        fit = fit_head(emb, targets, train, l2=setting.l2, use_prior=cfg.use_prior, multilabel=samples.multilabel)
        logits = head_logits(fit, emb, test)
        if epochs:
            logits = finetune_model(probe_model(samples, setting, fit), samples, train, setting, pixels, epochs, cfg,
                                    device, eval_index=test)  # fmt: skip
        out[test] = probs_of(logits, multilabel=samples.multilabel, temperature=t)
        raw[test] = probs_of(logits, multilabel=samples.multilabel)
        chosen.append({"backbones": "+".join(setting.backbones), "resize": setting.resize.value, "l2": setting.l2,
                       "temperature": round(t, 3), "alpha": round(fit.alpha, 3),
                       "finetune_epochs": epochs})  # fmt: skip
    return out, {"folds": chosen, "uncalibrated": raw}


def _full(samples, index, folds, cache_dir: Path, device: str | None) -> tuple[np.ndarray, dict]:
    from classifier.data import decode_cached
    from classifier.predict import TorchClassifier, predict_uint8
    from classifier.train import train

    out = np.zeros((len(samples.samples), len(samples.classes)))
    cfg = ClassifierTrainConfig(device=device)
    for f in np.unique(folds[index]):
        keep = np.zeros(len(samples.samples), bool)
        keep[index[folds[index] != f]] = True
        with tempfile.TemporaryDirectory() as tmp:
            result = train(samples.subset(keep), Path(tmp) / "m.pt", cfg, cache_dir=cache_dir)
            clf = TorchClassifier(result.model_path, device)
        test = index[folds[index] == f]
        pixels, _ = decode_cached(samples, clf.spec, cache_dir)
        out[test] = predict_uint8(clf, np.asarray(pixels[test]))
    return out, {"epochs": cfg.epochs, "lr": cfg.lr, "input_size": cfg.input_size or 224}


def cross_validate(samples: SampleSet, recipes: tuple[str, ...] = CV_RECIPES, *, folds: int = 5, seed: int = 0,
                   cache_dir: Path, device: str | None = None, fewshot: FewShotConfig = FewShotConfig(),  # noqa: B008
                   say: Callable[[str], None] = log.info) -> list[RecipeScores]:  # fmt: skip
    """Out-of-fold figures of each recipe on the same group-aware folds."""
    from classifier.fewshot import candidate_settings, embeddings, group_folds

    cfg = dataclasses.replace(fewshot, folds=folds, seed=seed)
    fold = group_folds([s.group for s in samples.samples], folds, seed)
    keys = dict.fromkeys([LINEAR_PROBE_KEY, *(s.key for s in candidate_settings(samples, cfg))])
    embedded, ok = {}, None
    for backbones, resize in keys:
        say(f"features: {'+'.join(backbones)}, {resize.value}")
        embedded[(backbones, resize)], ok = embeddings(samples, backbones, resize, cache_dir)
    index = np.flatnonzero(ok)
    if len(index) < 2:
        raise SampleError(f"cross-validation needs at least two readable photos ({len(index)} of "
                          f"{len(samples.samples)} could be read)")
    targets = samples.targets()
    results = []
    for recipe in recipes:
        say(f"cross-validating {recipe} ({folds} group folds, {len(index)} photos)")
        probs, notes = _run(recipe, samples, index, fold, embedded, cfg, cache_dir, device)
        if "uncalibrated" in notes:
            uncal = scores_of(recipe, notes.pop("uncalibrated")[index], targets[index], samples.classes)
            notes.update(log_loss_uncalibrated=uncal.log_loss, ece_uncalibrated=uncal.ece)
        results.append(scores_of(recipe, probs[index], targets[index], samples.classes, notes))
    return results


def _run(recipe: str, samples: SampleSet, index: np.ndarray, fold: np.ndarray, embedded: dict, cfg: FewShotConfig,
         cache_dir: Path, device: str | None) -> tuple[np.ndarray, dict]:  # fmt: skip
    """Out-of-fold probabilities of one recipe, and its notes."""
    from camtrap.devices import resolve_device

    if recipe == "linear-probe":
        return _linear_probe(samples, index, fold, embedded, cfg)
    if recipe == "fewshot":
        return _fewshot(samples, index, fold, embedded, cfg)
    if recipe == "fewshot-ft":
        epochs = cfg.finetune_epochs or DEFAULT_FINETUNE_EPOCHS
        return _fewshot(samples, index, fold, embedded, dataclasses.replace(cfg, finetune_epochs=epochs),
                        finetune=True, cache_dir=cache_dir, device=resolve_device(device))  # fmt: skip
    if recipe == "full":
        return _full(samples, index, fold, cache_dir, device)
    raise ValueError(f"unknown recipe {recipe!r}; choose from {CV_RECIPES}")


def format_table(results: list[RecipeScores]) -> str:
    """The comparison as a fixed-width table."""
    lines = [f"{'recipe':14s} {'top-1':>6s} {'top-5':>6s} {'log loss':>9s} {'metric':>8s} {'ECE':>6s}"]
    for r in results:
        lines.append(f"{r.recipe:14s} {r.top1:6.3f} {r.top5:6.3f} {r.log_loss:9.3f} {r.metric:8.4f} {r.ece:6.3f}")
    return "\n".join(lines)
