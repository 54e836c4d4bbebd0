"""Fusion's configuration (every threshold and weight) and its fitted calibration, saved as a small JSON file
that travels with the detector and classifier."""

from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import dataclass, field
from pathlib import Path

from camtrap.fileio import DataError, atomic_write_json, read_json
from camtrap.labels import COLUMNS, EMPTY

__all__ = ["Pooling", "FusionConfig", "FusionModel", "FusionMismatchError", "SequenceEvidence"]


class Pooling(enum.Enum):
    """How per-frame or per-crop probabilities become one per sequence."""

    MEAN = "mean"
    MAX = "max"
    GMEAN = "gmean"  # geometric mean (renormalised for distributions)


@dataclass(frozen=True)
class FusionConfig:
    """Every knob of fusion.  The fitted parts live in :class:`FusionModel`."""

    conf_weight_power: float = 1.0  # crop weight = detection confidence ** power
    species_pooling: Pooling = Pooling.MEAN  # winners: mean for species
    empty_pooling: Pooling = Pooling.GMEAN  # winners: geometric mean for empty
    one_stage_weight: float = 0.0  # weight of whole-frame (one-stage) species evidence when given
    calibrate: bool = True  # False: raw scores, for ablations (empty: no animal at the detector's threshold)
    raw_confidence: float = 0.95  # uncalibrated mode: probability given to the thresholded decision
    prob_floor: float = 1e-5  # every output kept in [floor, 1 - floor]
    temperatures: tuple[float, ...] = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 3.0)  # searched when fitting
    prior_mixes: tuple[float, ...] = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)  # searched when fitting
    empty_l2: float = 1e-3  # ridge on the empty model's weights

    def to_dict(self) -> dict:
        raw = dataclasses.asdict(self)
        raw["species_pooling"], raw["empty_pooling"] = self.species_pooling.value, self.empty_pooling.value
        return raw

    @classmethod
    def from_dict(cls, raw: dict) -> FusionConfig:
        """Parse a config; keys of older versions (thresholds now read from the detector's spec) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        raw = {k: v for k, v in raw.items() if k in known}
        raw["species_pooling"], raw["empty_pooling"] = Pooling(raw["species_pooling"]), Pooling(raw["empty_pooling"])
        for key in ("temperatures", "prior_mixes"):
            raw[key] = tuple(raw[key])
        return cls(**raw)


class FusionMismatchError(ValueError):
    """A fusion file used with a detector other than the one it was fitted for."""


@dataclass(frozen=True)
class FusionModel:
    """A config plus what was fitted on validation data: the empty model, temperature, prior mix, priors, and the
    detector's animal threshold it was fitted with (its spec's ``typical_threshold``; None until bound)."""

    config: FusionConfig = FusionConfig()
    # logistic P(empty) on fusion.fuse.empty_features; the default (before fitting) is 1 - highest animal conf
    empty_coef: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)
    temperature: float = 1.0
    prior_mix: float = 0.01
    priors: tuple[float, ...] = field(default_factory=lambda: tuple([1.0 / len(COLUMNS)] * len(COLUMNS)))
    fitted_on: dict = field(default_factory=dict)
    animal_threshold: float | None = None
    # the output columns (``empty`` among them): the competition's 54 by default, a classifier's own otherwise
    classes: tuple[str, ...] = COLUMNS
    # the models it was fitted for ({"classifier": fingerprint, "detector": fingerprint}; {} for older files)
    fitted_for: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if EMPTY not in self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"fusion classes must be distinct and include {EMPTY!r}")
        if len(self.priors) != len(self.classes):
            raise ValueError(f"{len(self.priors)} priors for {len(self.classes)} fusion classes")

    @property
    def species(self) -> tuple[str, ...]:
        """The output columns other than ``empty``, in order (what crop evidence is given over)."""
        return tuple(c for c in self.classes if c != EMPTY)

    @classmethod
    def default_for(cls, classes: tuple[str, ...]) -> FusionModel:
        """The unfitted model for these output columns: P(empty) = 1 - the highest animal confidence, species the
        pooled crop probabilities, uniform priors mixed in at 1%."""
        return cls(priors=tuple([1.0 / len(classes)] * len(classes)), classes=tuple(classes))

    @property
    def threshold(self) -> float:
        """The animal threshold fusion counts frames with (the detector's; 0.2 if never bound)."""
        return 0.2 if self.animal_threshold is None else self.animal_threshold

    def bind(self, animal_threshold: float, detector: str = "the detector") -> FusionModel:
        """This model for a detector with ``animal_threshold``; refuses one fitted with another threshold."""
        if self.animal_threshold is not None and abs(self.animal_threshold - animal_threshold) > 1e-9:
            raise FusionMismatchError(
                f"the fusion file was fitted with a detector whose animal threshold is {self.animal_threshold}, but "
                f"{detector} uses {animal_threshold}; fit fusion for this detector (`hakuna fit-fusion`)")
        return dataclasses.replace(self, animal_threshold=float(animal_threshold))

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write_json(path, {
            "config": self.config.to_dict(), "empty_coef": list(self.empty_coef), "temperature": self.temperature,
            "prior_mix": self.prior_mix, "priors": dict(zip(self.classes, self.priors)), "fitted_on": self.fitted_on,
            "animal_threshold": self.animal_threshold, "classes": list(self.classes), "fitted_for": self.fitted_for,
        })  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FusionModel:
        """Read a fusion file; any problem is a :class:`camtrap.fileio.DataError` naming it."""
        raw = read_json(path)
        try:
            classes = tuple(str(c) for c in raw.get("classes") or COLUMNS)
            priors = tuple(float(raw["priors"][c]) for c in classes)
            threshold = raw.get("animal_threshold")
            return cls(FusionConfig.from_dict(raw["config"]), tuple(float(v) for v in raw["empty_coef"]),
                       float(raw["temperature"]), float(raw["prior_mix"]), priors, dict(raw.get("fitted_on") or {}),
                       None if threshold is None else float(threshold), classes,
                       dict(raw.get("fitted_for") or {}))  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(path, f"not a fusion file ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class SequenceEvidence:
    """What the stages saw in one sequence.

    ``crop_probs``: one row per crop over the fusion model's species (the 53 of :data:`camtrap.labels.SPECIES` in
    the competition), with the
    detection confidence of each crop in ``crop_confs``.  ``frame_animal_conf``: the highest animal confidence
    per readable frame.  ``frame_probs``: optional whole-frame (one-stage) probabilities over the model's classes.
    """

    seq_id: str
    n_frames: int
    frame_animal_conf: tuple[float, ...]  # readable frames only
    crop_probs: tuple[tuple[float, ...], ...] = ()
    crop_confs: tuple[float, ...] = ()
    frame_probs: tuple[tuple[float, ...], ...] = ()

    @property
    def n_failed(self) -> int:
        return self.n_frames - len(self.frame_animal_conf)
