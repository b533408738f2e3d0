"""The sentences of the README and docs/protocol.md that state a result, generated from
``results/``: every number in them is computed from the raw results and the validation
records, never typed (the blocks' text: :mod:`countclip_experiments.render.claim_blocks`).

A document marks each generated block with ``<!-- claims:NAME:start -->`` and
``<!-- claims:NAME:end -->``; :func:`fill` replaces the text between them with the block NAME
rendered from the results, and ``scripts/render_results.py --check`` fails when a document is
not what the results render to. Outside the blocks a document states no result:
:func:`unchecked_numbers` finds numbers written the way results are (a signed decimal such as
``+8.0``, a decimal percentage, a three-decimal accuracy such as ``0.577``, an interval, a p
value) outside every block, and the check fails on them too.

The recipe rule of r6 (docs/protocol.md, written before the WiSE-FT sweep) is code here,
:func:`choose_wise_ft`: the protocol's account of what it chose, and the test that the
committed config is that choice, both call it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from countclip_experiments.render.result_rows import (
    CONTROL,
    RESULTS,
    Comparison,
    compare,
    load,
    run_folders,
    seeds_text,
)
from countclip_experiments.render.study_sections import wise_ft_sweeps

START, END = "<!-- claims:{}:start -->", "<!-- claims:{}:end -->"
R6 = "bench-counting-r6"
"""The experiment name of recipe r6 (configs/bench-counting-r6.yaml)."""
SHAPE_MARGIN = 0.02
"""Rule step 3: a CountCLIP candidate's zero-shot validation shape within 2 points of S."""
GOAL_GAIN, GOAL_COUNT, GOAL_SHAPE = 0.10, 0.30, 0.02
"""The issue's goals on the confirmatory CountBench: Δ ≥ +10 points with the seed-level
interval above 0, every count ≥ 30%, zero-shot shape within 2 points of the strong control."""


# --------------------------------------------------------------------------- the facts


class Facts:
    """Everything the claims read: every run of ``results/`` and every validation record."""

    def __init__(self, results: Path = RESULTS) -> None:
        self.results = results
        self.runs = {(f.parent.name, f.name): load(f) for f in run_folders(results)}
        paths = sorted((results / "validation").glob("*.json"))
        self.records = {r["name"]: r for r in (json.loads(p.read_text()) for p in paths)}
        scale = results / "cues" / "object-scale.json"
        self.cue_scale = json.loads(scale.read_text()) if scale.is_file() else None
        ledger = results / "ledger.json"
        self.ledger: list[dict[str, Any]] = (
            json.loads(ledger.read_text()) if ledger.is_file() else []
        )

    def rows(self, experiment: str, split: str) -> dict[str, list[dict]]:
        return self.runs[(experiment, split)][1]

    def run(self, experiment: str, split: str) -> dict[str, Any]:
        return self.runs[(experiment, split)][0]

    def cmp(
        self,
        experiment: str,
        split: str,
        arm: str,
        reference: str = CONTROL,
        reference_experiment: str | None = None,
    ) -> Comparison:
        rows = self.rows(experiment, split)
        ref_rows = self.rows(reference_experiment or experiment, split)
        found = compare(rows[arm], ref_rows[reference])
        if found is None:
            raise ValueError(f"{experiment}/{split}: {arm} and {reference} share no seed")
        return found

    def has(self, experiment: str, split: str) -> bool:
        return (experiment, split) in self.runs


def pts(x: float) -> str:
    """A difference in points, signed: ``+8.0``."""
    return f"{100 * x:+.1f}"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def t_claim(c: Comparison) -> str:
    """``+8.0 [-4.8, +20.9]`` seed-level (per seed +2.1, +10.7, +11.3)."""
    return f"{c.t_text()} (seed-level; per seed {c.per_seed_text()})"


def full_claim(c: Comparison) -> str:
    return f"{t_claim(c)}; hierarchical bootstrap {c.bootstrap_text()}"


def one_seed(c: Comparison) -> str:
    return f"{c.bootstrap_text()} (seed {seeds_text(c.seeds)}, bootstrap over images)"


# --------------------------------------------------------------------------- validation


def validation_pairs(facts: Facts) -> list[tuple[str, dict, dict]]:
    """Every CountCLIP validation run (plain fine-tunes) with the control trained the same
    way (same baseline, seed, steps, lr, counting fraction, counting set and locks), wherever
    that control was recorded: ``(record, countclip, control)``."""
    plain = [
        (name, run)
        for name, record in facts.records.items()
        for run in record["runs"]
        if run.get("wise_ft_alpha") is None
    ]
    keys = ("baseline", "seed", "steps", "lr", "counting_fraction", "counter")
    locks = ("lock_image", "lock_image_unlocked_groups", "lock_text", "lock_text_unlocked_layers")

    def key(run: Mapping[str, Any]) -> tuple:
        return tuple(run.get(k) for k in keys) + tuple(bool(run.get(k)) for k in locks)

    controls = {key(run): run for _, run in plain if run["count_loss"] == "none"}
    return [
        (name, run, controls[key(run)])
        for name, run in plain
        if run["count_loss"] != "none" and key(run) in controls
    ]


def _gap(countclip: Mapping[str, Any], control: Mapping[str, Any]) -> str:
    a, b = countclip["val_balanced_last"], control["val_balanced_last"]
    sa, sb = countclip["zero_shot_val"]["shape"], control["zero_shot_val"]["shape"]
    return (
        f"balanced validation {a:.3f} vs the control's {b:.3f} (gap {a - b:+.3f}), zero-shot "
        f"shape {100 * sa:.1f} vs {100 * sb:.1f} ({pts(sa - sb)})"
    )


@dataclass(frozen=True)
class WiseChoice:
    """What the r6 rule chose from the WiSE-FT sweeps."""

    control_alpha: float
    control: Mapping[str, Any]  # the control's point at its α
    lambda0: float
    alpha: float
    countclip: Mapping[str, Any]  # the chosen point
    eligible: bool  # within the shape margin of S
    candidates: tuple[tuple[float, Mapping[str, Any]], ...]  # (λ0, point) of every candidate

    @property
    def gap(self) -> float:
        return self.countclip["balanced"] - self.control["balanced"]

    @property
    def shape_gap(self) -> float:
        return self.countclip["shape"] - self.control["shape"]


def r6_sweeps(facts: Facts, prefix: str = "bench-counting-r6") -> list[dict[str, Any]]:
    records = [r for name, r in facts.records.items() if name.startswith(prefix)]
    return wise_ft_sweeps(records)


def choose_wise_ft(sweeps: Sequence[Mapping[str, Any]]) -> WiseChoice | None:
    """Recipe r6's rule (docs/protocol.md, written before the sweep), among the sweeps from the
    control's baseline: the control's α by its own balanced validation score (ties: larger α);
    S its zero-shot validation shape there; then among CountCLIP's (λ0, α) with shape ≥ S − 2
    points the largest balanced gap over that control (ties within 0.001: larger α, then
    smaller λ0); none eligible: the highest shape. None when the sweeps hold no control or no
    CountCLIP run from its baseline."""
    controls = [s for s in sweeps if s["run"]["count_loss"] == "none"]
    if len(controls) != 1:
        return None
    baseline = controls[0]["run"]["baseline"]  # compared only with the same starting point
    countclips = [
        s for s in sweeps if s["run"]["count_loss"] != "none" and s["run"]["baseline"] == baseline
    ]
    if not countclips:
        return None
    control = max(controls[0]["points"], key=lambda p: (round(p["balanced"], 9), p["alpha"]))
    floor = control["shape"] - SHAPE_MARGIN
    candidates = tuple(
        (s["run"]["lambda0"], p) for s in countclips for p in s["points"]
    )  # fmt: skip
    eligible = [(lam, p) for lam, p in candidates if p["shape"] >= floor - 1e-9]
    if eligible:
        best = max(p["balanced"] for _, p in eligible)
        tied = [(lam, p) for lam, p in eligible if p["balanced"] >= best - 0.001 - 1e-12]
        lambda0, point = max(tied, key=lambda lp: (lp[1]["alpha"], -lp[0]))
    else:
        lambda0, point = max(candidates, key=lambda lp: (lp[1]["shape"], lp[1]["balanced"]))
    return WiseChoice(
        control_alpha=control["alpha"],
        control=control,
        lambda0=lambda0,
        alpha=point["alpha"],
        countclip=point,
        eligible=bool(eligible),
        candidates=candidates,
    )


# --------------------------------------------------------------------------- the documents


_BLOCK = re.compile(r"<!-- claims:([\w-]+):start -->\n(.*?)<!-- claims:\1:end -->", re.S)


def fill(text: str, facts: Facts) -> str:
    """``text`` with every claims block rendered from ``facts`` (an unknown name is an
    error: a block nobody renders would never be checked)."""

    from countclip_experiments.render.claim_blocks import BLOCKS

    def render(match: re.Match) -> str:
        name = match.group(1)
        if name not in BLOCKS:
            raise KeyError(f"claims block {name!r}: no such block (known: {sorted(BLOCKS)})")
        return f"{START.format(name)}\n{BLOCKS[name](facts).rstrip()}\n{END.format(name)}"

    return _BLOCK.sub(render, text)


RESULT_NUMBER = re.compile(
    r"(?<![\w.])[+−-]\d+\.\d"  # a signed decimal: +8.0, −3.4
    r"|\b\d+\.\d+\s?%"  # a decimal percentage: 26.5%
    r"|\b0\.(?!00)\d{3}\b"  # a three-decimal accuracy: 0.577 (0.001, a tolerance, is none)
    r"|\[[+−-]?\d+(?:\.\d+)?,\s*[+−-]?\d"  # an interval: [+2.1, +13.4]
    r"|\bp\s?[=<]\s?\d"  # a p value
)


def unchecked_numbers(text: str) -> list[str]:
    """Numbers written the way results are, outside every claims block and outside code
    (backticks and indented code lines): each with its line."""
    outside = _BLOCK.sub("", text)
    outside = re.sub(r"<!-- results:start -->.*?<!-- results:end -->", "", outside, flags=re.S)
    found = []
    for line in outside.splitlines():
        if line.startswith("    ") or line.startswith("\t"):
            continue
        prose = re.sub(r"`[^`]*`", "", line)
        found += [f"{m.group(0)!r} in: {line.strip()[:120]}" for m in RESULT_NUMBER.finditer(prose)]
    return found


def check_claims(documents: Mapping[Path, str]) -> None:
    """Raise when a document states a result outside its generated blocks."""
    problems = [f"{path.name}: {hit}" for path, text in documents.items()
                for hit in unchecked_numbers(text)]  # fmt: skip
    if problems:
        raise ValueError(
            "numbers stated outside a generated claims block (put them in one, see "
            "countclip_experiments/render/claims.py):\n  " + "\n  ".join(problems)
        )
