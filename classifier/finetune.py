"""LP-FT: gentle fine-tuning after the linear probe (the ``fewshot`` recipe's optional second step).

The probe's head is fitted first (:mod:`classifier.probe`); starting from it, the backbone is then fine-tuned with a
small learning rate that decays layer by layer towards the input (the last block learns at ``finetune_lr``, each
earlier one at ``finetune_layer_decay`` times the next), batch-norm statistics frozen, random mirror images, and
the head's own L2 penalty.  Starting from a good head is what keeps the features from being destroyed (Kumar et
al., 2022, "Fine-Tuning can Distort Pretrained Features").

How many epochs (0 to ``finetune_epochs``: 0 keeps the probe) is chosen by group cross-validation on the training
photos, like every other few-shot choice; the out-of-fold logits of the chosen count are what the temperature is
fitted on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn

from classifier.config import FewShotConfig
from classifier.probe import Embeddings, ProbeClassifier, ProbeFit, fit_head, head_logits, training_loss

__all__ = ["finetune", "choose_epochs", "layerwise_groups"]

log = logging.getLogger(__name__)


def _units(body: nn.Module) -> list[nn.Module]:
    """The body's layers from input to output, containers of blocks opened one level."""
    units: list[nn.Module] = []
    for child in body.children():
        units.extend(child.children() if isinstance(child, nn.ModuleList | nn.Sequential) else [child])
    return [u for u in units if any(p.requires_grad for p in u.parameters())]


def layerwise_groups(model: ProbeClassifier, lr: float, decay: float) -> list[dict]:
    """Optimizer parameter groups: the head (and prior weight) at ``lr``, each body layer at ``lr * decay**depth``
    counted from the output.  The ImageNet heads behind the zero-shot prior are left as they are."""
    groups = [{"params": [*model.head.parameters(), model.alpha], "lr": lr}]
    for body in model.bodies:
        units = _units(body)
        groups += [{"params": list(u.parameters()), "lr": lr * decay ** (len(units) - 1 - i)}
                   for i, u in enumerate(units)]  # fmt: skip
    return groups


def _batch(pixels: np.ndarray, idx: np.ndarray, mean: torch.Tensor, std: torch.Tensor, device) -> torch.Tensor:
    x = torch.from_numpy(np.array(pixels[idx])).to(device).permute(0, 3, 1, 2).float()
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def _view_logits(model: ProbeClassifier, pixels: np.ndarray, idx: np.ndarray, mean, std, device) -> np.ndarray:
    """(2, len(idx), C) logits of the photos and their mirrors, as :func:`classifier.probe.head_logits` gives."""
    model.eval()
    out: list[list[np.ndarray]] = [[], []]
    with torch.inference_mode():
        for k in range(0, len(idx), 32):
            x = _batch(pixels, idx[k : k + 32], mean, std, device)
            for v, view in enumerate((x, x.flip(-1))):
                out[v].append(model(view).float().cpu().numpy())
    return np.stack([np.concatenate(o) for o in out]) if len(idx) else np.zeros((2, 0, model.head.out_features))


def finetune(model: ProbeClassifier, pixels: np.ndarray, targets: np.ndarray, index: np.ndarray,
             cfg: FewShotConfig, *, l2: float, epochs: int, normalise: tuple[tuple, tuple], device: str = "cpu",
             eval_index: np.ndarray | None = None) -> list[np.ndarray]:  # fmt: skip
    """Fine-tune ``model`` in place on samples ``index`` (``pixels``: N x H x W x 3 uint8 at the model's input
    size, ``normalise``: its spec's (mean, std)) for ``epochs`` epochs on ``device``; the model ends on the CPU
    in eval mode.  With ``eval_index``, returns the (2, n, C) logits of those samples after each epoch; else an
    empty list."""
    mean = torch.tensor(normalise[0], device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(normalise[1], device=device).view(1, 3, 1, 1) * 255
    model.to(device)
    opt = torch.optim.AdamW(layerwise_groups(model, cfg.finetune_lr, cfg.finetune_layer_decay), weight_decay=0.0)
    y = torch.from_numpy(targets).float().to(device)
    rng = np.random.default_rng(cfg.seed)
    history = []
    for epoch in range(epochs):
        model.train()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()  # a few photos per batch: ImageNet statistics stay
        order = rng.permutation(index)
        for k in range(0, len(order), cfg.finetune_batch_size):
            b = order[k : k + cfg.finetune_batch_size]
            x = _batch(pixels, b, mean, std, device)
            flip = torch.from_numpy(rng.random(len(b)) < 0.5).to(device)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            penalty = model.head.weight.pow(2).sum() + model.head.bias.pow(2).sum()
            loss = training_loss(model(x), y[b], model.multilabel) + l2 * penalty
            opt.zero_grad()
            loss.backward()
            opt.step()
        if eval_index is not None:
            history.append(_view_logits(model, pixels, eval_index, mean, std, device))
        log.debug("fine-tuning epoch %d/%d done", epoch + 1, epochs)
    model.eval().to("cpu")
    return history


def choose_epochs(build: Callable[[ProbeFit], ProbeClassifier], emb: Embeddings, pixels: np.ndarray,
                  targets: np.ndarray, index: np.ndarray, groups: list[str], cfg: FewShotConfig, *, l2: float,
                  normalise: tuple[tuple, tuple], multilabel: bool, log_loss: Callable[[np.ndarray, np.ndarray], float],
                  device: str = "cpu") -> tuple[int, np.ndarray]:  # fmt: skip
    """The number of fine-tuning epochs (0 .. ``cfg.finetune_epochs``) with the lowest group-CV log loss on
    samples ``index`` (``groups``: theirs), and the out-of-fold (2, len(index), C) logits of that count.

    ``build(fit)`` makes a fresh pretrained :class:`ProbeClassifier` holding the probe ``fit``;
    ``log_loss(logits, targets)`` scores out-of-fold logits."""
    from classifier.fewshot import group_folds

    k = max(2, min(cfg.finetune_folds, len(set(groups))))
    folds = group_folds(groups, k, cfg.seed + 2)
    oof = np.zeros((cfg.finetune_epochs + 1, 2, len(index), targets.shape[1]))
    for f in range(k):
        train, test = index[folds != f], index[folds == f]
        fit = fit_head(emb, targets, train, l2=l2, use_prior=cfg.use_prior, multilabel=multilabel)
        oof[0][:, folds == f] = head_logits(fit, emb, test)
        history = finetune(build(fit), pixels, targets, train, cfg, l2=l2, epochs=cfg.finetune_epochs,
                           normalise=normalise, device=device, eval_index=test)  # fmt: skip
        for e, logits in enumerate(history, start=1):
            oof[e][:, folds == f] = logits
    losses = [log_loss(o, targets[index]) for o in oof]
    best = int(np.argmin(losses))
    log.info("fine-tuning epochs by group CV: log loss %s -> %d epoch(s)",
             " ".join(f"{e}:{v:.4f}" for e, v in enumerate(losses)), best)  # fmt: skip
    return best, oof[best]
