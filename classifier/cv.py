"""Group-aware K-fold comparison of training recipes on labelled photos (``hakuna classifier cv``).

Every recipe sees the same folds (photos of one group -- a sequence, a site -- stay in one fold) and is judged on
its out-of-fold predictions: top-1, top-5, multi-class log loss, the competition metric (each photo a one-frame
sequence over the 54 columns), expected calibration error and per-class recall.  Choices a recipe makes
(backbones, views, L2, temperature, self-training threshold) are made inside each training fold only.

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
from classifier.config import DEFAULT_FINETUNE_EPOCHS, MULTI_CROP, ClassifierTrainConfig, FewShotConfig
from classifier.data import SampleError, SampleSet

__all__ = ["CV_RECIPES", "OPTION_NAMES", "RecipeScores", "cross_validate", "scores_of", "format_table", "option_table"]

log = logging.getLogger(__name__)
CV_RECIPES = ("linear-probe", "fewshot", "fewshot-ft", "full")
LINEAR_PROBE_L2 = (3e-3, 0.01, 0.03, 0.1, 0.3)
SELF_TRAIN_THRESHOLDS = (0.5, 0.8)
OPTION_NAMES = ("lite0-old", "lite0-shape", "lite0-multicrop", "lite0-default", "old", "no-absent", "default",
                "selftrain")


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


def _linear_grid(settings: list) -> list:
    """The linear probe's candidates: frozen Lite0, the stretched photo at native scale (the recipe's tile)."""
    from classifier.fewshot import Setting

    tile = next((s.input_size for s in settings if s.scale == 1.0), 0)
    return [Setting(("efficientnet_lite0",), ("stretch",), l2, 1.0, tile) for l2 in LINEAR_PROBE_L2]


def _linear_probe(samples, index, folds, embedded, cfg, grid) -> tuple[np.ndarray, dict]:
    from classifier.fewshot import choose
    from classifier.probe import fit_head, head_logits, probs_of

    targets, out, chosen = samples.targets(), np.zeros((len(samples.samples), len(samples.classes))), []
    key = grid[0].key
    for f in np.unique(folds[index]):
        train, test = index[folds[index] != f], index[folds[index] == f]
        setting, _ = choose(samples, train, cfg, embedded, use_prior=False, settings=grid)
        fit = fit_head(embedded[key], targets, train, l2=setting.l2, use_prior=False, multilabel=samples.multilabel)
        out[test] = probs_of(head_logits(fit, embedded[key], test), multilabel=samples.multilabel)
        chosen.append(setting.l2)
    return out, {"l2": chosen}


def _fewshot(samples, index, folds, embedded, cfg, *, finetune: bool = False, cache_dir: Path | None = None,
             device: str = "cpu", unlabelled: np.ndarray | None = None,
             memo: dict | None = None) -> tuple[np.ndarray, dict]:  # fmt: skip
    from classifier.fewshot import (
        candidate_settings,
        choose,
        finetune_model,
        finetune_schedule,
        fit_for,
        fit_temperature,
        probe_model,
    )
    from classifier.probe import head_logits, probs_of

    targets, out, chosen = samples.targets(), np.zeros((len(samples.samples), len(samples.classes))), []
    raw = np.zeros_like(out)
    for f in np.unique(folds[index]):
        train, test = index[folds[index] != f], index[folds[index] == f]
        setting, oof = choose(samples, train, cfg, embedded, settings=candidate_settings(samples, cfg), memo=memo)
        emb, epochs, threshold = embedded[setting.key], 0, float("inf")
        if finetune:
            epochs, ft_oof, pixels = finetune_schedule(samples, train, setting, emb, cfg, cache_dir, device)
            oof = ft_oof if epochs else oof
        t = fit_temperature(oof, targets[train], samples.multilabel)
        fit = fit_for(setting, emb, targets, train, use_prior=cfg.use_prior, multilabel=samples.multilabel)
        logits = head_logits(fit, emb, test)
        if epochs:
            logits = finetune_model(probe_model(samples, setting, fit), samples, train, setting, pixels, epochs, cfg,
                                    device, eval_index=test)  # fmt: skip
        elif cfg.self_train and not samples.multilabel:
            threshold, logits = _self_train(samples, train, test, setting, emb, cfg, unlabelled)
        out[test] = probs_of(logits, multilabel=samples.multilabel, temperature=t)
        raw[test] = probs_of(logits, multilabel=samples.multilabel)
        chosen.append({"backbones": "+".join(setting.backbones), "views": "+".join(setting.views),
                       "scale": setting.scale, "l2": setting.l2, "temperature": round(t, 3),
                       "alpha": round(fit.alpha, 3), "absent_bias": setting.absent, "finetune_epochs": epochs,
                       "self_train": threshold})  # fmt: skip
    return out, {"folds": chosen, "uncalibrated": raw}


def _self_train(samples, train, test, setting, emb, cfg, unlabelled) -> tuple[float, np.ndarray]:
    """The self-training threshold chosen by inner group CV on ``train``, and the test photos' logits with it
    (the test fold and ``unlabelled`` are the unlabelled pool)."""
    from classifier.fewshot import group_folds, log_loss
    from classifier.selftrain import choose_threshold, self_train_logits

    targets, groups = samples.targets(), [s.group for s in samples.samples]
    extra = unlabelled if unlabelled is not None else np.zeros(0, np.int64)
    inner = np.zeros(len(groups), np.int64)
    inner[train] = group_folds([groups[i] for i in train], max(2, min(cfg.folds, len({groups[i] for i in train}))),
                               cfg.seed + 1)  # fmt: skip
    pool = np.concatenate([test, extra])
    threshold = choose_threshold(emb, targets, train, pool, groups, inner, cfg.self_train, l2=setting.l2,
                                 use_prior=cfg.use_prior, log_loss=lambda p, y: log_loss(p, y, False))  # fmt: skip
    logits = self_train_logits(emb, targets, train, pool, groups, threshold=threshold, l2=setting.l2,
                               use_prior=cfg.use_prior)  # fmt: skip
    return threshold, logits[:, : len(test)]


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
                   say: Callable[[str], None] = log.info, options: dict[str, FewShotConfig] | None = None,
                   unlabelled: SampleSet | None = None, bar=None,
                   subset: np.ndarray | None = None) -> list[RecipeScores]:  # fmt: skip
    """Out-of-fold figures of each recipe on the same group-aware folds, then of the ``fewshot`` recipe under each
    of ``options`` (name -> its config: the option table).  ``unlabelled`` photos (any labels) join the pool of
    self-training; ``bar("features", 0, total)`` gives the feature extraction's progress callback.  With
    ``subset`` (a mask over ``samples``), each result's notes also hold the figures on those photos alone."""
    from classifier.fewshot import candidate_settings, embeddings, group_folds

    cfg = dataclasses.replace(fewshot, folds=folds, seed=seed)
    configs = {k: dataclasses.replace(v, folds=folds, seed=seed) for k, v in (options or {}).items()}
    n = len(samples.samples)
    if unlabelled is not None and unlabelled.samples:
        blank = tuple(0.0 for _ in samples.classes)
        extra = tuple(dataclasses.replace(s, target=blank) for s in unlabelled.samples)
        samples = dataclasses.replace(samples, samples=samples.samples + extra)
    fold = np.concatenate([group_folds([s.group for s in samples.samples[:n]], folds, seed),
                           np.full(len(samples.samples) - n, -1)])  # unlabelled photos: in no fold
    settings = [s for c in (cfg, *configs.values()) for s in candidate_settings(samples, c)]
    grid = _linear_grid(settings)
    say(f"features: {len({s.key for s in settings + grid})} setting(s) of {len(samples.samples)} photos "
        f"(cached in {cache_dir})")
    embedded, ok = embeddings(samples, settings + grid, cache_dir, bar)
    index, spare = np.flatnonzero(ok[:n]), n + np.flatnonzero(ok[n:])
    if len(index) < 2:
        raise SampleError(f"cross-validation needs at least two readable photos ({len(index)} of {n} could be read)")
    targets = samples.targets()
    runs = [(r, r, cfg) for r in recipes] + [("fewshot", f"fewshot[{k}]", c) for k, c in configs.items()]
    memo: dict = {}
    results = []
    for recipe, name, c in runs:
        say(f"cross-validating {name} ({folds} group folds, {len(index)} photos)")
        probs, notes = _run(recipe, samples, index, fold, embedded, c, cache_dir, device, grid, spare, memo)
        if "uncalibrated" in notes:
            uncal = scores_of(name, notes.pop("uncalibrated")[index], targets[index], samples.classes)
            notes.update(log_loss_uncalibrated=uncal.log_loss, ece_uncalibrated=uncal.ece)
        if subset is not None and subset[index].any():
            part = index[subset[index]]
            sub = scores_of(name, probs[part], targets[part], samples.classes)
            notes["subset"] = {"photos": len(part), "top1": sub.top1, "top5": sub.top5, "log_loss": sub.log_loss}
        results.append(scores_of(name, probs[index], targets[index], samples.classes, notes))
    return results


def _run(recipe: str, samples: SampleSet, index: np.ndarray, fold: np.ndarray, embedded: dict, cfg: FewShotConfig,
         cache_dir: Path, device: str | None, grid: list, spare: np.ndarray,
         memo: dict) -> tuple[np.ndarray, dict]:  # fmt: skip
    """Out-of-fold probabilities of one recipe, and its notes."""
    from camtrap.devices import resolve_device

    if recipe == "linear-probe":
        return _linear_probe(samples, index, fold, embedded, cfg, grid)
    if recipe == "fewshot":
        return _fewshot(samples, index, fold, embedded, cfg, unlabelled=spare, memo=memo)
    if recipe == "fewshot-ft":
        epochs = cfg.finetune_epochs or DEFAULT_FINETUNE_EPOCHS
        return _fewshot(samples, index, fold, embedded, dataclasses.replace(cfg, finetune_epochs=epochs),
                        finetune=True, cache_dir=cache_dir, device=resolve_device(device))  # fmt: skip
    if recipe == "full":
        return _full(samples, index, fold, cache_dir, device)
    raise ValueError(f"unknown recipe {recipe!r}; choose from {CV_RECIPES}")


def option_table(base: FewShotConfig) -> dict[str, FewShotConfig]:
    """The few-shot options compared by ``hakuna classifier cv --options``.  On Lite0 (cheap), each adds one thing to
    the recipe as it was (stretched or centre-square photo, native scale, classes without a photo left as fitted);
    then every installed Lite backbone, as it was, with everything but the bias of absent classes
    (``no-absent``), with everything the recipe now tries (``default``), and that with self-training.  (Scale 1.3,
    ``FewShotConfig.scales``, is left out: it extracts every view again at 1.7x the cost.)"""
    old = {"view_sets": (("stretch",), ("center",)), "scales": (1.0,), "absent_bias": ()}
    lite0 = {"backbones": ("efficientnet_lite0",)}
    variants = {"lite0-old": {**old, **lite0},
                "lite0-shape": {**old, **lite0, "view_sets": (*old["view_sets"], ("shape",))},
                "lite0-multicrop": {**old, **lite0, "view_sets": (*old["view_sets"], MULTI_CROP)},
                "lite0-default": lite0,
                "old": old, "no-absent": {"absent_bias": ()}, "default": {},
                "selftrain": {"self_train": SELF_TRAIN_THRESHOLDS}}  # fmt: skip
    assert tuple(variants) == OPTION_NAMES
    return {k: dataclasses.replace(base, **v) for k, v in variants.items()}


def format_table(results: list[RecipeScores]) -> str:
    """The comparison as a fixed-width table."""
    width = max(14, *(len(r.recipe) for r in results))
    lines = [f"{'recipe':{width}s} {'top-1':>6s} {'top-5':>6s} {'log loss':>9s} {'metric':>8s} {'ECE':>6s}"]
    for r in results:
        lines.append(f"{r.recipe:{width}s} {r.top1:6.3f} {r.top5:6.3f} {r.log_loss:9.3f} {r.metric:8.4f} {r.ece:6.3f}")
    return "\n".join(lines)
