"""Deterministic scene renderer: c non-overlapping objects of one kind on a textured background.

Speed matters (the server renders every image on request, the benchmark wants >= 500 images/s
at 224 px on one core), so the expensive part — textured backgrounds — is computed once per
image size (a few dozen 2x-size textures); an image is a random crop of one of them plus a handful
of ``ImageDraw`` polygons. Where the objects go and how big they are is
:mod:`countclip.synthetic.layout` (cue-controlled: size and area do not give the count away);
objects are never below ~13 % of the side for their bounding circle, ~9 % for their visible
extent, so they stay countable at 64 px, where the tiny model trains.
"""

from __future__ import annotations

import math
import random
import threading

import numpy as np
from PIL import Image, ImageDraw

from countclip.synthetic.layout import (
    CIRCLE_FILL,
    MIN_DIAMETER,
    POLYGONS,
    SHAPE_AREA,
    Placement,
    layout_scene,
    object_outline,
)
from countclip.synthetic.world import COLOURS, Scene, scene_for_id

__all__ = [
    "MIN_DIAMETER",
    "RGB",
    "SHAPE_AREA",
    "Placement",
    "layout_scene",
    "object_outline",
    "render_sample",
    "render_scene",
    "warm_up",
]

RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (250, 220, 20),
    "orange": (250, 140, 0),
    "purple": (140, 40, 180),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}
assert set(RGB) == set(COLOURS)

_N_TEXTURES = 32


def _luma(rgb: tuple[float, float, float]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _pattern(rng: np.random.Generator, kind: int, big: int) -> np.ndarray:
    """A [0, 1] texture pattern of one of six kinds (blobs, stripes, checks, grain, gradient,
    dots)."""
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32) / big
    a = rng.uniform(0, math.pi)
    if kind == 0:  # soft blobs
        low = (rng.random((6, 6)) * 255).astype(np.uint8)
        return np.asarray(Image.fromarray(low).resize((big, big), Image.BICUBIC), np.float32) / 255
    if kind == 1:  # stripes
        f = rng.uniform(6, 18)
        return 0.5 + 0.5 * np.sin(2 * math.pi * f * (xx * math.cos(a) + yy * math.sin(a)))
    if kind == 2:  # checks
        f = rng.integers(4, 12)
        return (((xx * f).astype(int) + (yy * f).astype(int)) % 2).astype(np.float32)
    if kind == 3:  # grain (paper / concrete)
        low = (rng.random((48, 48)) * 255).astype(np.uint8)
        return np.asarray(Image.fromarray(low).resize((big, big), Image.BILINEAR), np.float32) / 255
    if kind == 4:  # gradient
        g = xx * math.cos(a) + yy * math.sin(a)
        return (g - g.min()) / (g.max() - g.min())
    f = rng.uniform(8, 16)  # dots / fabric
    return ((np.sin(2 * math.pi * f * xx) * np.sin(2 * math.pi * f * yy)) > 0.6).astype(np.float32)


_TEXTURE_LOCK = threading.Lock()
_TEXTURE_CACHE: dict[int, tuple[tuple[Image.Image, ...], dict[str, tuple[int, ...]]]] = {}


def _textures(size: int) -> tuple[tuple[Image.Image, ...], dict[str, tuple[int, ...]]]:
    """The cached textures for ``size``, built once even when many server threads ask at once
    (an unguarded cache let 16 concurrent first requests each build them, ~0.5 s of CPU apiece,
    and every request timed out)."""
    cached = _TEXTURE_CACHE.get(size)
    if cached is None:
        with _TEXTURE_LOCK:
            cached = _TEXTURE_CACHE.get(size)
            if cached is None:
                cached = _TEXTURE_CACHE[size] = _build_textures(size)
    return cached


def _build_textures(size: int) -> tuple[tuple[Image.Image, ...], dict[str, tuple[int, ...]]]:
    """Background textures (2*size square, crops give variety) and, per colour, the indices of
    those that contrast with it (luma difference >= 60 and RGB distance >= 120)."""
    rng = np.random.default_rng(20_240_601)
    big = 2 * size
    textures = []
    means = []
    for k in range(_N_TEXTURES):
        light = k % 3 != 2  # light backgrounds serve more colours
        base = rng.uniform(175, 225) if light else rng.uniform(28, 70)
        tint = rng.uniform(-14, 14, 3)
        amp = rng.uniform(14, 30)
        pat = _pattern(rng, (k // 3) % 6 if k < 18 else int(rng.integers(0, 6)), big)
        arr = base + tint[None, None, :] + amp * (pat[..., None] - 0.5)
        arr += rng.normal(0, 3.5, (big, big, 1))
        arr = np.clip(arr, 0, 255).astype(np.uint8)
        textures.append(Image.fromarray(arr, "RGB"))
        means.append(tuple(float(v) for v in arr.reshape(-1, 3).mean(0)))
    allowed: dict[str, tuple[int, ...]] = {}
    for name, rgb in RGB.items():
        ok = tuple(
            i
            for i, m in enumerate(means)
            if abs(_luma(m) - _luma(rgb)) >= 60 and math.dist(m, rgb) >= 120
        )
        assert len(ok) >= 4, f"too few contrasting backgrounds for {name}"
        allowed[name] = ok
    return tuple(textures), allowed


def warm_up(size: int = 224) -> None:
    """Build the background textures for ``size`` now (~0.5 s) rather than on the first render."""
    _textures(size)


def render_scene(scene: Scene, size: int = 224) -> Image.Image:
    """Draw ``scene`` as a ``size`` x ``size`` RGB image, deterministically.

    The background (texture, crop, flip), the slight colour jitter and the layout are all seeded
    by ``scene.sample_id``; the object colour always contrasts with the background.
    """
    textures, allowed = _textures(size)
    rng = random.Random((scene.sample_id << 2) | 2)
    tex = textures[rng.choice(allowed[scene.colour])]
    ox, oy = rng.randrange(size), rng.randrange(size)
    img = tex.crop((ox, oy, ox + size, oy + size))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    r, g, b = RGB[scene.colour]
    j = rng.randint(-12, 12)
    fill = (min(255, max(0, r + j)), min(255, max(0, g + j)), min(255, max(0, b + j)))
    draw = ImageDraw.Draw(img)
    unit = POLYGONS.get(scene.shape)
    for p in layout_scene(scene):
        cx, cy, rad = p.x * size, p.y * size, p.radius * size
        if unit is None:  # circle
            rr = rad * CIRCLE_FILL
            draw.ellipse((cx - rr, cy - rr, cx + rr, cy + rr), fill=fill)
            continue
        ca, sa = math.cos(math.radians(p.angle)), math.sin(math.radians(p.angle))
        draw.polygon(
            [(cx + rad * (ux * ca - uy * sa), cy + rad * (ux * sa + uy * ca)) for ux, uy in unit],
            fill=fill,
        )
    return img


def render_sample(sample_id: int, size: int = 224) -> tuple[Image.Image, int, tuple[str, str]]:
    """``(sample id) -> (image, ground-truth count, (shape, colour))`` for a bare id
    (:func:`scene_for_id`); count 0 is a non-counting pattern."""
    scene = scene_for_id(sample_id)
    return render_scene(scene, size), scene.count, scene.kind
