"""The few-shot head: a frozen ImageNet backbone, a linear head fitted on its features, and the backbone's own
ImageNet head as a zero-shot prior (:mod:`classifier.imagenet_prior`).

    logits = W . standardise(features) + b + alpha * log P_imagenet(classes standing for each group)

W and b are fitted by L-BFGS with an L2 penalty on both (the bias too: with one or two photos per class, an
unpenalised bias learns "this class is rare" and costs more than it knows); alpha, one number, says how far to
trust the ImageNet hints.  Features and prior come from the image and its mirror (flip TTA), as rows for
fitting and averaged probabilities for prediction.  The whole model is an ``nn.Module`` (:class:`ProbeClassifier`)
that exports to ONNX and runs wherever a fine-tuned classifier runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from classifier.backbones import BACKBONES, create, imagenet_categories, split_head
from classifier.imagenet_prior import NO_HINT_LOGP, hint_matrix

__all__ = ["ProbeClassifier", "ProbeFit", "Embeddings", "embed", "fit_head", "head_logits", "probs_of",
           "training_loss", "scaled_size"]


def scaled_size(backbone: str, scale: float) -> int:
    """The input side a backbone runs at: its native size times ``scale`` (a multiple of 2)."""
    return 2 * round(BACKBONES[backbone].input_size * scale / 2)


class ProbeClassifier(nn.Module):
    """Frozen backbones' features (concatenated) -> standardised -> linear head, plus ``alpha`` x the ImageNet
    zero-shot prior (averaged over the backbones).  Input comes at ``input_size``; each backbone sees it resized to
    its native size times ``scale``.  With ``views`` > 1 the input is a mosaic (:mod:`classifier.views`): that many
    ``input_size`` square tiles stacked top to bottom, whose features and priors are averaged."""

    def __init__(self, backbones: tuple[str, ...], classes: tuple[str, ...], *, input_size: int,
                 multilabel: bool = False, pretrained: bool | str = False, views: int = 1,
                 scale: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        bodies, heads = zip(*(split_head(create(b, None, pretrained), b) for b in backbones))
        self.bodies, self.imagenet = nn.ModuleList(bodies), nn.ModuleList(heads)
        self.sizes = [scaled_size(b, scale) for b in backbones]
        self.input_size, self.views = input_size, views
        dim = sum(h.in_features for h in heads)
        hints = torch.from_numpy(hint_matrix(classes, imagenet_categories()))
        self.register_buffer("hints", hints)
        self.register_buffer("has_hint", hints.sum(dim=1) > 0)
        self.register_buffer("mu", torch.zeros(dim))
        self.register_buffer("sd", torch.ones(dim))
        self.head = nn.Linear(dim, len(classes))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.multilabel = multilabel

    def prior(self, imagenet_logits: torch.Tensor) -> torch.Tensor:
        """log of the ImageNet probability on each class's hint classes (a constant where there is none)."""
        mass = imagenet_logits.softmax(dim=1) @ self.hints.T
        return torch.where(self.has_hint, mass.clamp_min(1e-6).log(), torch.full_like(mass, NO_HINT_LOGP))

    def parts(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(features, ImageNet logits) of each backbone for a normalised batch of single tiles at ``input_size``."""
        out = []
        for body, head, size in zip(self.bodies, self.imagenet, self.sizes):
            xi = x if size == self.input_size else F.interpolate(x, size=(size, size), mode="bilinear",
                                                             align_corners=False)  # fmt: skip (ONNX-exportable)
            f = body(xi)
            out.append((f, head(f)))
        return out

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, zero-shot prior) of a normalised batch (of mosaics: pooled over their views)."""
        v, t = self.views, x.shape[-1]
        if v > 1:
            x = x.reshape(-1, 3, v, t, t).transpose(1, 2).reshape(-1, 3, t, t)
        feats, priors = [], []
        for f, logits in self.parts(x):
            feats.append(f.reshape(-1, v, f.shape[1]).mean(dim=1))
            p = self.prior(logits)
            priors.append(p.reshape(-1, v, p.shape[1]).mean(dim=1))
        return torch.cat(feats, dim=1), torch.stack(priors).mean(dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, prior = self.embed(x)
        return self.head((feats - self.mu) / self.sd) + self.alpha * prior


@dataclass(frozen=True)
class Embeddings:
    """Features and prior of N images and their mirrors: ``features`` (2, N, D), ``prior`` (2, N, C)."""

    features: np.ndarray
    prior: np.ndarray


def embed(model: ProbeClassifier, batches, mean: tuple, std: tuple) -> Embeddings:
    """Embed uint8 batches (N x H x W x 3 numpy, at the input size) and their mirror images."""
    m = torch.tensor(mean).view(1, 3, 1, 1) * 255
    s = torch.tensor(std).view(1, 3, 1, 1) * 255
    feats: list[list[np.ndarray]] = [[], []]
    priors: list[list[np.ndarray]] = [[], []]
    model.eval()
    with torch.inference_mode():
        for batch in batches:
            x = (torch.from_numpy(np.array(batch)).permute(0, 3, 1, 2).float() - m) / s  # a copy: caches are read-only
            for k, view in enumerate((x, x.flip(-1))):
                f, p = model.embed(view.contiguous(memory_format=torch.channels_last))
                feats[k].append(f.numpy())
                priors[k].append(p.numpy())
    return Embeddings(np.stack([np.concatenate(f) for f in feats]), np.stack([np.concatenate(p) for p in priors]))


@dataclass(frozen=True)
class ProbeFit:
    """A fitted head: weights (D x C), bias (C), prior weight, and the feature standardisation."""

    weight: np.ndarray
    bias: np.ndarray
    alpha: float
    mu: np.ndarray
    sd: np.ndarray

    def with_absent(self, present: np.ndarray, bias: float | None) -> ProbeFit:
        """This head with every class not in ``present`` (a mask) given no weights and the others' mean bias plus
        ``bias``: its logit is then the zero-shot prior plus a constant, not what L2 left of "never seen".  ``None``
        (or every class present): the head as fitted."""
        if bias is None or present.all() or not present.any():
            return self
        weight, b = self.weight.copy(), self.bias.copy()
        weight[:, ~present] = 0.0
        b[~present] = self.bias[present].mean() + bias
        return ProbeFit(weight, b, self.alpha, self.mu, self.sd)

    def load_into(self, model: ProbeClassifier) -> ProbeClassifier:
        with torch.no_grad():
            model.head.weight.copy_(torch.from_numpy(self.weight.T.astype(np.float32)))
            model.head.bias.copy_(torch.from_numpy(self.bias.astype(np.float32)))
            model.alpha.fill_(float(self.alpha))
            model.mu.copy_(torch.from_numpy(self.mu.astype(np.float32)))
            model.sd.copy_(torch.from_numpy(self.sd.astype(np.float32)))
        return model


def training_loss(z: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """The head's data term: mean cross-entropy against (soft) one-hot targets, or binary for multi-label."""
    if multilabel:
        return F.binary_cross_entropy_with_logits(z, y)
    return -(y * F.log_softmax(z, dim=1)).sum(dim=1).mean()


def _row_span(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x in an orthonormal basis of its rows' span: n x r, that basis: r x D), from the n x n Gram matrix."""
    vals, vecs = np.linalg.eigh(x @ x.T)
    keep = vals > vals.max() * 1e-10
    s = np.sqrt(vals[keep])
    return vecs[:, keep] * s, (vecs[:, keep] / s).T @ x


def fit_head(emb: Embeddings, targets: np.ndarray, index: np.ndarray, *, l2: float, use_prior: bool = True,
             multilabel: bool = False, iterations: int = 200) -> ProbeFit:  # fmt: skip
    """Fit W, b (and alpha) on the samples ``index`` (both views as rows) by L-BFGS; L2 ``l2`` on W and b."""
    x = np.concatenate([f[index] for f in emb.features]).astype(np.float64)  # every view a row
    mu, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs, basis = (x - mu) / sd, None
    if xs.shape[1] > xs.shape[0]:  # fewer rows than features: fit in the rows' span (the same L-BFGS path, cheaper)
        xs, basis = _row_span(xs)
    xs = torch.from_numpy(xs)
    prior = torch.from_numpy(np.concatenate([p[index] for p in emb.prior]).astype(np.float64))
    y = torch.from_numpy(np.concatenate([targets[index]] * len(emb.features)).astype(np.float64))
    w = torch.zeros(xs.shape[1], y.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(y.shape[1], dtype=torch.float64, requires_grad=True)
    a = torch.zeros(1, dtype=torch.float64, requires_grad=use_prior)
    params = [w, b, a] if use_prior else [w, b]
    opt = torch.optim.LBFGS(params, max_iter=iterations, line_search_fn="strong_wolfe", tolerance_grad=1e-9)

    def closure():
        opt.zero_grad()
        loss = training_loss(xs @ w + b + a * prior, y, multilabel) + l2 * ((w**2).sum() + (b**2).sum())
        loss.backward()
        return loss

    opt.step(closure)
    weight = w.detach().numpy() if basis is None else basis.T @ w.detach().numpy()
    return ProbeFit(weight, b.detach().numpy(), float(a.detach()[0]), mu, sd)


def head_logits(fit: ProbeFit, emb: Embeddings, index: np.ndarray) -> np.ndarray:
    """Logits (2 views, N, C) of samples ``index`` under a fitted head."""
    return np.stack([((emb.features[k][index] - fit.mu) / fit.sd) @ fit.weight + fit.bias
                     + fit.alpha * emb.prior[k][index] for k in range(len(emb.features))])  # fmt: skip


def probs_of(logits: np.ndarray, *, multilabel: bool = False, temperature: float = 1.0) -> np.ndarray:
    """Probabilities from per-view logits (views averaged after softmax/sigmoid)."""
    z = torch.from_numpy(np.asarray(logits, np.float64)) / temperature
    p = torch.sigmoid(z) if multilabel else torch.softmax(z, dim=-1)
    return p.mean(dim=0).numpy()
