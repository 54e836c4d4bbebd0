"""Drawing synthetic Serengeti frames: a camera site's fixed scene, per-frame wind and light, and animals.

Everything is numpy + OpenCV primitives, so a 512x384 frame takes about a millisecond and a 2048x1536 one
a few tens of milliseconds.  Animals are drawn on a small local canvas (body, legs, neck, head, tail, coat
texture) and composited, so the ground-truth box is the tight box of the pixels actually drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from camtrap.synth.species import Build, Horns, SpeciesLook, Texture

__all__ = ["Site", "Tree", "AnimalPose", "make_site", "strip_height", "render_frame"]

BGR = tuple[int, int, int]
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Tree:
    """An acacia: trunk at ``x`` (fraction of width), flat canopy of the given size (fractions of width)."""

    x: float
    base: float  # trunk foot, fraction of content height
    height: float  # trunk height, fraction of content height
    canopy_w: float
    canopy_h: float


@dataclass(frozen=True)
class Site:
    """One camera's fixed view."""

    name: str
    horizon: float  # fraction of content height
    sky_top: BGR
    sky_bottom: BGR
    grass: BGR
    trees: tuple[Tree, ...]
    texture_seed: int


@dataclass(frozen=True)
class AnimalPose:
    """One animal in one frame: where its feet are, how big it is, which way it faces."""

    look: SpeciesLook
    x: float  # ground point x, pixels
    ground_y: float  # ground point y, pixels
    scale: float  # 1 = nearest distance
    facing: int  # +1 right, -1 left
    phase: float  # walking cycle, radians


def make_site(name: str, rng: np.random.Generator) -> Site:
    """A random but fixed camera view: horizon, sky, grass colour (wet green to dry straw) and 0-3 trees."""
    dry = rng.uniform(0, 1)
    grass = (int(40 + 30 * dry), int(120 + 40 * dry), int(70 + 110 * dry))
    trees = tuple(
        Tree(rng.uniform(0.05, 0.95), rng.uniform(0.35, 0.6), rng.uniform(0.15, 0.3), rng.uniform(0.12, 0.3),
             rng.uniform(0.04, 0.08))
        for _ in range(int(rng.integers(0, 4)))
    )  # fmt: skip
    return Site(
        name=name,
        horizon=float(rng.uniform(0.22, 0.42)),
        sky_top=(int(rng.integers(170, 220)), int(rng.integers(120, 160)), int(rng.integers(60, 100))),
        sky_bottom=(int(rng.integers(220, 250)), int(rng.integers(200, 230)), int(rng.integers(180, 215))),
        grass=grass,
        trees=trees,
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def strip_height(height: int) -> int:
    """Height in pixels of the black information strip at the bottom of a frame."""
    return max(8, height // 24)


def _grass_texture(site: Site, width: int, height: int) -> np.ndarray:
    """Smooth + fine noise (float32, around 1.0) fixed for a site, one extra column band for wind shifts."""
    rng = np.random.default_rng(site.texture_seed)
    coarse = cv2.resize(rng.normal(1.0, 0.12, (max(2, height // 16), max(2, width // 16))).astype(np.float32),
                        (width, height), interpolation=cv2.INTER_CUBIC)  # fmt: skip
    fine = cv2.resize(rng.normal(0.0, 0.10, (max(2, height // 2), max(2, width // 3))).astype(np.float32),
                      (width, height), interpolation=cv2.INTER_NEAREST)  # fmt: skip
    return coarse + fine


def _static_background(site: Site, w: int, hc: int) -> np.ndarray:
    """Sky gradient and textured grass of a site (uint8); per-frame wind and light are applied on top."""
    img = np.empty((hc, w, 3), np.float32)
    hy = int(site.horizon * hc)
    t = np.linspace(0, 1, max(hy, 1), dtype=np.float32)[:, None]
    img[:hy] = (np.array(site.sky_top, np.float32) * (1 - t) + np.array(site.sky_bottom, np.float32) * t)[:, None, :]
    tex = _grass_texture(site, w, hc - hy)
    depth = np.linspace(0.8, 1.1, hc - hy, dtype=np.float32)[:, None]
    img[hy:] = np.array(site.grass, np.float32)[None, None, :] * (tex * depth)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _background(site: Site, static: np.ndarray, wind: float) -> np.ndarray:
    """The site's view in one frame: grass texture shifted and tree canopies swayed by the wind."""
    hc, w = static.shape[:2]
    hy = int(site.horizon * hc)
    img = static.copy()
    shift = int(round(wind * w * 0.01))
    if shift:
        img[hy:] = np.roll(static[hy:], shift, axis=1)
    for tree in site.trees:
        base_y = hy + int(tree.base * (hc - hy))
        top_y = base_y - int(tree.height * hc)
        x = int(tree.x * w)
        cv2.line(img, (x, base_y), (x, top_y), (40, 55, 70), max(2, int(0.008 * w)))
        sway = int(round(wind * 0.004 * w))
        axes = (max(2, int(tree.canopy_w * w / 2)), max(2, int(tree.canopy_h * w / 2)))
        cv2.ellipse(img, (x + sway, top_y), axes, 0, 0, 360, (35, 75, 50), -1)
    return img


def _body_parts(look: SpeciesLook, length: float, facing: int, phase: float) -> dict[str, object]:
    """Geometry of an animal relative to its ground point (0, 0), y pointing down."""
    bh = length * look.body_aspect
    leg = bh * look.leg_length
    cy = -(leg + bh / 2)
    bird = look.build is Build.BIRD
    leg_xs = (-0.1, 0.1) if bird else (-0.33, -0.22, 0.22, 0.33)
    legs = []
    for i, fx in enumerate(leg_xs):
        swing = math.sin(phase + i * math.pi) * 0.08 * length
        top = (fx * length, cy + bh * 0.3)
        legs.append((top, (fx * length + swing, 0.0)))
    ang = math.radians(look.neck_angle_deg)
    neck_start = (facing * 0.38 * length, cy - bh * 0.15)
    neck_end = (neck_start[0] + facing * math.cos(ang) * look.neck_length * length,
                neck_start[1] - math.sin(ang) * look.neck_length * length)  # fmt: skip
    head_l = look.head_size * length
    head_c = (neck_end[0] + facing * head_l * 0.35, neck_end[1])
    return {
        "body": ((0.0, cy), (length / 2, bh / 2)),
        "legs": legs,
        "leg_w": max(1, int(length * (0.035 if bird else 0.07))),
        "neck": (neck_start, neck_end),
        "neck_w": max(1, int(length * (0.08 if look.neck_length > 0.6 else 0.16))),
        "head": (head_c, (head_l / 2, head_l * 0.3)),
        "tail": ((-facing * 0.48 * length, cy - bh * 0.1), (-facing * 0.58 * length, cy + bh * 0.4)),
        "trunk": (head_c, (head_c[0] + facing * head_l * 0.4, -leg * 0.15)) if look.trunk else None,
        "horns": _horns(look.horns, head_c, head_l, facing),
        "body_angle": -facing * look.back_slope_deg,
    }


_HORN_SHAPES = {  # polyline from the horn base, in head lengths; x is backwards from the facing direction
    Horns.CURVED: ((0.0, 0.0), (0.25, -0.15), (0.2, -0.45)),
    Horns.BRACKET: ((0.0, 0.0), (0.0, -0.45), (0.3, -0.55)),
    Horns.LYRE: ((0.0, 0.0), (0.15, -0.5), (0.0, -0.9), (0.15, -1.3)),
    Horns.SPIKE: ((0.0, 0.0), (0.3, -0.7)),
}


def _horns(style: Horns, head_c: tuple[float, float], head_l: float, facing: int) -> list[tuple[float, float]]:
    """Horn polyline points (empty for hornless species)."""
    if style is Horns.NONE:
        return []
    bx, by = head_c[0] - facing * head_l * 0.15, head_c[1] - head_l * 0.25
    return [(bx - facing * x * head_l, by + y * head_l) for x, y in _HORN_SHAPES[style]]


def _texture(canvas: np.ndarray, body_mask: np.ndarray, look: SpeciesLook, length: float,
             rng: np.random.Generator) -> None:
    """Paint the coat pattern onto ``canvas`` where ``body_mask`` is set."""
    if look.texture is Texture.PLAIN:
        return
    layer = canvas.copy()
    h, w = body_mask.shape
    col = look.texture_bgr
    unit = max(1.0, length / 12)
    if look.texture is Texture.STRIPES:
        for x in np.arange(-h, w + h, unit * 1.3):
            cv2.line(layer, (int(x), 0), (int(x + h * 0.25), h), col, max(1, int(unit * 0.55)))
    elif look.texture in (Texture.SPOTS, Texture.DOTS):
        n = 40 if look.texture is Texture.DOTS else 25
        r = max(1, int(unit * (0.15 if look.texture is Texture.DOTS else 0.35)))
        for x, y in zip(rng.uniform(0, w, n), rng.uniform(0, h, n)):
            cv2.circle(layer, (int(x), int(y)), r, col, -1)
    elif look.texture is Texture.PATCHES:
        layer[:] = col
        net = max(1, int(unit * 0.25))
        for x in np.arange(0, w, unit * 1.6):
            cv2.line(layer, (int(x), 0), (int(x + rng.uniform(-unit, unit)), h), look.body_bgr, net)
        for y in np.arange(0, h, unit * 1.6):
            cv2.line(layer, (0, int(y)), (w, int(y + rng.uniform(-unit, unit))), look.body_bgr, net)
    elif look.texture is Texture.FLANK_STRIPE:
        ys = np.flatnonzero(body_mask.any(axis=1))
        if len(ys):
            mid = int(ys[0] + (ys[-1] - ys[0]) * 0.58)
            cv2.line(layer, (0, mid), (w, mid), col, max(1, int(unit * 0.5)))
    np.copyto(canvas, layer, where=body_mask[..., None] > 0)


def _pt(p: tuple[float, float], ox: float, oy: float) -> tuple[int, int]:
    return int(round(p[0] + ox)), int(round(p[1] + oy))


def _draw_local(look: SpeciesLook, length: float, facing: int, phase: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, int, tuple[int, int] | None]:
    """Render one animal on its own canvas; returns colour, mask, the ground point and the eye position."""
    parts = _body_parts(look, length, facing, phase)
    reach = length * (0.8 + look.neck_length + look.head_size)
    tall = length * (look.body_aspect * (1 + look.leg_length) + look.neck_length + 2.5 * look.head_size) + 4
    w, h = int(2 * reach) + 8, int(tall) + 8
    ox, oy = w / 2, h - 3
    colour = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    body_mask = np.zeros((h, w), np.uint8)
    (bc, baxes) = parts["body"]
    axes = (max(1, int(baxes[0])), max(1, int(baxes[1])))
    for target, value in ((mask, 255), (body_mask, 255), (colour, look.body_bgr)):
        cv2.ellipse(target, _pt(bc, ox, oy), axes, parts["body_angle"], 0, 360, value, -1)
    if look.neck_length > 0:
        ns, ne = parts["neck"]
        for target, value in ((mask, 255), (colour, look.body_bgr)):
            cv2.line(target, _pt(ns, ox, oy), _pt(ne, ox, oy), value, parts["neck_w"])
        if look.texture in (Texture.STRIPES, Texture.PATCHES):
            cv2.line(body_mask, _pt(ns, ox, oy), _pt(ne, ox, oy), 255, parts["neck_w"])
    if look.belly_bgr is not None:
        belly = body_mask.copy()
        belly[: int(bc[1] + oy + baxes[1] * 0.2)] = 0
        colour[belly > 0] = look.belly_bgr
    _texture(colour, body_mask, look, length, rng)
    limb_col = tuple(int(c * 0.8) for c in look.body_bgr)
    for top, foot in parts["legs"]:
        for target, value in ((mask, 255), (colour, limb_col)):
            cv2.line(target, _pt(top, ox, oy), _pt(foot, ox, oy), value, parts["leg_w"])
    hc, haxes = parts["head"]
    for target, value in ((mask, 255), (colour, look.body_bgr)):
        cv2.ellipse(target, _pt(hc, ox, oy), (max(1, int(haxes[0])), max(1, int(haxes[1]))), 0, 0, 360, value, -1)
        tail = parts["tail"]
        cv2.line(target, _pt(tail[0], ox, oy), _pt(tail[1], ox, oy), value, max(1, parts["leg_w"] // 2))
    dark = (35, 35, 38)
    if look.tail_tuft:
        for target, value in ((mask, 255), (colour, dark)):
            cv2.circle(target, _pt(parts["tail"][1], ox, oy), max(1, int(parts["leg_w"] * 0.8)), value, -1)
    if parts["horns"]:
        pts = np.array([_pt(p, ox, oy) for p in parts["horns"]], np.int32)
        width = max(1, int(look.head_size * length * (0.12 if look.horns in (Horns.CURVED, Horns.BRACKET) else 0.07)))
        for target, value in ((mask, 255), (colour, dark)):
            cv2.polylines(target, [pts], False, value, width)
        if parts["trunk"] is not None:
            cv2.line(target, _pt(parts["trunk"][0], ox, oy), _pt(parts["trunk"][1], ox, oy), value, parts["neck_w"])
    shade = np.linspace(1.15, 0.8, h, dtype=np.float32)[:, None, None]
    colour = np.clip(colour.astype(np.float32) * shade, 0, 255).astype(np.uint8)
    eye = _pt((hc[0] + facing * haxes[0] * 0.4, hc[1] - haxes[1] * 0.2), ox, oy)
    return colour, mask, int(ox), int(oy), eye


def _composite(img: np.ndarray, colour: np.ndarray, mask: np.ndarray, x0: int, y0: int) -> tuple[int, ...] | None:
    """Paste a masked canvas with its top-left at (x0, y0); return the tight box of drawn pixels, if any."""
    hc, w = img.shape[:2]
    h_l, w_l = mask.shape
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x0 + w_l), min(hc, y0 + h_l)
    if cx0 >= cx1 or cy0 >= cy1:
        return None
    m = mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] > 0
    if not m.any():
        return None
    roi = img[cy0:cy1, cx0:cx1]
    roi[m] = colour[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0][m]
    ys, xs = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    return cx0 + int(xs[0]), cy0 + int(ys[0]), cx0 + int(xs[-1]) + 1, cy0 + int(ys[-1]) + 1


def _info_strip(img: np.ndarray, text: str) -> None:
    """Black strip with camera text at the bottom, like the Bushnell/ScoutGuard strips."""
    h, w = img.shape[:2]
    sh = strip_height(h)
    img[h - sh :] = 0
    scale = sh / 30
    cv2.putText(img, text, (int(0.01 * w), h - int(sh * 0.25)), _FONT, scale, (230, 230, 230), max(1, int(scale * 2)))


def render_frame(site: Site, size: tuple[int, int], animals: list[AnimalPose], *, wind: float, light: float,
                 night: bool, stamp: str, rng: np.random.Generator,
                 cache: dict) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Draw one frame.  Returns the BGR image and, per animal, its box (x0, y0, x1, y1) or () if not visible.

    ``cache`` keeps each site's grass texture between frames (owned by the caller; no module state).
    """
    w, h = size
    hc = h - strip_height(h)
    static = _cached(cache, ("background", site.name, w, hc), lambda: _static_background(site, w, hc))
    img = cv2.convertScaleAbs(_background(site, static, wind), alpha=light)
    boxes: list[tuple[int, ...]] = []
    eyes = []
    for pose in animals:
        length = pose.look.body_length * w * pose.scale
        colour, mask, ax, ay, eye = _draw_local(pose.look, length, pose.facing, pose.phase, rng)
        colour = cv2.convertScaleAbs(colour, alpha=light)
        x0, y0 = int(round(pose.x)) - ax, int(round(pose.ground_y)) - ay
        box = _composite(img, colour, mask, x0, y0)
        boxes.append(box or ())
        if box and eye:
            eyes.append((x0 + eye[0], y0 + eye[1], max(1, int(length * 0.02))))
    if night:
        img = _night(img, eyes, _cached(cache, ("vignette", "", w, hc), lambda: _vignette(w, hc)))
    pos, neg = _cached(cache, ("noise", "", w, hc), lambda: _noise(w, hc))
    dy, dx = int(rng.integers(hc)), int(rng.integers(w))
    img = cv2.subtract(cv2.add(img, np.roll(pos, (dy, dx), (0, 1))), np.roll(neg, (dy, dx), (0, 1)))
    full = np.zeros((h, w, 3), np.uint8)
    full[:hc] = img
    _info_strip(full, stamp)
    return full, boxes


def _cached(cache: dict, key: tuple, make: Callable[[], object]) -> object:
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _noise(w: int, hc: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensor noise as a positive and a negative uint8 layer (rolled by a random offset per frame)."""
    rng = np.random.default_rng(hc * 100_003 + w)
    n = rng.integers(-4, 5, (hc, w, 3))
    return np.maximum(n, 0).astype(np.uint8), np.maximum(-n, 0).astype(np.uint8)


def _vignette(w: int, hc: int) -> np.ndarray:
    """Flash fall-off as a uint8 gain (255 = x1): bright near the lower centre, darker towards the corners."""
    yy, xx = np.mgrid[0:hc, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - hc * 0.6) / hc) ** 2
    return np.clip(255 * 0.55 * np.exp(-0.9 * r2), 0, 255).astype(np.uint8)


def _night(img: np.ndarray, eyes: list[tuple[int, int, int]], vignette: np.ndarray) -> np.ndarray:
    """Infrared flash look: grayscale, bright centre falling off to the corners, shining eyes."""
    gray = cv2.multiply(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), vignette, scale=1 / 255)
    for x, y, r in eyes:
        cv2.circle(gray, (x, y), r, 250, -1)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
