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
from classifier.data import SampleSet, decode_cached
from classifier.spec import CHECKPOINT_FORMAT, ModelSpec, ResizePolicy

__all__ = ["ClassifierTrainConfig", "TrainResult", "train", "split_groups", "class_metrics", "compare_initialisations"]

log = logging.getLogger(__name__)


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


def _sampler(targets: np.ndarray, balance: str, seed: int) -> torch.utils.data.Sampler | None:
    if balance == "none":
        return None
    primary = targets.argmax(axis=1)
    counts = np.bincount(primary, minlength=targets.shape[1]).astype(float)
    power = 0.5 if balance == "sqrt" else 1.0
    weights = counts[primary] ** -power
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights), len(weights), generator=gen)


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


def train(samples: SampleSet, out: Path, cfg: ClassifierTrainConfig, *, cache_dir: Path, resume: bool = False,
          progress: Callable[[str, int, int], Callable[[int], None]] | None = None) -> TrainResult:
    """Train on ``samples``; writes ``out`` (best validation epoch) and ``out.last.pt`` (every epoch, for resume).

    ``progress(stage, epoch, total)`` returns a callback advanced by items done (for progress bars).  With
    ``cfg.recipe`` "fewshot" (or "auto" on few samples per class) the few-shot recipe runs instead
    (:mod:`classifier.recipes`).
    """
    from classifier.recipes import resolve_recipe, train_fewshot

    if resolve_recipe(samples, cfg) == "fewshot":
        return train_fewshot(samples, out, cfg, cache_dir=cache_dir, progress=progress)
    torch.manual_seed(cfg.seed)
    spec = _spec(samples, cfg)
    bar = progress or (lambda *_: None)
    pixels, ok = decode_cached(samples, spec, cache_dir, progress=bar("decode", 0, len(samples.samples)))
    targets = samples.targets()
    is_val = split_groups([s.group for s in samples.samples], cfg)
    train_idx, val_idx = np.flatnonzero(ok & ~is_val), np.flatnonzero(ok & is_val)
    if not len(train_idx):
        raise ValueError("no readable training samples")
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = create(cfg.backbone, len(spec.classes), cfg.pretrained).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    train_ds = CachedImages(pixels, train_idx, targets, spec, cfg.augment)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=cfg.batch_size, num_workers=cfg.workers, drop_last=False,
                                         sampler=_sampler(targets[train_idx], cfg.balance, cfg.seed),
                                         shuffle=cfg.balance == "none", pin_memory=device.type == "cuda")  # fmt: skip
    val_loader = torch.utils.data.DataLoader(CachedImages(pixels, val_idx, targets, spec, None),
                                             batch_size=cfg.batch_size * 2, num_workers=cfg.workers)  # fmt: skip
    head = {id(p) for p in head_parameters(model, cfg.backbone)}
    groups = [{"params": [p for p in model.parameters() if id(p) not in head], "lr": cfg.lr},
              {"params": [p for p in model.parameters() if id(p) in head], "lr": cfg.lr * cfg.head_lr_mult}]
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(train_idx) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=max(steps, 1),
                                                pct_start=0.15)  # fmt: skip
    last_path = out.with_name(out.stem + ".last.pt")
    start, history, best = 0, [], -1.0
    if resume and last_path.exists():
        state = load_torch_file(last_path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history, best = state["epoch"] + 1, list(state["history"]), state["best"]
        torch.set_rng_state(state["rng"])
        log.info("resuming from epoch %d of %d (%s)", start + 1, cfg.epochs, last_path)
    summary = {"recipe": "full", "source": samples.source, "train_samples": int(len(train_idx)),
               "val_samples": int(len(val_idx)), "val_groups": sorted({samples.samples[i].group for i in val_idx}),
               "epochs": cfg.epochs,
               "pretrained": cfg.pretrained if isinstance(cfg.pretrained, bool) else str(cfg.pretrained),
               "balance": cfg.balance, "unreadable": int((~ok).sum())}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    for epoch in range(start, cfg.epochs):
        loss = _epoch(model, loader, opt, sched, device, spec, cfg, bar("train", epoch + 1, len(train_idx)))
        probs = _evaluate(model, val_loader, device, spec.multilabel)
        metrics = class_metrics(probs, targets[val_idx], spec.classes) if len(val_idx) else {"top1": float("nan")}
        history.append({"epoch": epoch + 1, "train_loss": loss, "val_top1": metrics["top1"],
                        "per_class": metrics.get("per_class", {})})  # fmt: skip
        log.info("epoch %d/%d: loss %.4f, val top-1 %.3f", epoch + 1, cfg.epochs, loss, metrics["top1"])
        score = metrics["top1"] if not math.isnan(metrics["top1"]) else epoch
        final_spec = dataclasses.replace(spec, training={**summary, "val_top1": metrics["top1"], "epoch": epoch + 1})
        if score >= best:
            best = score
            _save(out, {"format": CHECKPOINT_FORMAT, "spec": final_spec.to_json(), "model": model.state_dict(),
                        "history": history})
        _save(last_path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                          "epoch": epoch, "history": history, "best": best, "rng": torch.get_rng_state(),
                          "config": dataclasses.asdict(cfg)})  # fmt: skip
    saved = load_torch_file(out)
    return TrainResult(out, ModelSpec.from_json(saved["spec"]), tuple(history))


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
