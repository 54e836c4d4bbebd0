"""The ``fewshot`` recipe: learning well from a few hundred labelled photos.

Fine-tuning a whole backbone on two photos per class destroys more than it learns.  This recipe keeps the
ImageNet backbone frozen and fits only a head (:mod:`classifier.probe`): features and the ImageNet zero-shot
prior are computed once per image (and its mirror) and cached, then every choice is made by group-aware
cross-validation on the training photos themselves -- never on a test set:

* the backbone set (EfficientNet-Lite0 alone, or every installed Lite together),
* the views of each photo pooled (:mod:`classifier.views`: one framing, the framing by the photo's shape, or
  several crops), and the scale the backbones run at (``FewShotConfig.scales``),
* the L2 strength of the head.

Features are cached per backbone, view and scale (:mod:`classifier.features`), so these comparisons cost one
extraction.

Probabilities are calibrated: a temperature fitted on the out-of-fold predictions of the chosen setting is
stored in the spec.  The final head is fitted on every photo.  Only the head is learnt, so training takes
seconds once features exist, and the model runs everywhere a fine-tuned one does (PyTorch and ONNX).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.backbones import BACKBONES, lite_weights_installed
from classifier.config import LITE, FewShotConfig
from classifier.data import SampleSet, decode_cached, report_unreadable
from classifier.probe import Embeddings, ProbeClassifier, ProbeFit, fit_head, head_logits, probs_of, scaled_size
from classifier.spec import ModelSpec, ResizePolicy

__all__ = ["FewShotConfig", "Setting", "group_folds", "embeddings", "out_of_fold", "choose", "fit_temperature",
           "calibration_error", "candidate_settings", "fit_for", "fit_setting", "finetune_schedule", "finetune_model",
           "setting_pixels", "probe_model", "installed_backbones", "log_loss"]  # fmt: skip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setting:
    """One candidate: a set of backbones (features concatenated), the views pooled (:mod:`classifier.views`), the
    scale the backbones run at (x their native size), the L2 strength, the mosaic's tile size, and the bias of
    classes without a training photo (:meth:`classifier.probe.ProbeFit.with_absent`; chosen with the rest)."""

    backbones: tuple[str, ...]
    views: tuple[str, ...]
    l2: float
    scale: float = 1.0
    tile: int = 0  # 0: the largest scaled size of the set
    absent: float | None = None  # None: the head as fitted

    @property
    def key(self) -> tuple:
        return self.backbones, self.views, self.scale, self.input_size

    @property
    def input_size(self) -> int:
        """The tile side: each backbone gets its own size from it (one decode serves a set)."""
        return self.tile or max(scaled_size(b, self.scale) for b in self.backbones)


def group_folds(groups: list[str], k: int, seed: int = 0) -> np.ndarray:
    """A fold number per sample; every sample of a group in the same fold, groups spread evenly at random."""
    uniq = sorted(set(groups))
    order = [uniq[i] for i in np.random.default_rng(seed).permutation(len(uniq))]
    fold_of = {g: i % k for i, g in enumerate(order)}
    return np.array([fold_of[g] for g in groups], np.int64)


def _crops(samples: SampleSet) -> bool:
    return all(s.bbox_xywh_norm is not None for s in samples.samples)


def _spec(samples: SampleSet, setting: Setting) -> ModelSpec:
    info, t = BACKBONES[setting.backbones[0]], setting.input_size
    resize = ResizePolicy.PAD_SQUARE if _crops(samples) else ResizePolicy.STRETCH  # sets the decode resolution
    return ModelSpec(setting.backbones[0], (len(setting.views) * t, t), info.mean, info.std, resize, samples.classes,
                     samples.multilabel, head="probe", backbones=setting.backbones, views=setting.views,
                     scale=setting.scale)  # fmt: skip


ProgressFactory = Callable[[str, int, int], Callable[[int], None]]


def embeddings(samples: SampleSet, settings: list[Setting], cache_dir: Path,
               bar: ProgressFactory | None = None) -> tuple[dict, np.ndarray]:
    """Embeddings (views pooled, backbones concatenated: exactly what the fitted :class:`ProbeClassifier`
    computes) of every sample and its mirror for each distinct ``Setting.key``, and the mask of samples that
    could be read.  Each (backbone, scale, tile) is extracted once over the union of the views asked for, and
    cached on disk (:mod:`classifier.features`); ``bar("features", 0, total)`` gives a progress callback."""
    from classifier.features import pooled, view_features

    wanted: dict[tuple, dict] = {}
    for s in settings:
        for b in s.backbones:
            wanted.setdefault((b, s.scale, s.input_size), {}).update(dict.fromkeys(s.views))
    progress = bar("features", 0, len(wanted) * len(samples.samples)) if bar else None
    parts = {}
    for (b, scale, tile), views in wanted.items():
        spec = _spec(samples, Setting((b,), tuple(views), 0.0, scale, tile))
        parts[(b, scale, tile)] = view_features(samples, b, spec, cache_dir, progress)
    ok = report_unreadable(samples, np.logical_and.reduce([p.ok for p in parts.values()]), spec)
    embedded = {s.key: pooled([parts[(b, s.scale, s.input_size)] for b in s.backbones], s.views, samples.classes)
                for s in settings}  # fmt: skip
    return embedded, ok


def out_of_fold(emb: Embeddings, targets: np.ndarray, index: np.ndarray, folds: np.ndarray, *, l2: float,
                use_prior: bool, multilabel: bool, absent: tuple = (None,)) -> dict:  # fmt: skip
    """Per-view logits (2, len(index), C) of each sample in ``index`` from a head fitted without its fold, for each
    bias of ``absent`` (the classes without a photo outside the fold; :meth:`ProbeFit.with_absent`): one fit per
    fold serves them all.  Returns {bias: logits}."""
    out = {a: np.zeros((len(emb.features), len(index), targets.shape[1])) for a in absent}
    for f in np.unique(folds[index]):
        test = folds[index] == f
        fit = fit_head(emb, targets, index[~test], l2=l2, use_prior=use_prior, multilabel=multilabel)
        present = targets[index[~test]].sum(axis=0) > 0
        for a in absent:
            out[a][:, test] = head_logits(fit.with_absent(present, a), emb, index[test])
    return out


def fit_for(setting: Setting, emb: Embeddings, targets: np.ndarray, index: np.ndarray, *, use_prior: bool,
            multilabel: bool) -> ProbeFit:  # fmt: skip
    """The head of ``setting`` fitted on samples ``index`` (classes without a photo there set as it says)."""
    fit = fit_head(emb, targets, index, l2=setting.l2, use_prior=use_prior, multilabel=multilabel)
    return fit.with_absent(targets[index].sum(axis=0) > 0, setting.absent)


def log_loss(probs: np.ndarray, targets: np.ndarray, multilabel: bool) -> float:
    p = np.clip(probs, 1e-15, 1 - 1e-15)
    if multilabel:
        return float(-(targets * np.log(p) + (1 - targets) * np.log1p(-p)).mean())
    return float(-(targets * np.log(p)).sum(axis=1).mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray, multilabel: bool = False) -> float:
    """The temperature (0.25 .. 8, log grid then golden section) that minimises the log loss of ``logits``."""
    def loss(log_t: float) -> float:
        return log_loss(probs_of(logits, multilabel=multilabel, temperature=math.exp(log_t)), targets, multilabel)

    lo, hi = math.log(0.25), math.log(8.0)
    grid = np.linspace(lo, hi, 15)
    best = int(np.argmin([loss(g) for g in grid]))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    golden = (math.sqrt(5) - 1) / 2
    for _ in range(30):
        a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
        lo, hi = (lo, b) if loss(a) < loss(b) else (a, hi)
    return float(math.exp((lo + hi) / 2))


def calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top-1 confidence (equal-width bins)."""
    conf, hit = probs.max(axis=1), probs.argmax(axis=1) == targets.argmax(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    err = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            err += sel.mean() * abs(conf[sel].mean() - hit[sel].mean())
    return float(err)


def installed_backbones(cfg: FewShotConfig) -> tuple[str, ...]:
    """The configured backbones whose ImageNet weights are here."""
    installed = tuple(b for b in cfg.backbones if BACKBONES[b].family != "lite" or lite_weights_installed(b))
    if not installed:
        raise ValueError(f"none of the backbones {cfg.backbones} has its ImageNet weights installed")
    return installed


def candidate_settings(samples: SampleSet, cfg: FewShotConfig) -> list[Setting]:
    """Backbone sets (the first backbone alone, and every installed one together) x the view sets (for crops:
    the crop alone and the crop with its zoom) x the scales x the L2 grid.  One tile size per scale serves every
    set, so each backbone's features are extracted once."""
    installed = installed_backbones(cfg)
    sets = list(dict.fromkeys([installed[:1], installed]))
    views = cfg.crop_view_sets if _crops(samples) else cfg.view_sets
    out = []
    every = {b for b in (*installed, *LITE) if BACKBONES[b].family != "lite" or lite_weights_installed(b)}
    for scale in cfg.scales:
        tile = max(scaled_size(b, scale) for b in every)  # shared by every set: one extraction per backbone
        out += [Setting(b, v, l2, scale, tile) for b in sets for v in views for l2 in cfg.l2_grid]
    return out


def choose(samples: SampleSet, index: np.ndarray, cfg: FewShotConfig, embedded: dict, *,
           use_prior: bool | None = None, settings: list[Setting] | None = None,
           memo: dict | None = None) -> tuple[Setting, np.ndarray]:  # fmt: skip
    """The setting with the lowest cross-validated log loss on samples ``index`` (folds inside ``index``), and
    its out-of-fold logits.  ``memo`` (a dict kept by the caller) reuses what an earlier call with the same
    samples, index and setting computed (comparing option sets that share candidates)."""
    targets = samples.targets()
    groups = [samples.samples[i].group for i in index]
    k = max(2, min(cfg.folds, len(set(groups))))
    inner = np.zeros(len(samples.samples), np.int64)
    inner[index] = group_folds(groups, k, cfg.seed + 1)
    best: tuple[float, Setting | None, np.ndarray | None] = (math.inf, None, None)
    prior = cfg.use_prior if use_prior is None else use_prior
    memo = {} if memo is None else memo
    absent = (None, *cfg.absent_bias) if prior else (None,)  # the linear probe (no prior) stays as fitted
    for setting in settings or candidate_settings(samples, cfg):
        key = (setting, prior, k, cfg.seed, index.tobytes(), absent)
        if key not in memo:
            variants = out_of_fold(embedded[setting.key], targets, index, inner, l2=setting.l2, use_prior=prior,
                                   multilabel=samples.multilabel, absent=absent)  # fmt: skip
            memo[key] = [(log_loss(probs_of(z, multilabel=samples.multilabel), targets[index], samples.multilabel),
                          dataclasses.replace(setting, absent=a), z) for a, z in variants.items()]  # fmt: skip
        for loss, chosen, logits in memo[key]:
            log.debug("%s: cross-validated log loss %.4f", chosen, loss)
            if loss < best[0]:
                best = (loss, chosen, logits)
    assert best[1] is not None and best[2] is not None
    return best[1], best[2]


def fit_setting(samples: SampleSet, index: np.ndarray, setting: Setting, emb: Embeddings, oof_logits: np.ndarray,
                *, use_prior: bool, calibrate: bool = True) -> tuple[ProbeClassifier, ModelSpec, dict]:  # fmt: skip
    """The model for ``setting`` fitted on samples ``index``, its spec (with the temperature fitted on the
    out-of-fold logits) and calibration figures."""
    targets = samples.targets()
    fit = fit_for(setting, emb, targets, index, use_prior=use_prior, multilabel=samples.multilabel)
    temperature = fit_temperature(oof_logits, targets[index], samples.multilabel) if calibrate else 1.0
    before = probs_of(oof_logits, multilabel=samples.multilabel)
    after = probs_of(oof_logits, multilabel=samples.multilabel, temperature=temperature)
    report = {"oof_log_loss": log_loss(before, targets[index], samples.multilabel),
              "oof_log_loss_calibrated": log_loss(after, targets[index], samples.multilabel)}  # fmt: skip
    if not samples.multilabel:
        report.update(ece=calibration_error(before, targets[index]),
                      ece_calibrated=calibration_error(after, targets[index]))  # fmt: skip
    model = probe_model(samples, setting, fit)
    spec = dataclasses.replace(_spec(samples, setting), temperature=temperature)
    return model, spec, report


def probe_model(samples: SampleSet, setting: Setting, fit: ProbeFit) -> ProbeClassifier:
    """A pretrained :class:`ProbeClassifier` for ``setting`` holding the fitted head ``fit``."""
    return fit.load_into(ProbeClassifier(setting.backbones, samples.classes, input_size=setting.input_size,
                                         multilabel=samples.multilabel, pretrained=True, views=len(setting.views),
                                         scale=setting.scale))  # fmt: skip


def _normalise(setting: Setting) -> tuple[tuple, tuple]:
    """The (mean, std) the setting's model input is normalised with (its first backbone's, as in its spec)."""
    info = BACKBONES[setting.backbones[0]]
    return info.mean, info.std


def setting_pixels(samples: SampleSet, setting: Setting, cache_dir: Path) -> np.ndarray:
    """Every sample decoded (once, cached) at ``setting``'s input size and framing: N x H x W x 3 uint8."""
    return decode_cached(samples, _spec(samples, setting), cache_dir)[0]


def finetune_schedule(samples: SampleSet, index: np.ndarray, setting: Setting, emb: Embeddings, cfg: FewShotConfig,
                      cache_dir: Path, device: str = "cpu") -> tuple[int, np.ndarray, np.ndarray]:  # fmt: skip
    """LP-FT (:mod:`classifier.finetune`) for ``setting`` on samples ``index``: the epoch count chosen by group CV,
    its out-of-fold logits, and the decoded pixels (for :func:`finetune_model`)."""
    from classifier.finetune import choose_epochs

    pixels = setting_pixels(samples, setting, cache_dir)

    def build(fit: ProbeFit) -> ProbeClassifier:
        return probe_model(samples, setting, fit)

    def loss(logits: np.ndarray, targets: np.ndarray) -> float:
        return log_loss(probs_of(logits, multilabel=samples.multilabel), targets, samples.multilabel)

    epochs, oof = choose_epochs(build, emb, pixels, samples.targets(), index,
                                [samples.samples[i].group for i in index], cfg, l2=setting.l2,
                                normalise=_normalise(setting), multilabel=samples.multilabel, log_loss=loss,
                                device=device)  # fmt: skip
    return epochs, oof, pixels


def finetune_model(model: ProbeClassifier, samples: SampleSet, index: np.ndarray, setting: Setting,
                   pixels: np.ndarray, epochs: int, cfg: FewShotConfig, device: str = "cpu",
                   eval_index: np.ndarray | None = None) -> np.ndarray | None:  # fmt: skip
    """``model`` (a fitted probe) fine-tuned in place on samples ``index`` for ``epochs`` epochs; returns the
    (2, n, C) logits of samples ``eval_index`` afterwards (None without)."""
    from classifier.finetune import finetune

    history = finetune(model, pixels, samples.targets(), index, cfg, l2=setting.l2, epochs=epochs,
                       normalise=_normalise(setting), device=device, eval_index=eval_index)  # fmt: skip
    return history[-1] if history else None
