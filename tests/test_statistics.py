"""Paired statistics: McNemar's test against hand-computed cases, the paired bootstrap CI, the
seed-level t-interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from countclip.evaluation.statistics import (
    EXACT_BELOW,
    mcnemar,
    paired_bootstrap_ci,
    seed_t_interval,
)


def _pairs(b01: int, b10: int, both: int = 5, neither: int = 3) -> tuple[list[int], list[int]]:
    """Correctness vectors with the given discordant counts (b01: only B right)."""
    a = [0] * b01 + [1] * b10 + [1] * both + [0] * neither
    b = [1] * b01 + [0] * b10 + [1] * both + [0] * neither
    return a, b


def test_mcnemar_exact_for_few_discordant_images() -> None:
    res = mcnemar(*_pairs(1, 9))
    assert (res["b01"], res["b10"], res["method"]) == (1, 9, "exact binomial")
    # two-sided: 2 * P(X <= 1), X ~ Binomial(10, 1/2) = 2 * (1 + 10) / 1024
    assert res["p_value"] == pytest.approx(2 * (1 + 10) / 2**10, abs=1e-12)
    assert res["statistic"] == 1
    assert mcnemar(*_pairs(9, 1))["p_value"] == pytest.approx(res["p_value"])  # symmetric
    assert mcnemar(*_pairs(5, 5))["p_value"] == pytest.approx(1.0)
    assert mcnemar(*_pairs(0, 0))["p_value"] == 1.0  # no discordant image


def test_mcnemar_chi_square_with_continuity_correction() -> None:
    res = mcnemar(*_pairs(10, 30))
    assert EXACT_BELOW <= 10 + 30
    assert res["method"] == "chi-square with continuity correction"
    assert res["statistic"] == pytest.approx((abs(10 - 30) - 1) ** 2 / 40)  # 9.025
    # chi-square with 1 df: P(X > s) = erfc(sqrt(s / 2))
    assert res["p_value"] == pytest.approx(math.erfc(math.sqrt(9.025 / 2)), rel=1e-9)


def test_mcnemar_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same images"):
        mcnemar([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="correct_b must hold only 0/1"):
        mcnemar([1, 0], [1, 2])
    with pytest.raises(ValueError, match="correct_a is empty"):
        mcnemar([], [])


def test_bootstrap_identical_vectors_give_a_zero_width_interval() -> None:
    a = np.random.default_rng(0).random(200) < 0.6
    assert paired_bootstrap_ci(a, a, n_resamples=500) == {"diff": 0.0, "low": 0.0, "high": 0.0}


def test_bootstrap_clear_difference_excludes_zero_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(300) < 0.8
    b = rng.random(300) < 0.4
    res = paired_bootstrap_ci(a, b, n_resamples=2000, seed=3)
    assert res["diff"] == pytest.approx(a.mean() - b.mean())
    assert 0 < res["low"] < res["diff"] < res["high"]
    assert paired_bootstrap_ci(a, b, n_resamples=2000, seed=3) == res
    assert paired_bootstrap_ci(a, b, n_resamples=2000, seed=4) != res
    wider = paired_bootstrap_ci(a, b, n_resamples=2000, seed=3, level=0.99)
    assert wider["low"] < res["low"] and wider["high"] > res["high"]


def test_bootstrap_uses_the_pairing() -> None:
    """B = A except on 10 of 400 images: a paired interval is much narrower than the spread
    of either accuracy, and it still excludes zero."""
    rng = np.random.default_rng(2)
    a = rng.random(400) < 0.5
    b = a.copy()
    b[np.flatnonzero(a)[:10]] = False  # A right, B wrong on 10 images
    res = paired_bootstrap_ci(a, b, n_resamples=4000)
    assert res["diff"] == pytest.approx(10 / 400)
    assert res["low"] > 0 and res["high"] - res["low"] < 0.04  # unpaired: ~0.14 wide


def test_hierarchical_bootstrap_over_seeds_then_images() -> None:
    rng = np.random.default_rng(4)
    images = 300
    a = rng.random((3, images)) < np.array([[0.55], [0.6], [0.65]])
    b = rng.random((3, images)) < 0.4
    res = paired_bootstrap_ci(a, b, n_resamples=2000)
    assert res["diff"] == pytest.approx(a.mean() - b.mean())
    assert 0 < res["low"] < res["diff"] < res["high"]
    # Seeds that disagree widen the interval relative to one seed repeated three times.
    same = paired_bootstrap_ci(np.repeat(a[:1], 3, 0), b, n_resamples=2000)
    spread_seeds = paired_bootstrap_ci(
        np.stack([a[0], rng.random(images) < 0.9, rng.random(images) < 0.2]), b, n_resamples=2000
    )
    assert spread_seeds["high"] - spread_seeds["low"] > same["high"] - same["low"]


def test_grouped_bootstrap_resamples_whole_groups() -> None:
    """When images come in groups that are all right or all wrong together, resampling groups
    gives a wider (honest) interval than resampling single images."""
    groups = np.repeat(np.arange(20), 10)
    rng = np.random.default_rng(5)
    a = np.repeat(rng.random(20) < 0.6, 10)
    b = np.zeros(200, dtype=bool)
    single = paired_bootstrap_ci(a, b, n_resamples=2000)
    grouped = paired_bootstrap_ci(a, b, groups=groups, n_resamples=2000)
    assert grouped["diff"] == single["diff"]
    assert grouped["high"] - grouped["low"] > 2 * (single["high"] - single["low"])
    with pytest.raises(ValueError, match="one label per image"):
        paired_bootstrap_ci(a, b, groups=groups[:5])


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="share one shape"):
        paired_bootstrap_ci([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap_ci([1, 0], [1, 0], level=1.5)
    with pytest.raises(ValueError, match="only 0/1"):
        paired_bootstrap_ci([1, 0.5], [1, 0])


def test_seed_t_interval_by_hand() -> None:
    """r2's three per-seed gains on dev2 (+2.1, +10.7, +11.3 points): mean 8.03, sd 5.15, and
    t(0.975, 2 df) = 4.303, so the seed-level interval is about [-4.8, +20.8]."""
    res = seed_t_interval([0.021, 0.107, 0.113])
    sd = math.sqrt(
        ((0.021 - 0.0803333) ** 2 + (0.107 - 0.0803333) ** 2 + (0.113 - 0.0803333) ** 2) / 2
    )
    assert res["n"] == 3 and res["mean"] == pytest.approx(0.0803333, abs=1e-6)
    assert res["sd"] == pytest.approx(sd, rel=1e-5)
    half = 4.302652729911275 * sd / math.sqrt(3)
    assert (res["low"], res["high"]) == (
        pytest.approx(0.0803333 - half, abs=1e-6),
        pytest.approx(0.0803333 + half, abs=1e-6),
    )
    assert round(100 * res["low"], 1) == -4.8 and round(100 * res["high"], 1) == 20.8
    # five seeds, all positive and alike: the interval excludes 0
    five = seed_t_interval([0.11, 0.12, 0.10, 0.13, 0.12])
    assert 0 < five["low"] < five["mean"] < five["high"]
    one = seed_t_interval([0.05])  # one seed: no spread, no interval
    assert one == {"mean": 0.05, "low": None, "high": None, "sd": None, "n": 1}
    with pytest.raises(ValueError, match="non-empty"):
        seed_t_interval([])
    with pytest.raises(ValueError, match="level"):
        seed_t_interval([0.1, 0.2], level=1.5)
