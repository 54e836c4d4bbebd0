"""How each synthetic species looks: shape, size, colour, texture, herd size and how common it is.

Frequencies follow the real Snapshot Serengeti skew (wildebeest, zebra and Thomson's gazelle make up most
animal sequences); sizes are relative to the frame width for an animal at the nearest distance.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Texture", "Horns", "Build", "SpeciesLook", "SPECIES_LOOKS"]


class Texture(enum.Enum):
    """Coat pattern drawn over the body."""

    PLAIN = "plain"
    STRIPES = "stripes"  # zebra
    SPOTS = "spots"  # hyena, cheetah-like dark spots
    PATCHES = "patches"  # giraffe net pattern
    DOTS = "dots"  # guineafowl white dots
    FLANK_STRIPE = "flank-stripe"  # Thomson's gazelle dark side band


class Horns(enum.Enum):
    """Horn shape, drawn from the top of the head (relative to head length)."""

    NONE = "none"
    CURVED = "curved"  # wildebeest, buffalo: out sideways, then up
    BRACKET = "bracket"  # hartebeest: up from a long face, then sharply back
    LYRE = "lyre"  # impala: long, up and back in an S
    SPIKE = "spike"  # gazelle: straight, swept back


class Build(enum.Enum):
    """Body plan."""

    QUADRUPED = "quadruped"
    BIRD = "bird"  # round body, two thin legs, small head on a neck


@dataclass(frozen=True)
class SpeciesLook:
    """Drawing recipe for one species (colours are BGR, sizes relative to frame width or body)."""

    name: str
    weight: float  # relative frequency among animal sequences
    body_length: float  # body length / frame width at the nearest distance
    body_aspect: float  # body height / body length
    leg_length: float  # leg length / body height
    neck_length: float  # neck length / body length (0: no neck)
    neck_angle_deg: float  # 0 = forward, 90 = straight up
    head_size: float  # head length / body length
    body_bgr: tuple[int, int, int]
    texture: Texture = Texture.PLAIN
    texture_bgr: tuple[int, int, int] = (20, 20, 20)
    belly_bgr: tuple[int, int, int] | None = None
    build: Build = Build.QUADRUPED
    herd: tuple[int, int] = (1, 1)  # min, max animals in one sequence
    trunk: bool = False
    horns: Horns = Horns.NONE
    back_slope_deg: float = 0.0  # positive: shoulders higher than hips (hartebeest, hyena)
    tail_tuft: bool = False  # lion, wildebeest: a dark tuft at the tail's end


SPECIES_LOOKS: tuple[SpeciesLook, ...] = (
    SpeciesLook("wildebeest", 0.30, 0.22, 0.55, 0.9, 0.25, 35, 0.28, (60, 62, 70), Texture.PLAIN,
                belly_bgr=(45, 45, 50), herd=(1, 5), horns=Horns.CURVED, back_slope_deg=6, tail_tuft=True),
    SpeciesLook("zebra", 0.22, 0.22, 0.55, 0.95, 0.3, 50, 0.25, (235, 235, 235), Texture.STRIPES,
                texture_bgr=(15, 15, 15), herd=(1, 4)),
    SpeciesLook("gazellethomsons", 0.16, 0.12, 0.5, 1.2, 0.3, 60, 0.22, (80, 140, 200), Texture.FLANK_STRIPE,
                texture_bgr=(25, 30, 40), belly_bgr=(235, 240, 245), herd=(1, 4), horns=Horns.SPIKE),
    SpeciesLook("buffalo", 0.05, 0.28, 0.6, 0.6, 0.12, 10, 0.25, (25, 25, 28), herd=(1, 3), horns=Horns.CURVED),
    SpeciesLook("hartebeest", 0.04, 0.2, 0.55, 1.0, 0.35, 65, 0.4, (70, 110, 170), belly_bgr=(120, 160, 200),
                horns=Horns.BRACKET, back_slope_deg=14),
    SpeciesLook("impala", 0.04, 0.16, 0.5, 1.1, 0.3, 55, 0.22, (50, 100, 170), belly_bgr=(230, 235, 240),
                herd=(1, 3), horns=Horns.LYRE),
    SpeciesLook("elephant", 0.035, 0.4, 0.7, 0.7, 0.0, 0, 0.3, (120, 120, 125), trunk=True),
    SpeciesLook("giraffe", 0.03, 0.22, 0.6, 1.7, 0.9, 70, 0.2, (150, 200, 225), Texture.PATCHES,
                texture_bgr=(40, 80, 140)),
    SpeciesLook("warthog", 0.03, 0.14, 0.55, 0.45, 0.1, 0, 0.35, (70, 80, 95)),
    SpeciesLook("lionfemale", 0.025, 0.22, 0.45, 0.8, 0.15, 20, 0.25, (90, 150, 200), belly_bgr=(150, 195, 225),
                tail_tuft=True),
    SpeciesLook("hyenaspotted", 0.025, 0.17, 0.55, 0.85, 0.2, 25, 0.28, (90, 125, 150), Texture.SPOTS,
                texture_bgr=(30, 40, 50), back_slope_deg=12),
    SpeciesLook("guineafowl", 0.02, 0.06, 0.8, 0.5, 0.25, 70, 0.3, (70, 60, 55), Texture.DOTS,
                texture_bgr=(240, 240, 240), build=Build.BIRD, herd=(1, 5)),
    SpeciesLook("ostrich", 0.015, 0.16, 0.7, 1.6, 0.8, 85, 0.15, (30, 30, 30), belly_bgr=(220, 220, 220),
                build=Build.BIRD),
)  # fmt: skip
