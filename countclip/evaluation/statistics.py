"""Paired statistics for two models scored on the same images: McNemar's test, a paired
bootstrap confidence interval of the accuracy difference, and a t-interval over seeds.

Two models evaluated on the same benchmark are not independent samples: an image that is hard
for one is usually hard for the other. The tools here use the pairing. McNemar's test looks only
at the discordant images (one model right, the other wrong); the bootstrap resamples whole images
(and, with per-seed results, whole seeds first) so the interval carries the benchmark's sampling
noise and, when given, the training-seed noise.

With a handful of seeds the hierarchical bootstrap understates the seed noise: it resamples
three seeds from three, and with one seed it has none to resample. :func:`seed_t_interval` is
the seed-level interval: one difference per seed (each seed pretrains its own baseline and
fine-tunes both arms from it), Student's t over those, the question "would another seed's
baseline and fine-tunes show a gain?" with its own degrees of freedom. The claims rest on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

EXACT_BELOW = 25
"""McNemar uses the exact binomial test when fewer than this many images are discordant, and
the chi-square test with continuity correction otherwise (the usual rule of thumb)."""


def _as_correct(values: Any, name: str) -> np.ndarray:
    """A 0/1 correctness array; ``name`` says which argument was bad."""
    array = np.asarray(values)
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isin(array, (0, 1, True, False)).all():
        raise ValueError(f"{name} must hold only 0/1 (or booleans): per-image correctness")
    return array.astype(bool)


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, Any]:
    """McNemar's test of "A and B are equally accurate" on the same images.

    ``correct_a[i]``/``correct_b[i]``: whether A/B got image ``i`` right. Returns ``b01`` (images
    only B got right), ``b10`` (only A), ``statistic``, the two-sided ``p_value`` and ``method``:
    ``"exact binomial"`` (statistic = min(b01, b10); p = two-sided binomial test of b10 among the
    b01 + b10 discordant images at 1/2) when fewer than :data:`EXACT_BELOW` images are
    discordant, else ``"chi-square with continuity correction"`` (statistic =
    (|b01 - b10| - 1)^2 / (b01 + b10), one degree of freedom). No discordant image: p = 1.
    """
    a = _as_correct(correct_a, "correct_a")
    b = _as_correct(correct_b, "correct_b")
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"correct_a and correct_b must be 1-D and of one length (the same images), "
            f"got shapes {a.shape} and {b.shape}"
        )
    b01 = int((~a & b).sum())
    b10 = int((a & ~b).sum())
    n = b01 + b10
    if n < EXACT_BELOW:
        p = 1.0 if n == 0 else float(stats.binomtest(b10, n, 0.5).pvalue)
        return {
            "b01": b01,
            "b10": b10,
            "statistic": float(min(b01, b10)),
            "p_value": min(1.0, p),
            "method": "exact binomial",
        }
    statistic = (abs(b01 - b10) - 1) ** 2 / n
    return {
        "b01": b01,
        "b10": b10,
        "statistic": float(statistic),
        "p_value": float(stats.chi2.sf(statistic, df=1)),
        "method": "chi-square with continuity correction",
    }


def paired_bootstrap_ci(
    correct_a: Any,
    correct_b: Any,
    *,
    groups: Sequence[Any] | None = None,
    n_resamples: int = 10_000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Percentile bootstrap CI of accuracy(A) - accuracy(B) on the same images.

    ``correct_a``/``correct_b``: per-image correctness, shape ``(images,)``, or per-seed
    correctness on the same images, shape ``(seeds, images)`` (seed ``s`` of A paired with seed
    ``s`` of B). With seeds the bootstrap is hierarchical: each resample draws seeds with
    replacement, then images with replacement, and averages the difference over the drawn
    seeds and images. ``groups`` (one label per image) resamples whole groups of images instead
    of single images (e.g. all images of one scene kind). Deterministic in ``seed``.

    Returns ``{"diff", "low", "high"}``: the observed difference and the interval's bounds.
    """
    a = np.asarray(correct_a)
    b = np.asarray(correct_b)
    if a.shape != b.shape or a.ndim not in (1, 2) or a.size == 0:
        raise ValueError(
            "correct_a and correct_b must share one shape, (images,) or (seeds, images), "
            f"got {a.shape} and {b.shape}"
        )
    _as_correct(a, "correct_a")
    _as_correct(b, "correct_b")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    per_image = np.atleast_2d(a.astype(np.float64) - b.astype(np.float64))  # (seeds, images)
    n_seeds, n_images = per_image.shape
    if groups is None:
        members = np.arange(n_images)[:, None]  # every image its own group
        sizes = np.ones(n_images, dtype=np.int64)
    else:
        labels = np.asarray(groups)
        if labels.shape != (n_images,):
            raise ValueError(f"groups needs one label per image ({n_images}), got {labels.shape}")
        _, inverse = np.unique(labels, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        sizes = np.bincount(inverse)
        members = np.full((len(sizes), sizes.max()), -1)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        for g, (start, size) in enumerate(zip(starts, sizes, strict=True)):
            members[g, :size] = order[start : start + size]
    # Sum of the difference over each group's images, per seed: (seeds, groups).
    group_sums = np.where(members[None] >= 0, per_image[:, members.clip(0)], 0.0).sum(-1)
    rng = np.random.default_rng(seed)
    estimates = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // max(1, n_seeds * len(sizes)))
    for start in range(0, n_resamples, chunk):
        count = min(chunk, n_resamples - start)
        picked_seeds = rng.integers(0, n_seeds, (count, n_seeds))
        picked_groups = rng.integers(0, len(sizes), (count, len(sizes)))
        # For each resample: mean over drawn seeds of (sum over drawn groups) / (images drawn).
        sums = group_sums[picked_seeds[:, :, None], picked_groups[:, None, :]].sum(-1)
        images = sizes[picked_groups].sum(-1)
        estimates[start : start + count] = sums.mean(-1) / images
    tail = (1 - level) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    return {"diff": float(per_image.mean()), "low": float(low), "high": float(high)}


def seed_t_interval(differences: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Student's t confidence interval of the mean of per-seed differences.

    ``differences[s]``: arm − reference on seed ``s`` (each seed its own baseline and
    fine-tunes, so seeds are the independent units). Returns ``{"mean", "low", "high", "sd",
    "n"}``; with fewer than two seeds there is no spread to estimate and ``low``, ``high`` and
    ``sd`` are None.
    """
    values = np.asarray(differences, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"differences must be a non-empty 1-D sequence, got shape {values.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = int(values.size)
    mean = float(values.mean())
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "sd": None, "n": n}
    sd = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, df=n - 1)) * sd / np.sqrt(n)
    return {"mean": mean, "low": mean - half, "high": mean + half, "sd": sd, "n": n}
