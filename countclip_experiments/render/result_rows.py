"""The raw results of ``results/`` as rows, and the figures every rendered table shares: the
paired comparison of two arms (bootstrap CI over images and seeds, McNemar per seed) and the
number formats."""

from __future__ import annotations

import json
import statistics
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from countclip.counts import COUNTS
from countclip.evaluation.statistics import mcnemar, paired_bootstrap_ci
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
) -> tuple[list, list, list]:
    """Correctness of arm and control, ``(seeds, images)`` on the images every run of both
    scored (seed s of the arm paired with seed s of the control; of those, only the ids in
    ``only`` when given), and McNemar's p per seed."""
    by_seed = {r["seed"]: r for r in control}
    pairs = [(correctness(r), correctness(by_seed[r["seed"]])) for r in arm if r["seed"] in by_seed]
    if not pairs:
        return [], [], []
    ids = sorted(set.intersection(*(set(m) & set(c) for m, c in pairs)))
    if only is not None:
        ids = [i for i in ids if i in only]
    a = [[mine[i] for i in ids] for mine, _ in pairs]
    b = [[theirs[i] for i in ids] for _, theirs in pairs]
    return a, b, [mcnemar(x, y)["p_value"] for x, y in zip(a, b, strict=True)]


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


def versus(
    arm: Sequence[dict], reference: Sequence[dict], only: Collection[int] | None = None
) -> tuple[str, str]:
    """Δ of ``arm`` against ``reference`` with its 95% CI, and McNemar's p per shared seed (on
    the images in ``only`` when given)."""
    a, b, pvalues = paired(arm, reference, only)
    if not a:
        return "", ""
    ci = paired_bootstrap_ci(a, b, seed=0)
    delta = f"{100 * ci['diff']:+.1f} [{100 * ci['low']:+.1f}, {100 * ci['high']:+.1f}]"
    return delta, ", ".join(p_text(p) for p in pvalues)
