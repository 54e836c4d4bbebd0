"""A review site's corrections on top of labelled photos: one training set, and the classes a retrain would lose."""

from __future__ import annotations

import logging
import os

import numpy as np

from classifier.data import Sample, SampleSet, classes_of

__all__ = ["with_corrections", "learned_classes"]

log = logging.getLogger(__name__)


def _label(sample: Sample, classes: tuple[str, ...]) -> str:
    return classes[int(np.argmax(sample.target))]


def _where(sample: Sample) -> str:
    return os.path.realpath(sample.frame.path) if sample.frame.path is not None else sample.frame.file


def with_corrections(labelled: SampleSet, corrections: SampleSet) -> SampleSet:
    """``labelled`` photos (one label each) plus the ``corrections``' crops, over the union of their classes; a
    photo that has a correction is learned from its corrected crops, not from its label in ``labelled``."""
    if labelled.multilabel or corrections.multilabel:
        raise ValueError("corrections are added to single-label photos only")
    corrected = {_where(s) for s in corrections.samples}
    kept = [s for s in labelled.samples if _where(s) not in corrected]
    if len(kept) < len(labelled.samples):
        log.info("%d labelled photo(s) replaced by their corrections", len(labelled.samples) - len(kept))
    pairs = [(s, _label(s, labelled.classes)) for s in kept]
    pairs += [(s, _label(s, corrections.classes)) for s in corrections.samples]
    classes = classes_of([label for _, label in pairs])  # as one CSV of all these labels would give
    samples = tuple(Sample(s.frame, s.bbox_xywh_norm, tuple(1.0 if c == label else 0.0 for c in classes), s.group,
                           s.key) for s, label in pairs)  # fmt: skip
    return SampleSet(samples, classes, False, f"{labelled.source}+{corrections.source}")


def learned_classes(samples: SampleSet) -> set[str]:
    """The classes with at least one training sample (a model learns nothing of the others)."""
    counts = samples.targets().sum(axis=0) if samples.samples else np.zeros(len(samples.classes))
    return {c for c, n in zip(samples.classes, counts) if n > 0}
