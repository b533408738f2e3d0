"""The raw results of ``results/`` as rows, and the figures every rendered table shares: the
paired comparison of two arms (the difference per seed, the seed-level t-interval, the
hierarchical bootstrap CI over seeds then images, McNemar per seed) and the number formats."""

from __future__ import annotations

import json
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from countclip.counts import COUNTS
from countclip.evaluation.statistics import mcnemar, paired_bootstrap_ci, seed_t_interval
from countclip_experiments.render.generated_doc import REPO

RESULTS = REPO / "results"
CONTROL = "control"
RECIPE = "countclip"
ORDER = ("baseline", "control", "countclip")


def load(folder: Path) -> tuple[dict[str, Any], dict[str, list[dict]]]:
    run = json.loads((folder / "run.json").read_text())
    rows: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*/seed-*.json")):
        row = json.loads(path.read_text())
        rows.setdefault(row["arm"], []).append(row)
    for per_seed in rows.values():
        per_seed.sort(key=lambda r: r["seed"])
    return run, rows


def correctness(row: Mapping[str, Any]) -> dict[int, bool]:
    return {
        int(i): t == p
        for i, t, p in zip(row["sample_ids"], row["true"], row["predicted"], strict=True)
    }


def paired(
    arm: Sequence[dict], control: Sequence[dict], only: Collection[int] | None = None
) -> tuple[list, list, list, list]:
    """Correctness of arm and control, ``(seeds, images)`` on the images every run of both
    scored (seed s of the arm paired with seed s of the control; of those, only the ids in
    ``only`` when given), McNemar's p per seed, and the seeds paired."""
    by_seed = {r["seed"]: r for r in control}
    shared = [r for r in arm if r["seed"] in by_seed]
    pairs = [(correctness(r), correctness(by_seed[r["seed"]])) for r in shared]
    if not pairs:
        return [], [], [], []
    ids = sorted(set.intersection(*(set(m) & set(c) for m, c in pairs)))
    if only is not None:
        ids = [i for i in ids if i in only]
    a = [[mine[i] for i in ids] for mine, _ in pairs]
    b = [[theirs[i] for i in ids] for _, theirs in pairs]
    pvalues = [mcnemar(x, y)["p_value"] for x, y in zip(a, b, strict=True)]
    return a, b, pvalues, [r["seed"] for r in shared]


def run_folders(results: Path) -> list[Path]:
    """Every ``results/<experiment>/<countbench>/`` that holds a finished run, in name order."""
    return sorted(p for p in results.glob("*/*") if (p / "run.json").is_file())


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}"


def p_text(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def mean_sd(values: Sequence[float]) -> str:
    if len(values) == 1:  # one seed: no spread to show
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.fmean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def per_count_mean(per_seed: Sequence[dict]) -> dict[int, float]:
    out = {}
    for c in COUNTS:
        values = [r["per_count_accuracy"].get(str(c)) for r in per_seed]
        values = [v for v in values if v is not None]
        if values:
            out[c] = statistics.fmean(values)
    return out


def zero_shot_mean(per_seed: Sequence[dict], task: str) -> float | None:
    values = [r["zero_shot"].get(task) for r in per_seed if r["zero_shot"].get(task) is not None]
    return statistics.fmean(values) if values else None


def seeds(per_seed: Sequence[dict]) -> str:
    return ", ".join(str(r["seed"]) for r in per_seed)


@dataclass(frozen=True)
class Comparison:
    """``arm`` − ``reference`` on the same images, seed s paired with seed s: the seeds paired,
    the difference on each, the seed-level t-interval over them (what the claims rest on), the
    hierarchical bootstrap (seeds, then images) and McNemar's p per seed. Fractions, not
    points."""

    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]
    t: Mapping[str, Any]
    bootstrap: Mapping[str, float]
    mcnemar: tuple[float, ...]
    row_seeds: tuple[int, ...]

    @property
    def diff(self) -> float:
        return self.bootstrap["diff"]

    @property
    def fewer_seeds(self) -> bool:
        """The arm's row has seeds its reference lacks: the Δ is on fewer seeds than the row's
        accuracy, and every table says so."""
        return self.seeds != self.row_seeds

    def per_seed_text(self) -> str:
        text = ", ".join(f"{100 * d:+.1f}" for d in self.per_seed)
        if self.fewer_seeds:
            text += f" (seed{'s' if len(self.seeds) > 1 else ''} {seeds_text(self.seeds)} only)"
        return text

    def t_text(self) -> str:
        if self.t["low"] is None:
            return "– (1 seed)"
        return interval(self.t["mean"], self.t["low"], self.t["high"])

    def bootstrap_text(self) -> str:
        return interval(self.diff, self.bootstrap["low"], self.bootstrap["high"])

    def p_text(self) -> str:
        return ", ".join(p_text(p) for p in self.mcnemar)


def interval(point: float, low: float, high: float) -> str:
    return f"{100 * point:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def seeds_text(values: Sequence[int]) -> str:
    return ", ".join(map(str, values))


def compare(
    arm: Sequence[dict], reference: Sequence[dict], only: Collection[int] | None = None
) -> Comparison | None:
    """``arm`` against ``reference`` (on the images in ``only`` when given); None when they
    share no seed."""
    a, b, pvalues, paired_seeds = paired(arm, reference, only)
    if not a:
        return None
    per_seed = tuple(float(np.mean(x) - np.mean(y)) for x, y in zip(a, b, strict=True))
    return Comparison(
        seeds=tuple(paired_seeds),
        per_seed=per_seed,
        t=seed_t_interval(per_seed),
        bootstrap=paired_bootstrap_ci(a, b, seed=0),
        mcnemar=tuple(pvalues),
        row_seeds=tuple(r["seed"] for r in arm),
    )


def versus(
    arm: Sequence[dict], reference: Sequence[dict], only: Collection[int] | None = None
) -> tuple[str, str]:
    """Δ of ``arm`` against ``reference`` with its hierarchical bootstrap 95% CI, and
    McNemar's p per shared seed (on the images in ``only`` when given)."""
    found = compare(arm, reference, only)
    if found is None:
        return "", ""
    return found.bootstrap_text(), found.p_text()
