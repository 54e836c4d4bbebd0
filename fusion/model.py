"""Fusion's configuration (every threshold and weight) and its fitted calibration, saved as a small JSON file
that travels with the detector and classifier."""

from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import dataclass, field
from pathlib import Path

from camtrap import checks
from camtrap.fileio import DataError, atomic_write_json, read_json
from camtrap.labels import COLUMNS, EMPTY

__all__ = ["Pooling", "FusionConfig", "FusionModel", "FusionMismatchError", "SequenceEvidence"]

N_EMPTY_FEATURES = 4  # the length of fusion.fuse.empty_features, and of FusionModel.empty_coef
MAX_PROB_FLOOR = 0.01  # outputs are kept in [floor, 1 - floor]; a larger floor would hide what the models say


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
    # crop trust: a sequence's crop evidence is believed in proportion to (best crop confidence / the animal
    # threshold) ** power, the rest of its species mass following the priors; the power is searched when fitting
    # (0: crops always believed).  A crop the detector barely saw says little about which species it is.
    crop_trust_powers: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)

    def to_dict(self) -> dict:
        raw = dataclasses.asdict(self)
        raw["species_pooling"], raw["empty_pooling"] = self.species_pooling.value, self.empty_pooling.value
        return raw

    @classmethod
    def from_dict(cls, raw: dict, source: str | os.PathLike[str] = "fusion config") -> FusionConfig:
        """Parse and check a config (every field's type and range); keys of older versions (thresholds now read
        from the detector's spec) are ignored.

        Raises:
            DataError: naming ``source`` and the field at fault.
        """
        pools = tuple(p.value for p in Pooling)
        d = cls.__dataclass_fields__

        def num(name: str, lo: float, hi: float) -> float:
            return checks.number(raw, name, source, lo=lo, hi=hi, default=d[name].default)

        return cls(conf_weight_power=num("conf_weight_power", 0, 10),
                   species_pooling=Pooling(checks.text(raw, "species_pooling", source, choices=pools, default="mean")),
                   empty_pooling=Pooling(checks.text(raw, "empty_pooling", source, choices=pools, default="gmean")),
                   one_stage_weight=num("one_stage_weight", 0, 1),
                   calibrate=checks.boolean(raw, "calibrate", source, default=True),
                   raw_confidence=num("raw_confidence", 0.5, 1), prob_floor=num("prob_floor", 0, MAX_PROB_FLOOR),
                   temperatures=checks.numbers(raw, "temperatures", source, lo=0.01, hi=100, min_length=1,
                                               max_length=1000, default=cls.temperatures),
                   prior_mixes=checks.numbers(raw, "prior_mixes", source, lo=0, hi=1, min_length=1, max_length=1000,
                                              default=cls.prior_mixes),
                   empty_l2=num("empty_l2", 0, 1e6),
                   crop_trust_powers=checks.numbers(raw, "crop_trust_powers", source, lo=0, hi=100, min_length=1,
                                                    max_length=1000, default=cls.crop_trust_powers))  # fmt: skip


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
    crop_trust: float = 0.0  # the fitted power of FusionConfig.crop_trust_powers (0 in older files)

    def __post_init__(self) -> None:
        if EMPTY not in self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"fusion classes must be distinct and include {EMPTY!r}")
        if len(self.priors) != len(self.classes):
            raise ValueError(f"{len(self.priors)} priors for {len(self.classes)} fusion classes")

    @property
    def species(self) -> tuple[str, ...]:
        """The output columns other than ``empty``, in order (what crop evidence is given over)."""
        return tuple(c for c in self.classes if c != EMPTY)

    def fit_summary(self) -> str:
        """What the file says it was fitted on, for a human: "fitted on 55 sequences (2 empty, 53 with an animal;
        default kept for: empty)"; older files say what they record."""
        on = self.fitted_on

        def count(key: str) -> str:
            value = on.get(key)
            return str(value) if isinstance(value, int) and not isinstance(value, bool) else "?"

        text = f"fitted on {count('sequences')} sequences ({count('empty')} empty, {count('animal')} with an animal"
        kept = on.get("defaults_kept")
        if isinstance(kept, list) and kept:
            text += "; default kept for: " + ", ".join(str(k) for k in kept)
        return text + ")"

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
            "crop_trust": self.crop_trust,
        })  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FusionModel:
        """Read a fusion file; any problem is a :class:`camtrap.fileio.DataError` naming it."""
        raw = read_json(path)
        checks.field(raw, "config", path)
        classes = tuple(checks.texts(raw, "classes", path)) if "classes" in raw else COLUMNS
        priors = checks.mapping(raw, "priors", path)
        if missing := [c for c in classes if c not in priors]:
            raise DataError(path, f"priors: no value for {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        threshold = checks.field(raw, "animal_threshold", path, None)
        return cls(FusionConfig.from_dict(checks.mapping(raw, "config", path), path),
                   checks.numbers(raw, "empty_coef", path, length=N_EMPTY_FEATURES, lo=-1e4, hi=1e4),
                   checks.number(raw, "temperature", path, lo=0.01, hi=100),
                   checks.number(raw, "prior_mix", path, lo=0, hi=1),
                   tuple(checks.finite_number(priors[c], f"priors.{c}", path, lo=0, hi=1) for c in classes),
                   checks.mapping(raw, "fitted_on", path, default={}),
                   None if threshold is None else checks.finite_number(threshold, "animal_threshold", path, lo=0, hi=1),
                   classes, checks.mapping(raw, "fitted_for", path, default={}),
                   crop_trust=checks.number(raw, "crop_trust", path, lo=0, hi=100, default=0.0))


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
