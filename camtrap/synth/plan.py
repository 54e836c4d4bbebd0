"""Planning a synthetic dataset: which sequences exist, where and when, and what moves through them.

The plan is pure data derived from the config and seed; rendering it (``render.py``) is a separate step, so
the same plan always gives the same files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from camtrap.synth.draw import AnimalPose, Site, make_site, strip_height
from camtrap.synth.species import SPECIES_LOOKS, SpeciesLook

__all__ = ["SynthConfig", "AnimalTrack", "SequencePlan", "plan_dataset"]

SITE_NAMES = ("B04", "C02", "D10", "E05", "H08", "J13", "L10", "O09", "R12", "T11", "U07", "V13")


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides a synthetic dataset; the same config always gives identical files."""

    sequences: int = 200
    seed: int = 0
    size: tuple[int, int] = (2048, 1536)  # width, height (4:3 like Snapshot Serengeti)
    train_seasons: int = 4  # seasons 1..N are training, season N+1 is the (unseen) test season
    empty_fraction: float = 0.73
    multi_species_fraction: float = 0.01
    night_fraction: float = 0.35
    sites: int = 6
    jpeg_quality: int = 90
    frames_choices: tuple[int, ...] = (1, 2, 3, 5, 8)
    frames_weights: tuple[float, ...] = (0.1, 0.07, 0.8, 0.02, 0.01)
    nuisance_fraction: float = 0.4  # empty sequences with strong wind or light changes

    def __post_init__(self) -> None:
        w, h = self.size
        if w < 64 or h < 48:
            raise ValueError(f"frame size {w}x{h} is too small (at least 64x48)")
        if self.sequences < 1:
            raise ValueError("need at least one sequence")
        if not 1 <= self.sites <= len(SITE_NAMES):
            raise ValueError(f"sites must be 1..{len(SITE_NAMES)}")


@dataclass(frozen=True)
class AnimalTrack:
    """One animal's straight walk through a sequence."""

    look: SpeciesLook
    x0: float
    vx: float  # pixels per frame
    ground_y: float
    scale: float
    facing: int
    phase0: float

    def pose(self, frame: int) -> AnimalPose:
        """Where the animal is in frame ``frame``."""
        return AnimalPose(self.look, self.x0 + self.vx * frame, self.ground_y, self.scale, self.facing,
                          self.phase0 + 1.3 * frame)  # fmt: skip


@dataclass(frozen=True)
class SequencePlan:
    """One trigger: identity, time, conditions and the animals in it."""

    index: int
    seq_id: str
    season: int
    site: Site
    roll: int
    first_image: int  # image counter on the roll of the first frame
    start: dt.datetime
    night: bool
    species: tuple[str, ...]
    tracks: tuple[AnimalTrack, ...]
    winds: tuple[float, ...]
    lights: tuple[float, ...]
    is_test: bool
    rng_seed: tuple[int, ...] = field(default=())

    @property
    def n_frames(self) -> int:
        return len(self.winds)

    def file_name(self, frame: int) -> str:
        """Competition-style relative file name, e.g. ``S1/B04/B04_R1/S1_B04_R1_PICT0003.JPG``."""
        s, site, r = self.season, self.site.name, self.roll
        stem = "IMAG" if self.is_test else "PICT"
        return f"S{s}/{site}/{site}_R{r}/S{s}_{site}_R{r}_{stem}{self.first_image + frame:04d}.JPG"


def _season_counts(cfg: SynthConfig) -> list[int]:
    n_seasons = cfg.train_seasons + 1
    base, extra = divmod(cfg.sequences, n_seasons)
    return [base + (1 if i < extra else 0) for i in range(n_seasons)]


def _choose_species(rng: np.random.Generator, n: int) -> tuple[SpeciesLook, ...]:
    weights = np.array([s.weight for s in SPECIES_LOOKS])
    idx = rng.choice(len(SPECIES_LOOKS), size=n, replace=False, p=weights / weights.sum())
    return tuple(SPECIES_LOOKS[i] for i in idx)


def _tracks(rng: np.random.Generator, looks: tuple[SpeciesLook, ...], site: Site, size: tuple[int, int],
            n_frames: int) -> tuple[AnimalTrack, ...]:
    """Animals of the given species, each starting inside the frame so every sequence shows its animals."""
    w, h = size
    hc = h - strip_height(h)
    horizon = site.horizon * hc
    tracks = []
    for look in looks:
        for _ in range(int(rng.integers(look.herd[0], look.herd[1] + 1))):
            scale = float(rng.uniform(0.35, 1.0))
            depth = (scale - 0.35) / 0.65
            ground = horizon + (hc - horizon) * (0.25 + 0.7 * depth)
            facing = int(rng.choice((-1, 1)))
            fast = rng.uniform() < 0.2
            speed = rng.uniform(0.15, 0.35) if fast else rng.uniform(0.0, 0.1)
            tracks.append(AnimalTrack(look, float(rng.uniform(0.12, 0.88) * w), float(facing * speed * w),
                                      float(ground), scale, facing, float(rng.uniform(0, 2 * np.pi))))  # fmt: skip
    tracks.sort(key=lambda t: t.ground_y)  # far animals first, near ones drawn over them
    return tuple(tracks)


def _conditions(rng: np.random.Generator, n_frames: int, nuisance: bool) -> tuple[tuple[float, ...], ...]:
    """Per-frame wind (texture shift units) and light gain; nuisance sequences get strong changes."""
    gust = 4.0 if nuisance and rng.uniform() < 0.6 else 0.6
    flicker = 0.3 if nuisance and rng.uniform() < 0.6 else 0.04
    base = rng.uniform(0.85, 1.1)
    winds = tuple(float(x) for x in np.cumsum(rng.normal(0, gust, n_frames)))
    lights = tuple(float(np.clip(base * (1 + rng.uniform(-flicker, flicker)), 0.5, 1.5)) for _ in range(n_frames))
    return winds, lights


def plan_dataset(cfg: SynthConfig) -> list[SequencePlan]:
    """The full plan: seasons 1..N+1, sites, rolls, empty/animal/two-species sequences, animal tracks."""
    root = np.random.default_rng([cfg.seed, 0])
    sites = [make_site(name, np.random.default_rng([cfg.seed, 1, i])) for i, name in enumerate(SITE_NAMES[: cfg.sites])]
    counts = _season_counts(cfg)
    total = sum(counts)
    empties = np.zeros(total, bool)
    start = 0
    for n in counts:  # exact empty share within every season
        empties[start + root.permutation(n)[: int(round(cfg.empty_fraction * n))]] = True
        start += n
    animal_idx = np.flatnonzero(~empties)
    n_multi = min(len(animal_idx), int(round(cfg.multi_species_fraction * total)))
    multi = set(root.choice(animal_idx, size=n_multi, replace=False).tolist()) if n_multi else set()
    plans: list[SequencePlan] = []
    counters: dict[tuple[int, str], int] = {}
    index = 0
    for season_i, n in enumerate(counts):
        season = season_i + 1
        season_start = dt.datetime(2010, 7, 1) + dt.timedelta(days=120 * season_i)
        for _ in range(n):
            plans.append(_plan_one(cfg, index, season, sites, counters, season_start,
                                   empty=bool(empties[index]), two=index in multi,
                                   is_test=season_i == cfg.train_seasons))  # fmt: skip
            index += 1
    return plans


def _place_on_roll(counters: dict[tuple[int, str], int], season: int, site: str, n_frames: int,
                   roll_size: int = 400) -> tuple[int, int, int]:
    """Roll number, first image number on the roll and capture number; a sequence never spans two rolls."""
    used = counters.get((season, site), 0)
    if used % roll_size + n_frames > roll_size:
        used += roll_size - used % roll_size
    counters[(season, site)] = used + n_frames
    capture_key = (season, f"{site}#captures#{used // roll_size}")
    capture = counters.get(capture_key, 0) + 1
    counters[capture_key] = capture
    return 1 + used // roll_size, 1 + used % roll_size, capture


def _plan_one(cfg: SynthConfig, index: int, season: int, sites: list[Site], counters: dict[tuple[int, str], int],
              season_start: dt.datetime, *, empty: bool, two: bool, is_test: bool) -> SequencePlan:
    rng = np.random.default_rng([cfg.seed, 2, index])
    site = sites[int(rng.integers(len(sites)))]
    n_frames = int(rng.choice(cfg.frames_choices, p=np.array(cfg.frames_weights) / sum(cfg.frames_weights)))
    night = bool(rng.uniform() < cfg.night_fraction)
    hour = int(rng.choice([20, 21, 22, 23, 0, 1, 2, 3, 4])) if night else int(rng.integers(7, 18))
    start = season_start + dt.timedelta(days=int(rng.integers(0, 110)), hours=hour,
                                        minutes=int(rng.integers(60)), seconds=int(rng.integers(60)))  # fmt: skip
    looks = () if empty else _choose_species(rng, 2 if two else 1)
    tracks = _tracks(rng, looks, site, cfg.size, n_frames)
    winds, lights = _conditions(rng, n_frames, nuisance=empty and rng.uniform() < cfg.nuisance_fraction)
    roll, first_image, capture = _place_on_roll(counters, season, site.name, n_frames)
    return SequencePlan(
        index=index, seq_id=f"SER_S{season}#{site.name}#{roll}#{capture}", season=season, site=site, roll=roll,
        first_image=first_image, start=start, night=night,
        species=tuple(sorted(look.name for look in looks)), tracks=tracks, winds=winds, lights=lights,
        is_test=is_test, rng_seed=(cfg.seed, 3, index),
    )  # fmt: skip
