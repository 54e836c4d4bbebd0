"""Frozen-backbone features of every view of every photo, extracted once and cached on disk.

The cache holds, per backbone, tile size and scale (one file each), the features and ImageNet logits of each
(photo, view, mirror): a photo is known by its path, size and modification time, its box and the decode
settings, so a changed file is extracted again and an unchanged one never is.  Pooling a subset of views and the
zero-shot prior for any class list are computed from the cache (:func:`pooled`), so comparing view sets, framings
and class lists costs no extraction.  Tiles are cut exactly as inference cuts them (:mod:`classifier.views`,
through the spec), and run through the same :class:`classifier.probe.ProbeClassifier` code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camtrap.stream import ordered_map
from classifier.data import Sample, SampleSet, decode_sample
from classifier.imagenet_prior import NO_HINT_LOGP, hint_matrix
from classifier.probe import Embeddings
from classifier.spec import ModelSpec
from classifier.views import tiles_of

__all__ = ["ViewFeatures", "photo_identity", "view_features", "pooled", "extraction_count"]

log = logging.getLogger(__name__)
BATCH = 8  # photos decoded ahead
_extracted = [0]  # photos pushed through a backbone by this process (tests: a second run extracts nothing)


def extraction_count() -> int:
    """How many (photo, backbone) extractions this process has run (cache misses)."""
    return _extracted[0]


@dataclass(frozen=True)
class ViewFeatures:
    """Per-view features ``(2, N, V, D)`` and ImageNet logits ``(2, N, V, 1000)`` of N photos (axis 0: the
    photo and its mirror), and which photos could be read."""

    views: tuple[str, ...]
    features: np.ndarray
    logits: np.ndarray
    ok: np.ndarray


def photo_identity(sample: Sample, spec: ModelSpec) -> str:
    """What a photo's tiles depend on: its file (path, size, mtime), its box, and how it is decoded and cut."""
    path = sample.frame.path
    try:
        st = os.stat(path) if path is not None else None
        stamp = f"{st.st_size}:{st.st_mtime_ns}" if st else "missing"
    except OSError:
        stamp = "missing"
    text = f"{path}|{stamp}|{sample.bbox_xywh_norm}|{spec.crop_margin}|{spec.source_max_side}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _store_path(cache_dir: Path, backbone: str, spec: ModelSpec) -> Path:
    return cache_dir / f"views-{backbone}-t{spec.input_hw[1]}-s{spec.scale:g}.npz"


def _load_store(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    if not path.exists():
        return {}
    with np.load(path) as z:
        keys, feats, logits, bad = z["keys"], z["features"], z["logits"], z["bad"]  # each read once
    store: dict = {str(k): (feats[i], logits[i]) for i, k in enumerate(keys)}
    store.update({str(k): None for k in bad})
    return store


def _save_store(path: Path, store: dict) -> None:
    good = [k for k, v in store.items() if v is not None]
    if not good:
        return
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, keys=np.array(good), features=np.stack([store[k][0] for k in good]),
             logits=np.stack([store[k][1] for k in good]),
             bad=np.array([k for k, v in store.items() if v is None], dtype=str))  # fmt: skip
    os.replace(tmp, path)


def _forward(model, tiles: np.ndarray, mean, std) -> tuple[np.ndarray, np.ndarray]:
    """(features (2, V, D), logits (2, V, 1000)) of one photo's V tiles and their mirrors; a tile equal to an
    earlier one (the three squares of a square photo, ``shape`` = ``stretch``) is run once."""
    import torch

    first = [next(j for j in range(i + 1) if np.array_equal(tiles[j], tiles[i])) for i in range(len(tiles))]
    unique = sorted(set(first))
    x = torch.from_numpy(np.ascontiguousarray(tiles[unique])).permute(0, 3, 1, 2).float()
    x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        (f0, l0), (f1, l1) = (model.parts(view)[0] for view in (x, x.flip(-1)))
    back = [unique.index(j) for j in first]
    return torch.stack([f0, f1]).numpy()[:, back], torch.stack([l0, l1]).numpy()[:, back]


def _extract(samples: list[Sample], spec: ModelSpec, backbone: str, progress) -> list[tuple | None]:
    """Per photo: (features (2, V, D), logits (2, V, 1000)) of the spec's views, or None when unreadable."""
    import torch

    from classifier.backbones import BACKBONES, for_inference
    from classifier.probe import ProbeClassifier

    model = ProbeClassifier((backbone,), spec.classes, input_size=spec.input_hw[1], pretrained=True,
                            scale=spec.scale)  # fmt: skip
    model.bodies[0] = for_inference(model.bodies[0], backbone).eval()
    info, v = BACKBONES[backbone], len(spec.views)
    mean = torch.tensor(info.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(info.std).view(1, 3, 1, 1) * 255
    out: list[tuple | None] = []
    decoded = ordered_map(lambda s: decode_sample(s, spec), samples, workers=2, lookahead=BATCH)
    for m in decoded:
        out.append(None if m is None else _forward(model, tiles_of(m[None], v)[0], mean, std))
        _extracted[0] += m is not None
        if progress:
            progress(1)
    return out


def view_features(samples: SampleSet, backbone: str, spec: ModelSpec, cache_dir: Path,
                  progress: Callable[[int], None] | None = None) -> ViewFeatures:  # fmt: skip
    """Features of ``spec.views`` of every sample under ``backbone`` (tile size ``spec.input_hw[1]``, backbone at
    its native size x ``spec.scale``), from the cache where it has them; ``progress`` counts photos looked at."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = _store_path(cache_dir, backbone, spec)
    store = _load_store(path)
    ids = [photo_identity(s, spec) for s in samples.samples]
    keys = [[f"{i}:{v}" for v in spec.views] for i in ids]
    todo = [j for j, ks in enumerate(keys) if any(k not in store for k in ks) and ids[j] + ":bad" not in store]
    if progress and len(samples.samples) - len(todo):
        progress(len(samples.samples) - len(todo))
    if todo:
        log.info("%s: extracting %d photo(s) x %d view(s) (%d cached)", backbone, len(todo), len(spec.views),
                 len(samples.samples) - len(todo))  # fmt: skip
        start = time.perf_counter()
        got_all = _extract([samples.samples[j] for j in todo], spec, backbone, progress)
        took = time.perf_counter() - start
        log.info("%s: %d photo(s) x %d view(s) in %.0f s (%.0f s per 100 photos)", backbone, len(todo), len(spec.views),
                 took, 100 * took / len(todo))  # fmt: skip
        for j, got in zip(todo, got_all):
            if got is None:
                store[ids[j] + ":bad"] = None
                continue
            for vi, key in enumerate(keys[j]):
                store[key] = (got[0][:, vi].astype(np.float32), got[1][:, vi].astype(np.float32))
        _save_store(path, store)
    ok = np.array([ids[j] + ":bad" not in store for j in range(len(ids))])
    dim = next((store[ks[0]][0].shape[-1] for ks, good in zip(keys, ok) if good), 1)
    feats = np.zeros((2, len(ids), len(spec.views), dim), np.float32)
    logits = np.zeros((2, len(ids), len(spec.views), 1000), np.float32)
    for j in np.flatnonzero(ok):
        for vi, key in enumerate(keys[j]):
            feats[:, j, vi], logits[:, j, vi] = store[key]
    return ViewFeatures(spec.views, feats, logits, ok)


def _prior(logits: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """The zero-shot prior of :meth:`classifier.probe.ProbeClassifier.prior`, from ImageNet logits (..., 1000)."""
    from classifier.backbones import imagenet_categories

    hints = hint_matrix(classes, imagenet_categories()).astype(np.float64)
    z = logits.astype(np.float64)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    mass = (p / p.sum(axis=-1, keepdims=True)) @ hints.T
    return np.where(hints.sum(axis=1) > 0, np.log(np.clip(mass, 1e-6, None)), NO_HINT_LOGP)


def pooled(parts: list[ViewFeatures], views: tuple[str, ...], classes: tuple[str, ...]) -> Embeddings:
    """Embeddings of a backbone set (``parts``: one per backbone) with ``views`` pooled: features averaged over
    the views and concatenated over backbones, the prior averaged over views and backbones -- what
    :meth:`classifier.probe.ProbeClassifier.embed` computes from the mosaic of those views."""
    feats, priors = [], []
    for part in parts:
        idx = [part.views.index(v) for v in views]
        feats.append(part.features[:, :, idx].mean(axis=2))
        priors.append(_prior(part.logits[:, :, idx], classes).mean(axis=2))
    return Embeddings(np.concatenate(feats, axis=-1), np.mean(priors, axis=0))


def views_spec(spec: ModelSpec, views: tuple[str, ...]) -> ModelSpec:
    """``spec`` with ``views`` as its mosaic (input ``len(views)`` tiles high)."""
    t = spec.input_hw[1]
    return dataclasses.replace(spec, views=views, input_hw=(len(views) * t, t))
