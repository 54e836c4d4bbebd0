"""Which training recipe, and the few-shot recipe's training run.

* ``full``: fine-tune the whole backbone (:mod:`classifier.train`): for thousands of samples per class.
* ``fewshot``: frozen backbone, a head and every setting chosen by group cross-validation
  (:mod:`classifier.fewshot`): for the few hundred photos an ecologist has.
* ``auto``: ``fewshot`` while the median class has at most ``FEWSHOT_MAX_PER_CLASS`` samples, else ``full``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from classifier.config import FEWSHOT_MAX_PER_CLASS, ClassifierTrainConfig
from classifier.data import SampleError, SampleSet

__all__ = ["resolve_recipe", "train_fewshot"]

log = logging.getLogger(__name__)


def resolve_recipe(samples: SampleSet, cfg: ClassifierTrainConfig) -> str:
    """``cfg.recipe``, with ``auto`` decided by the samples per class (and said in the log)."""
    if cfg.recipe != "auto":
        return cfg.recipe
    counts = np.bincount(samples.targets().argmax(axis=1), minlength=len(samples.classes))
    median = float(np.median(counts[counts > 0])) if counts.any() else 0.0
    recipe = "fewshot" if median <= FEWSHOT_MAX_PER_CLASS else "full"
    log.info("recipe auto -> %s (median %.0f samples per class; few-shot up to %d)", recipe, median,
             FEWSHOT_MAX_PER_CLASS)  # fmt: skip
    return recipe


def _fit(samples: SampleSet, index: np.ndarray, setting, emb, oof: np.ndarray, cfg: ClassifierTrainConfig,
         cache_dir: Path) -> tuple:  # fmt: skip
    """The chosen setting's head fitted on every sample, then fine-tuned for the epochs group CV chose (LP-FT,
    when ``cfg.fewshot.finetune_epochs``); returns (model, spec, report, out-of-fold logits, epochs)."""
    from camtrap.devices import resolve_device
    from classifier.fewshot import finetune_model, finetune_schedule, fit_setting

    epochs, device = 0, resolve_device(cfg.device)
    if cfg.fewshot.finetune_epochs:
        epochs, ft_oof, pixels = finetune_schedule(samples, index, setting, emb, cfg.fewshot, cache_dir, device)
        oof = ft_oof if epochs else oof
    model, spec, report = fit_setting(samples, index, setting, emb, oof, use_prior=cfg.fewshot.use_prior)
    if epochs:
        finetune_model(model, samples, index, setting, pixels, epochs, cfg.fewshot, device)
    return model, spec, report, oof, epochs


def train_fewshot(samples: SampleSet, out: Path, cfg: ClassifierTrainConfig, *, cache_dir: Path,
                  progress: Callable[[str, int, int], Callable[[int], None]] | None = None):
    """Choose backbone, framing and L2 by group CV on ``samples``, fit the head on all of them, calibrate, and
    write the checkpoint.  Returns a :class:`classifier.train.TrainResult` whose history holds the CV figures."""
    import dataclasses

    import torch

    from classifier.fewshot import candidate_settings, choose, embeddings
    from classifier.probe import probs_of
    from classifier.spec import CHECKPOINT_FORMAT
    from classifier.train import TrainResult, class_metrics

    fcfg = cfg.fewshot
    bar = progress or (lambda *_: None)
    settings = candidate_settings(samples, fcfg)
    embedded, ok = embeddings(samples, settings, cache_dir, bar)
    index = np.flatnonzero(ok)
    if len(index) < 2:
        raise SampleError(f"the few-shot recipe needs at least two readable samples ({len(index)} of "
                          f"{len(samples.samples)} images could be read)")
    setting, oof = choose(samples, index, fcfg, embedded, settings=settings)
    model, spec, report, oof, epochs = _fit(samples, index, setting, embedded[setting.key], oof, cfg, cache_dir)
    targets = samples.targets()[index]
    metrics = class_metrics(probs_of(oof, multilabel=samples.multilabel, temperature=spec.temperature), targets,
                            samples.classes)  # fmt: skip
    summary = {"recipe": "fewshot", "source": samples.source, "train_samples": int(len(index)),
               "unreadable": int((~ok).sum()), "backbone": "+".join(setting.backbones), "resize": spec.resize.value,
               "views": "+".join(setting.views), "scale": setting.scale, "absent_bias": setting.absent,
               "l2": setting.l2, "finetune_epochs": epochs, "cv_folds": fcfg.folds, "cv_top1": metrics["top1"],
               **report}  # fmt: skip
    spec = dataclasses.replace(spec, training=summary)
    history = ({"epoch": 1, "val_top1": metrics["top1"], "per_class": metrics["per_class"], **report},)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save({"format": CHECKPOINT_FORMAT, "spec": spec.to_json(), "model": model.state_dict(),
                "history": list(history)}, tmp)  # fmt: skip
    os.replace(tmp, out)
    log.info("few-shot: %s, views %s, scale %g, L2 %g; cross-validated top-1 %.3f, log loss %.4f -> %.4f calibrated "
             "(T=%.2f)", "+".join(setting.backbones), "+".join(setting.views), setting.scale, setting.l2,
             metrics["top1"], report["oof_log_loss"], report["oof_log_loss_calibrated"], spec.temperature)  # fmt: skip
    return TrainResult(out, spec, history)
