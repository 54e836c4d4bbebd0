"""Training the classifier: pretrained backbone, class-balanced sampling, checkpoints every epoch, resume.

Choices, and why:

* **Crops: softmax over the 53 species** with soft targets.  A crop holds one animal, so the classes compete;
  a multi-species sequence gives its crops a target split between its species instead of being dropped.
  Sequence-level multi-label output is fusion's job (pooling crops), not the crop model's.
* **Whole frames (one-stage): sigmoid per column** over all 54 with binary cross-entropy, as the
  competition's winners did: a frame can hold several species, or none.
* **Imbalance: square-root inverse-frequency sampling.**  Each sample is drawn with probability
  proportional to (its class's count)^-1/2, so rare species are seen far more often than their share
  without repeating their handful of images as often as full inverse-frequency sampling would.
* **Batch-norm statistics recomputed before every evaluation** ("precise BN"): the running averages are
  replaced by the statistics of up to ``BN_STATS_IMAGES`` training images (un-augmented, as inference sees
  them) under the current weights.  EfficientNet-Lite's running averages move by 1% a step (TF's momentum
  0.99): on a small set (72 steps in all) they still held half of ImageNet's statistics while the weights had
  left ImageNet far behind, and validation top-1 swung between epochs (0.97, 0.94, 0.58, 0.64 on one seed) while
  the training loss went down.
* **Validation by group**: by season for the competition layout (the test seasons are unseen), by
  ``group_id`` for a CSV (photos of one burst stay on one side).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from camtrap.safeload import load_torch_file
from classifier.augment import CachedImages
from classifier.backbones import BACKBONES, DEFAULT_BACKBONE, create, head_parameters
from classifier.config import ClassifierTrainConfig
from classifier.data import SampleError, SampleSet, decode_cached
from classifier.distributed import BalancedDistributedSampler, Dist
from classifier.spec import CHECKPOINT_FORMAT, ModelSpec, ResizePolicy

__all__ = ["ClassifierTrainConfig", "TrainResult", "train", "split_groups", "class_metrics", "compare_initialisations"]

log = logging.getLogger(__name__)
BN_STATS_IMAGES = 256  # training images whose batch-norm statistics the evaluated and saved model carries


@dataclass(frozen=True)
class TrainResult:
    """Where the model went and how it did on validation."""

    model_path: Path
    spec: ModelSpec
    history: tuple[dict, ...]


def split_groups(groups: list[str], cfg: ClassifierTrainConfig) -> np.ndarray:
    """Boolean mask of validation samples: whole groups only."""
    uniq = sorted(set(groups))
    if cfg.val_groups:
        val = set(cfg.val_groups)
    elif all(g.startswith("S") and g[1:].isdigit() for g in uniq) and len(uniq) > 1:
        val = {max(uniq, key=lambda g: int(g[1:]))}
    else:  # deterministic, group-aware: order groups by a seeded permutation and take a fraction
        rng = np.random.default_rng(cfg.seed)
        order = [uniq[i] for i in rng.permutation(len(uniq))]
        val = set(order[: max(1, round(cfg.val_fraction * len(uniq)))])
    return np.array([g in val for g in groups])


def _spec(samples: SampleSet, cfg: ClassifierTrainConfig) -> ModelSpec:
    info = BACKBONES[cfg.backbone]
    size = cfg.input_size or info.input_size
    frames = samples.source == "frames"
    hw = (int(round(size * 3 / 4 / 32)) * 32, size) if frames else (size, size)
    return ModelSpec(cfg.backbone, hw, info.mean, info.std,
                     ResizePolicy.STRETCH if frames or samples.source.startswith("csv") else ResizePolicy.PAD_SQUARE,
                     samples.classes, samples.multilabel, crop_margin=cfg.margin)  # fmt: skip


def _sampler(targets: np.ndarray, balance: str, seed: int, dist: Dist) -> BalancedDistributedSampler:
    """Square-root (or full) inverse-frequency sampling, or a plain shuffle; this process's share of it."""
    weights = None
    if balance != "none":
        primary = targets.argmax(axis=1)
        counts = np.bincount(primary, minlength=targets.shape[1]).astype(float)
        weights = counts[primary] ** -(0.5 if balance == "sqrt" else 1.0)
    return BalancedDistributedSampler(weights, len(targets), dist, seed)


def _loss(logits: torch.Tensor, target: torch.Tensor, multilabel: bool, smoothing: float) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, target)
    if smoothing:
        target = target * (1 - smoothing) + smoothing / target.shape[1]
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def class_metrics(probs: np.ndarray, targets: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Top-1 accuracy and per-class support / recall / precision (argmax of target and prediction)."""
    truth, pred = targets.argmax(axis=1), probs.argmax(axis=1)
    per_class = {}
    for c in np.unique(np.concatenate([truth, pred])):
        support, predicted = int((truth == c).sum()), int((pred == c).sum())
        hit = int(((truth == c) & (pred == c)).sum())
        per_class[classes[c]] = {"support": support, "recall": hit / support if support else None,
                                 "precision": hit / predicted if predicted else None}  # fmt: skip
    return {"top1": float((truth == pred).mean()) if len(truth) else float("nan"), "per_class": per_class}


def _evaluate(model, loader, device, multilabel: bool) -> np.ndarray:
    model.eval()
    outs = []
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            logits = model(x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x).float()
            outs.append((torch.sigmoid(logits) if multilabel else logits.softmax(1)).cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 0))


def recompute_bn_stats(model: torch.nn.Module, images: torch.utils.data.Dataset, device: torch.device,
                       batch_size: int) -> int:
    """Replace every batch norm's running statistics by their mean over ``images`` (in batches, in order) under the
    model's current weights; returns the number of images seen (0: the model has no batch norm)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or not len(images):
        return 0
    momenta, was_training = [m.momentum for m in norms], model.training
    model.eval()  # dropout off (and no random numbers drawn): only the batch norms run in training mode
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    batch_size = min(batch_size, len(images))
    n = len(images) // batch_size * batch_size  # whole batches only (never a batch of one)
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        for start in range(0, n, batch_size):
            x = torch.stack([images[i][0] for i in range(start, min(start + batch_size, n))]).to(device)
            model(x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
    return n


def _save(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _epoch(model, loader, opt, sched, device, spec: ModelSpec, cfg: ClassifierTrainConfig,
           progress: Callable[[int], None] | None) -> float:
    model.train()
    total, n = 0.0, 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            loss = _loss(model(x).float(), y, spec.multilabel, cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total, n = total + float(loss.detach()) * len(x), n + len(x)
        if progress:
            progress(len(x))
    return total / max(n, 1)


@dataclass
class _Run:
    """Everything one training run holds."""

    spec: ModelSpec
    model: torch.nn.Module
    loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader
    opt: torch.optim.Optimizer
    sched: object
    device: torch.device
    targets: np.ndarray
    val_idx: np.ndarray
    summary: dict
    bn_images: CachedImages  # un-augmented training images for the batch-norm statistics (recompute_bn_stats)


def _setup(samples: SampleSet, cfg: ClassifierTrainConfig, cache_dir: Path, dist: Dist, bar) -> _Run:
    spec = _spec(samples, cfg)
    pixels, ok = decode_cached(samples, spec, cache_dir, progress=bar("decode", 0, len(samples.samples)))
    targets = samples.targets()
    is_val = split_groups([s.group for s in samples.samples], cfg)
    train_idx, val_idx = np.flatnonzero(ok & ~is_val), np.flatnonzero(ok & is_val)
    if not len(train_idx):
        raise SampleError(f"no readable training samples ({int(ok.sum())} of {len(ok)} images could be read, "
                          f"{int((ok & is_val).sum())} of them held out for validation)")
    name = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(f"cuda:{dist.rank}" if name == "cuda" and dist.world > 1 else name)
    model = create(cfg.backbone, len(spec.classes), cfg.pretrained).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    sampler = _sampler(targets[train_idx], cfg.balance, cfg.seed, dist)
    batch = max(1, cfg.batch_size // dist.world)  # the batch size is global: each process takes its share
    loader = torch.utils.data.DataLoader(CachedImages(pixels, train_idx, targets, spec, cfg.augment),
                                         batch_size=batch, num_workers=cfg.workers, sampler=sampler,
                                         pin_memory=device.type == "cuda")  # fmt: skip
    val_loader = torch.utils.data.DataLoader(CachedImages(pixels, val_idx, targets, spec, None),
                                             batch_size=cfg.batch_size * 2, num_workers=cfg.workers)  # fmt: skip
    head = {id(p) for p in head_parameters(model, cfg.backbone)}
    groups = [{"params": [p for p in model.parameters() if id(p) not in head], "lr": cfg.lr},
              {"params": [p for p in model.parameters() if id(p) in head], "lr": cfg.lr * cfg.head_lr_mult}]
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(sampler) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=max(steps, 1),
                                                pct_start=0.15)  # fmt: skip
    summary = {"recipe": "full", "source": samples.source, "train_samples": int(len(train_idx)),
               "val_samples": int(len(val_idx)), "val_groups": sorted({samples.samples[i].group for i in val_idx}),
               "epochs": cfg.epochs, "processes": dist.world,
               "pretrained": cfg.pretrained if isinstance(cfg.pretrained, bool) else str(cfg.pretrained),
               "balance": cfg.balance, "unreadable": int((~ok).sum())}  # fmt: skip
    bn_idx = np.random.default_rng(cfg.seed).permutation(train_idx)[:BN_STATS_IMAGES]  # shuffled: batches mix classes
    return _Run(spec, model, loader, val_loader, opt, sched, device, targets, val_idx, summary,
                CachedImages(pixels, bn_idx, targets, spec, None))  # fmt: skip


def _resume(run: _Run, last_path: Path, cfg: ClassifierTrainConfig) -> tuple[int, list, float]:
    state = load_torch_file(last_path)
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    log.info("resuming from epoch %d of %d (%s)", state["epoch"] + 2, cfg.epochs, last_path)
    return state["epoch"] + 1, list(state["history"]), state["best"]


def train(samples: SampleSet, out: Path, cfg: ClassifierTrainConfig, *, cache_dir: Path, resume: bool = False,
          progress: Callable[[str, int, int], Callable[[int], None]] | None = None,
          dist: Dist = Dist()) -> TrainResult | None:  # noqa: B008
    """Train on ``samples``; writes ``out`` (best validation epoch) and ``out.last.pt`` (every epoch, for resume).

    ``progress(stage, epoch, total)`` returns a callback advanced by items done (for progress bars).  With
    ``cfg.recipe`` "fewshot" (or "auto" on few samples per class) the few-shot recipe runs instead
    (:mod:`classifier.recipes`).  In a process group (``dist``, see :mod:`classifier.distributed`) only process 0
    evaluates, writes and returns the result; the others return None.
    """
    from classifier.recipes import resolve_recipe, train_fewshot

    if resolve_recipe(samples, cfg) == "fewshot":
        if cfg.input_size is not None:
            log.warning("input size %d applies to the full recipe only; the few-shot recipe uses its backbones' "
                        "native sizes (recipe 'full' fine-tunes at %d)", cfg.input_size, cfg.input_size)
        return train_fewshot(samples, out, cfg, cache_dir=cache_dir, progress=progress)
    torch.manual_seed(cfg.seed)
    bar = (progress if dist.main else None) or (lambda *_: None)
    run = _setup(samples, cfg, cache_dir, dist, bar)
    last_path = out.with_name(out.stem + ".last.pt")
    start, history, best = _resume(run, last_path, cfg) if resume and last_path.exists() else (0, [], -1.0)
    model = run.model
    if dist.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[run.device] if run.device.type == "cuda"
                                                          else None)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    for epoch in range(start, cfg.epochs):
        run.loader.sampler.set_epoch(epoch)
        loss = _epoch(model, run.loader, run.opt, run.sched, run.device, run.spec, cfg,
                      bar("train", epoch + 1, len(run.loader.sampler)))  # fmt: skip
        if dist.main:
            best = _end_epoch(run, cfg, out, last_path, epoch, loss, history, best)
        dist.barrier()
    if not dist.main:
        return None
    saved = load_torch_file(out)
    return TrainResult(out, ModelSpec.from_json(saved["spec"]), tuple(history))


def _end_epoch(run: _Run, cfg: ClassifierTrainConfig, out: Path, last_path: Path, epoch: int, loss: float,
               history: list, best: float) -> float:  # fmt: skip
    """Recompute the batch-norm statistics, evaluate, log, and write the checkpoints of one epoch (process 0);
    returns the best score so far."""
    run.summary["bn_stats_images"] = recompute_bn_stats(run.model, run.bn_images, run.device, cfg.batch_size * 2)
    probs = _evaluate(run.model, run.val_loader, run.device, run.spec.multilabel)
    val_targets = run.targets[run.val_idx]
    metrics = class_metrics(probs, val_targets, run.spec.classes) if len(run.val_idx) else {"top1": float("nan")}
    history.append({"epoch": epoch + 1, "train_loss": loss, "val_top1": metrics["top1"],
                    "per_class": metrics.get("per_class", {})})  # fmt: skip
    log.info("epoch %d/%d: loss %.4f, val top-1 %.3f", epoch + 1, cfg.epochs, loss, metrics["top1"])
    score = metrics["top1"] if not math.isnan(metrics["top1"]) else epoch
    spec = dataclasses.replace(run.spec, training={**run.summary, "val_top1": metrics["top1"], "epoch": epoch + 1})
    state = run.model.state_dict()
    if score >= best:
        best = score
        _save(out, {"format": CHECKPOINT_FORMAT, "spec": spec.to_json(), "model": state, "history": history})
    _save(last_path, {"model": state, "optimizer": run.opt.state_dict(), "scheduler": run.sched.state_dict(),
                      "epoch": epoch, "history": history, "best": best, "rng": torch.get_rng_state(),
                      "config": dataclasses.asdict(cfg)})  # fmt: skip
    return best


def compare_initialisations(samples: SampleSet, val_groups: tuple[str, ...], work: Path, *, epochs: int, size: int,
                            backbone: str = DEFAULT_BACKBONE) -> dict[str, float]:
    """Final-epoch validation top-1 of ``backbone`` fine-tuned from ImageNet weights and trained from scratch,
    with identical data, split and schedule."""
    out: dict[str, float] = {}
    for name, pretrained in (("pretrained", True), ("scratch", False)):
        cfg = ClassifierTrainConfig(backbone=backbone, input_size=size, epochs=epochs, batch_size=16, lr=2e-4,
                                    head_lr_mult=20, pretrained=pretrained, val_groups=val_groups,
                                    device="cpu")  # fmt: skip
        result = train(samples, work / f"{name}.pt", cfg, cache_dir=work / "cache")
        out[name] = float(result.history[-1]["val_top1"])
        out["train_images"] = float(result.spec.training["train_samples"])
        out["val_images"] = float(result.spec.training["val_samples"])
    return out
