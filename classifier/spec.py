"""The model spec that travels with every classifier checkpoint: architecture, input, normalisation, classes,
crop geometry and calibration.

Inference derives its preprocessing from the spec (:meth:`ModelSpec.resize_uint8`, :meth:`ModelSpec.normalize`),
never from retyped constants, so a checkpoint trained at 224 px with TF-style normalisation on crops cut with
a 10% margin from frames decoded at 896 px is run exactly that way.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from camtrap import checks
from camtrap.fileio import DataError
from camtrap.geometry import DEFAULT_CROP_MARGIN, MAX_CROP_MARGIN, PAD_VALUE
from camtrap.labels import COLUMNS, is_empty_label
from classifier.views import VIEWS

__all__ = ["ResizePolicy", "ModelSpec", "check_classes", "CHECKPOINT_FORMAT", "CROP_SOURCE_FACTOR",
           "FRAME_SOURCE_FACTOR"]

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "hakuna-classifier"  # the "format" key of checkpoints: spec JSON + state dict, plain data
CROP_SOURCE_FACTOR = 4  # crops are cut from frames decoded with a long side of at least 4x the input size
FRAME_SOURCE_FACTOR = 2  # whole frames are resized from a decode at least 2x the input size
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 16, 2048  # the model input's sides, in pixels
MAX_SOURCE_SIDE = 16384
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
HEADS = ("linear", "probe")


class ResizePolicy(enum.Enum):
    """How an image becomes the model's input."""

    PAD_SQUARE = "pad-square"  # crops: pad the short side (grey) to a square, then resize
    STRETCH = "stretch"  # whole frames: resize to the input size as is (frames share one aspect ratio)
    CENTER_CROP = "center-crop"  # whole photos: the centre square (or the input's aspect), then resize


@dataclass(frozen=True)
class ModelSpec:
    """Everything inference needs besides the weights."""

    backbone: str
    input_hw: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: ResizePolicy
    classes: tuple[str, ...]
    multilabel: bool  # sigmoid per class (whole frames) vs softmax over classes (crops)
    training: dict = field(default_factory=dict)  # summary of the data and settings it was trained with
    crop_margin: float = DEFAULT_CROP_MARGIN  # crops are the box grown by this fraction of its longer side
    source_max_side: int = 0  # frames are decoded at least this large before crops are cut (0: derived)
    temperature: float = 1.0  # logits are divided by this before softmax/sigmoid (calibration)
    head: str = "linear"  # "linear": fine-tuned network; "probe": frozen backbones + fitted head (classifier.probe)
    backbones: tuple[str, ...] = ()  # probe heads: every frozen backbone whose features the head reads
    views: tuple[str, ...] = ()  # probe heads: views pooled (classifier.views; input = their tiles stacked); () none
    scale: float = 1.0  # probe heads: each backbone runs at its native input size times this

    def __post_init__(self) -> None:
        check_classes(self.classes, "classifier spec")
        if not self.source_max_side:
            factor = CROP_SOURCE_FACTOR if self.resize is ResizePolicy.PAD_SQUARE else FRAME_SOURCE_FACTOR
            side = self.input_hw[1] if self.views else max(self.input_hw)  # a mosaic's tile
            object.__setattr__(self, "source_max_side", side * factor)

    @property
    def framing(self) -> str:
        """What the classifier was trained on: "crops" (detector boxes cut square, :data:`ResizePolicy.PAD_SQUARE`:
        the policy both recipes record exactly when every training sample is a crop) or "photos" (whole frames or
        photos: stretched, centre-cropped or viewed whole)."""
        return "crops" if self.resize is ResizePolicy.PAD_SQUARE else "photos"

    def to_json(self) -> str:
        raw = dataclasses.asdict(self)
        raw["resize"] = self.resize.value
        return json.dumps(raw)

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike[str] = "classifier spec") -> ModelSpec:
        """Parse and check a spec (every field: type, finiteness, range; classes non-empty and unique; known
        backbones); fields an older Hakuna did not write take their defaults, unknown fields are ignored.

        Raises:
            DataError: naming ``source`` and the field at fault.
        """
        raw = checks.parse_json(text, source, "the classifier spec")
        checks.field(raw, "backbone", source)  # an object, with the required fields
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(raw) - known):
            log.warning("classifier spec has fields this version does not know (ignored): %s", unknown)
        return cls(**_checked_fields(raw, source))

    def resize_uint8(self, rgb: np.ndarray) -> np.ndarray:
        """Apply the resize policy: H x W x 3 uint8 -> input_hw x 3 uint8 (a mosaic of tiles with ``views``)."""
        h, w = rgb.shape[:2]
        th, tw = self.input_hw
        if self.views:
            from classifier.views import mosaic

            return mosaic(rgb, self.views, tw)
        if self.resize is ResizePolicy.PAD_SQUARE and h != w:
            side = max(h, w)
            canvas = np.full((side, side, 3), PAD_VALUE, np.uint8)
            canvas[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = rgb
            rgb = canvas
        elif self.resize is ResizePolicy.CENTER_CROP:
            ch, cw = (h, round(h * tw / th)) if w * th > h * tw else (round(w * th / tw), w)
            y0, x0 = (h - ch) // 2, (w - cw) // 2
            rgb = rgb[y0 : y0 + ch, x0 : x0 + cw]
        if rgb.shape[:2] == (th, tw):
            return rgb
        interp = cv2.INTER_AREA if rgb.shape[0] > th else cv2.INTER_LINEAR
        return cv2.resize(rgb, (tw, th), interpolation=interp)

    def normalize(self, batch_uint8: np.ndarray) -> np.ndarray:
        """N x H x W x 3 uint8 (already resized) -> N x 3 x H x W float32, normalised."""
        x = batch_uint8.astype(np.float32) / 255.0
        x = (x - np.array(self.mean, np.float32)) / np.array(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    def preprocess(self, images: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 images of any size -> the model's normalised input batch."""
        return self.normalize(np.stack([self.resize_uint8(im) for im in images]))


def check_classes(classes: tuple[str, ...], source: str | os.PathLike[str]) -> None:
    """Refuse a class named like the built-in P(empty) (``empty``, ``blank``, any case): it would share the
    ``p_empty`` column.  Classes of the competition's schema (a subset of its 54 columns, where ``empty`` is its own
    column) are the exception."""
    if set(classes) <= set(COLUMNS):
        return
    if clash := [c for c in classes if is_empty_label(c)]:
        raise DataError(source, f"classes: {clash[0]!r} is an empty-photo label, not a class (empty photos are "
                                f"the detector's and fusion's P(empty)); relabel or drop those rows")


def _checked_fields(raw: dict, source: str | os.PathLike[str]) -> dict:
    """The constructor arguments of a spec's JSON object, every one checked (see :meth:`ModelSpec.from_json`)."""
    from classifier.backbones import BACKBONES

    names = tuple(BACKBONES)
    out = {"backbone": checks.text(raw, "backbone", source, choices=names),
           "input_hw": checks.numbers(raw, "input_hw", source, length=2, lo=MIN_INPUT_SIDE,
                                      hi=MAX_INPUT_SIDE * len(VIEWS), integral=True),
           "mean": checks.numbers(raw, "mean", source, length=3, lo=-10, hi=10),
           "std": checks.numbers(raw, "std", source, length=3, lo=1e-3, hi=10),
           "resize": ResizePolicy(checks.text(raw, "resize", source, choices=tuple(r.value for r in ResizePolicy))),
           "classes": checks.texts(raw, "classes", source, min_length=1),
           "multilabel": checks.boolean(raw, "multilabel", source),
           "training": checks.mapping(raw, "training", source, default={}),
           "crop_margin": checks.number(raw, "crop_margin", source, lo=0, hi=MAX_CROP_MARGIN,
                                        default=DEFAULT_CROP_MARGIN),
           "source_max_side": checks.integer(raw, "source_max_side", source, lo=0, hi=MAX_SOURCE_SIDE, default=0),
           "temperature": checks.number(raw, "temperature", source, lo=MIN_TEMPERATURE, hi=MAX_TEMPERATURE,
                                        default=1.0),
           "head": checks.text(raw, "head", source, choices=HEADS, default="linear"),
           "backbones": checks.texts(raw, "backbones", source, min_length=0, default=()),
           "views": checks.texts(raw, "views", source, min_length=0, default=()),
           "scale": checks.number(raw, "scale", source, lo=0.25, hi=4, default=1.0)}  # fmt: skip
    check_classes(out["classes"], source)
    if unknown := [v for v in out["views"] if v not in VIEWS]:
        raise DataError(source, f"views: unknown view(s) {unknown}; known: {list(VIEWS)}")
    h, w = out["input_hw"]
    if (h != w * len(out["views"])) if out["views"] else (h > MAX_INPUT_SIDE or w > MAX_INPUT_SIDE):
        raise DataError(source, f"input_hw: {[h, w]} does not fit {len(out['views'])} view tile(s) of at most "
                                f"{MAX_INPUT_SIDE} px")
    if unknown := [b for b in out["backbones"] if b not in BACKBONES]:
        raise DataError(source, f"backbones: unknown backbone(s) {unknown}")
    return out
