"""Where a scene's objects go: cue-controlled layouts, and the geometry of the shapes.

A benchmark of counting must not be solvable by reading object size. The first renderer shrank
objects as 0.62/sqrt(count), so the size of the largest object alone guessed the count far above
chance. Every counting scene (2..10 objects, training scenes too) now follows the standard
numerosity controls; each scene draws one of :data:`CONTROL_MODES` from its id:

- ``equal size``: one item size for all its objects, from a range that is the same for every
  count (so total area grows with the count);
- ``equal area``: a total object area from a range that is the same for every count, shared out
  over the objects (so items shrink as 1/sqrt(count));
- ``common range``: each object's size drawn on its own from the same range for every count.

All ranges are ones that fit for ALL counts 2..10 (:data:`MIN_DIAMETER` .. :data:`FIT_ALL_DIAMETER`
per object; ten objects of the largest size still fit), so no mode is available to some counts
only. The objects are spread over a square field of random side and random "dispersion"
(best-of-k candidate positions), both drawn the same way for every count, so hull area and spread
vary widely within a count. What cannot be controlled: total area = count x mean item area, so
those two cues cannot both be blind to the count; the modes share the leak between them
(:mod:`countclip.synthetic.scene_cues` measures what is left).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

import numpy as np

from countclip.counts import COUNTS
from countclip.synthetic.world import SHAPES, Scene

MIN_DIAMETER = 0.13
"""Smallest bounding-circle diameter of an object, as a fraction of the image side (~8 px at
64 px, where the tiny model trains)."""
FIT_ALL_DIAMETER = 0.20
"""Largest diameter of the controlled size ranges: ten objects of it still fit by random
placement (with the gap and margin below), so every range serves every count 2..10."""
MARGIN = 0.02
"""Objects stay this far from the border..."""
GAP = 0.03
"""...and this far from each other (between bounding circles)."""
CONTROL_MODES: tuple[str, ...] = ("equal size", "equal area", "common range")
CONTROL_WEIGHTS: tuple[float, ...] = (0.25, 0.5, 0.25)
"""Share of scenes per mode: "equal area" is what hides the count from item size, the other two
hide it from total area; half and half balance the leak that total = count x mean forces."""
SPREAD_SHARE = 0.4
"""Share of scenes whose spread is drawn (so their hull area grows with the count); the others
draw their hull area (so their spread shrinks with the count)."""
SPREAD_RANGE = (0.22, 0.42)  # RMS distance of the centres from their centroid
HULL_RANGE = (0.1, 0.4)  # convex hull area of the objects
_LOOSENESS = (0.1, 0.3)  # width of the placement cluster, in object sizes


def _unit_polygons() -> dict[str, list[tuple[float, float]]]:
    """Each shape as vertices inside the unit circle (y down), centred at the origin."""

    def ring(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> list[tuple[float, float]]:
        angles = [phase + 2 * math.pi * k / n for k in range(n)]
        return [(radius * math.cos(a), radius * math.sin(a)) for a in angles]

    star = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.48
        a = -math.pi / 2 + math.pi * k / 5
        star.append((r * math.cos(a), r * math.sin(a)))
    w = 0.36  # half arm width of the cross
    cross = [
        (-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w),
        (w, 1), (-w, 1), (-w, w), (-1, w), (-1, -w), (-w, -w),
    ]  # fmt: skip
    cross = [(x * 0.85, y * 0.85) for x, y in cross]  # corners of the arms inside the circle
    heart = []
    for k in range(32):
        t = 2 * math.pi * k / 32
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        heart.append((x, -y))
    cy = (max(y for _, y in heart) + min(y for _, y in heart)) / 2
    heart = [(x, y - cy) for x, y in heart]
    scale = max(math.hypot(x, y) for x, y in heart)
    heart = [(x / scale, y / scale) for x, y in heart]
    return {
        "square": ring(4, phase=-math.pi / 4),
        "triangle": [(x, y + 0.12) for x, y in ring(3, 0.95)],
        "star": star,
        "diamond": [(0, -1), (0.62, 0), (0, 1), (-0.62, 0)],
        "hexagon": ring(6, phase=0),
        "cross": cross,
        "heart": heart,
    }


POLYGONS = _unit_polygons()
"""Every shape but the circle as vertices at bounding radius 1."""
assert set(POLYGONS) | {"circle"} == set(SHAPES)
CIRCLE_FILL = 0.92
"""A circle is drawn at this share of its bounding radius (its visible extent)."""


def _polygon_area(points: list[tuple[float, float]]) -> float:
    shifted = points[1:] + points[:1]
    return 0.5 * abs(
        sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(points, shifted, strict=True))
    )


SHAPE_AREA: dict[str, float] = {
    "circle": math.pi * CIRCLE_FILL**2,
    **{name: _polygon_area(points) for name, points in POLYGONS.items()},
}
"""Drawn area of each shape at bounding radius 1 (times radius**2 for an object's area)."""


@dataclass(frozen=True)
class Placement:
    """One object: centre (x, y) and bounding-circle radius as fractions of the image side,
    rotation in degrees."""

    x: float
    y: float
    radius: float
    angle: float


def object_outline(shape: str, p: Placement, circle_points: int = 24) -> np.ndarray:
    """The drawn outline of one object as (k, 2) vertices in fractions of the image side
    (circles as a ``circle_points``-gon): what cue features such as the convex hull measure."""
    if shape == "circle":
        t = np.linspace(0, 2 * math.pi, circle_points, endpoint=False)
        unit = np.stack([np.cos(t), np.sin(t)], 1) * CIRCLE_FILL
    else:
        a = math.radians(p.angle)
        rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
        unit = np.asarray(POLYGONS[shape]) @ rot
    return unit * p.radius + np.array([p.x, p.y])


def control_mode(sample_id: int) -> str:
    """The numerosity control of a counting scene, a pure function of its id (weighted by
    :data:`CONTROL_WEIGHTS`)."""
    digest = hashlib.blake2b(f"control/{sample_id}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2**64
    for mode, cumulative in zip(CONTROL_MODES, np.cumsum(CONTROL_WEIGHTS), strict=True):
        if u < cumulative:
            return mode
    return CONTROL_MODES[-1]


def _log_uniform(rng: random.Random, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def control_diameters(mode: str, count: int, rng: random.Random) -> list[float]:
    """Object diameters of a counting scene under ``mode``, largest first: every range is the
    same for every count 2..10, within :data:`MIN_DIAMETER` .. :data:`FIT_ALL_DIAMETER` for ten."""
    lo, hi = MIN_DIAMETER, FIT_ALL_DIAMETER
    if mode == "common range":
        sizes = [_log_uniform(rng, lo, hi) for _ in range(count)]
    elif mode in ("equal size", "equal area"):
        if mode == "equal size":
            d = _log_uniform(rng, lo, hi)
        else:  # one total area for every count: what ten objects of lo..hi cover
            d = math.sqrt(_log_uniform(rng, COUNTS[-1] * lo**2, COUNTS[-1] * hi**2) / count)
        sizes = [max(lo, d * rng.uniform(0.95, 1.05)) for _ in range(count)]
    else:
        raise ValueError(f"control mode must be one of {CONTROL_MODES}, got {mode!r}")
    return sorted(sizes, reverse=True)


def _angle(rng: random.Random, shape: str) -> float:
    if shape == "circle":
        return 0.0
    return rng.uniform(-20, 20) if shape == "heart" else rng.uniform(-35, 35)


def layout_scene(scene: Scene) -> list[Placement]:
    """Where the objects of ``scene`` go (deterministic from its id and count).

    Counts 2..10: diameters from the scene's :func:`control_mode`; the objects are placed one by
    one (largest first), each at the valid random position nearest an anchor among k (a loose or
    tight cluster), keeping a gap between bounding circles and a margin to the border so objects
    never overlap or get cut; the cluster is then scaled towards a drawn spread or hull area
    (:func:`_rescale`). A draw that jams retries; a jittered grid is the last resort. Count 1: one
    large object. Count 0: a dense brick pattern of 4..6 rows, objects possibly cut at the border
    (a texture, not something to count).
    """
    rng = random.Random((scene.sample_id << 2) | 1)
    c = scene.count
    if c == 0:
        return _pattern_layout(scene, rng)
    if c == 1:
        d = rng.uniform(0.22, 0.55)
        r = d / 2
        x = rng.uniform(MARGIN + r, 1 - MARGIN - r)
        y = rng.uniform(MARGIN + r, 1 - MARGIN - r)
        return [Placement(x, y, r, _angle(rng, scene.shape))]
    diameters = control_diameters(control_mode(scene.sample_id), c, rng)
    spread_control = rng.random() < SPREAD_SHARE
    target = _log_uniform(rng, *(SPREAD_RANGE if spread_control else HULL_RANGE))
    anchor = (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7))
    looseness = rng.choice(_LOOSENESS)
    radii = [d / 2 for d in diameters]
    for _attempt in range(8):
        centres = _place(radii, anchor, looseness, rng)
        if centres is not None:
            centres = _rescale(centres, radii, spread_control, target, rng)
            return [
                Placement(x, y, r, _angle(rng, scene.shape))
                for (x, y), r in zip(centres, radii, strict=True)
            ]
    return _grid_layout(scene, diameters, rng)  # pragma: no cover - rare jam


Point = tuple[float, float]


def _place(
    radii: list[float], anchor: Point, looseness: float, rng: random.Random
) -> list[Point] | None:
    """Random sequential placement around ``anchor``: each object at the first valid position
    drawn from a normal around it whose width grows with the objects placed (``looseness`` x
    their size), so the cluster is tight or loose; :func:`_rescale` sets its final extent.
    Returns the centres, or None when an object finds no room."""
    centres: list[Point] = []
    for i, r in enumerate(radii):
        lo, hi = MARGIN + r, 1 - MARGIN - r
        sigma = looseness * (2 * r + GAP) * math.sqrt(i + 1)
        for tries in range(200):
            wide = sigma * (1 + tries / 10)  # widen when the cluster is crowded
            x = min(hi, max(lo, rng.gauss(anchor[0], wide)))
            y = min(hi, max(lo, rng.gauss(anchor[1], wide)))
            if all(
                (x - cx) ** 2 + (y - cy) ** 2 >= (r + cr + GAP) ** 2
                for (cx, cy), cr in zip(centres, radii, strict=False)
            ):
                centres.append((x, y))
                break
        else:
            return None
    return centres


def _centre_hull(points: list[Point]) -> tuple[float, float]:
    """(area, perimeter) of the convex hull of ``points`` (monotone chain; a segment is fine)."""
    pts = sorted(points)

    def chain(seq: list[Point]) -> list[Point]:
        out: list[Point] = []
        for px, py in seq:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-2], out[-1]
                if (bx - ax) * (py - ay) - (by - ay) * (px - ax) > 0:
                    break
                out.pop()
            out.append((px, py))
        return out[:-1]

    hull = chain(pts) + chain(pts[::-1])
    ring = list(zip(hull, hull[1:] + hull[:1], strict=True))
    area = 0.5 * abs(sum(ax * by - bx * ay for (ax, ay), (bx, by) in ring))
    return area, sum(math.dist(a, b) for a, b in ring)


def _rescale(
    centres: list[Point],
    radii: list[float],
    spread_control: bool,
    target: float,
    rng: random.Random,
) -> list[Point]:
    """Scale the layout about its centroid towards a target spread (RMS distance of the centres
    from their centroid) or hull area, as far as the gap between objects and the image border
    allow, then shift it to a random place where it fits."""
    n = len(centres)
    mx, my = sum(x for x, _ in centres) / n, sum(y for _, y in centres) / n
    offsets = [(x - mx, y - my) for x, y in centres]
    spread = math.sqrt(sum(x * x + y * y for x, y in offsets) / n)
    if spread_control:
        scale = target / spread
    else:  # Steiner: hull of discs ~ hull(centres) + perimeter * r + pi r^2, r the mean radius
        area, perimeter = _centre_hull(offsets)
        r = sum(radii) / n
        rest = max(target - math.pi * r * r, 0.0)
        if area > 1e-9:
            scale = (-perimeter * r + math.sqrt((perimeter * r) ** 2 + 4 * area * rest)) / (
                2 * area
            )
        else:
            scale = rest / (perimeter * r)
    low, high = 0.0, math.inf
    room = 1 - 2 * MARGIN
    for i in range(n):
        (xi, yi), ri = offsets[i], radii[i]
        for j in range(i + 1, n):
            (xj, yj), rj = offsets[j], radii[j]
            low = max(low, (ri + rj + GAP) / math.hypot(xi - xj, yi - yj))
            for span in (abs(xi - xj), abs(yi - yj)):  # scale * span + ri + rj <= room
                if span > 0:
                    high = min(high, (room - ri - rj) / span)
    scale = min(max(scale, low), max(high, low))
    out = [(scale * x, scale * y) for x, y in offsets]
    shift = []
    for axis in (0, 1):
        lo = max(MARGIN + r - p[axis] for p, r in zip(out, radii, strict=True))
        hi = min(1 - MARGIN - r - p[axis] for p, r in zip(out, radii, strict=True))
        shift.append(rng.uniform(lo, hi) if lo <= hi else (lo + hi) / 2)
    return [(x + shift[0], y + shift[1]) for x, y in out]


def _grid_layout(scene: Scene, diameters: list[float], rng: random.Random) -> list[Placement]:
    c = scene.count
    g = math.ceil(math.sqrt(c))
    cell = (1 - 2 * MARGIN) / g
    cells = rng.sample(range(g * g), c)
    out = []
    for k, d in zip(cells, diameters, strict=True):
        d = min(d, cell - GAP)
        slack = max(0.0, (cell - GAP - d) / 2)
        x = MARGIN + (k % g + 0.5) * cell + rng.uniform(-slack, slack)
        y = MARGIN + (k // g + 0.5) * cell + rng.uniform(-slack, slack)
        out.append(Placement(x, y, d / 2, _angle(rng, scene.shape)))
    return out


def _pattern_layout(scene: Scene, rng: random.Random) -> list[Placement]:
    g = rng.randint(4, 6)
    d = rng.uniform(0.62, 0.75) / g
    angle = _angle(rng, scene.shape)
    ox, oy = rng.uniform(0, 1 / g), rng.uniform(0, 1 / g)
    out = []
    for row in range(-1, g + 1):
        shift = (0.5 / g) if row % 2 else 0.0
        for col in range(-1, g + 1):
            x, y = ox + shift + col / g, oy + row / g
            if -d / 2 < x < 1 + d / 2 and -d / 2 < y < 1 + d / 2:
                out.append(Placement(x, y, d / 2, angle))
    return out
