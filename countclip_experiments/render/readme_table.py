"""The README's headline (between its ``results:start``/``results:end`` markers): the latest
committed recipe against its strong control, the naive-filter row, the baseline and the best
single cue, in at most six rows a stranger reads in ten seconds. Every other run, with its
per-seed differences, bootstrap and McNemar, is in docs/results.md."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from countclip_experiments.render.generated_doc import REPO
from countclip_experiments.render.result_rows import (
    CONTROL,
    RECIPE,
    RESULTS,
    compare,
    load,
    mean_sd,
    pct,
    run_folders,
    seeds,
)

README = REPO / "README.md"
MARKERS = ("<!-- results:start -->", "<!-- results:end -->")
NAIVE = "countclip-naive"
HEADLINE_CONFIG = re.compile(r"configs/bench-counting(-r\d+)?\.yaml")
"""The experiment configs whose recipes the README reports: ``bench-counting.yaml`` (recipes
r1, r2) and each later recipe's own ``bench-counting-r<N>.yaml``; other configs (another
world's caption noise, say) are studies, in docs/results.md."""
RECIPE_ARMS = {RECIPE, CONTROL, "baseline", NAIVE}

DEFINITIONS = {
    RECIPE: "L_CLIP + λ·L_count+ on counting images whose count the image check confirmed",
    CONTROL: "L_CLIP only, same data; its data mix chosen on its own validation score",
    NAIVE: "CountCLIP on every caption the text filter kept (no image check)",
    "baseline": "the pretrained model every arm starts from, not fine-tuned",
}
"""One sentence per headline arm: what a reader needs to read the row."""

SPLIT_TITLES = {
    "confirmatory": "the confirmatory CountBench (read once per recipe, registered in "
    "[results/ledger.json](results/ledger.json) before the run)",
    "dev2": "dev2, a development CountBench. No run on the fresh confirmatory CountBench has "
    "finished yet",
}


def run_ids(per_seed: Sequence[dict]) -> tuple[str, ...]:
    """What identifies a row's runs: the evaluation fingerprint of every seed."""
    return tuple(r["evaluation_fingerprint"] for r in per_seed)


def same_recipe(run: Mapping[str, Any], rows: Mapping[str, list], other_run: Mapping[str, Any],
                other_rows: Mapping[str, list]) -> bool:  # fmt: skip
    """Two runs of one recipe: the same commit, and the very same control runs (evaluation
    fingerprints), so an ablation run later is paired with the recipe it was run for."""
    return other_run.get("commit") == run.get("commit") and run_ids(
        other_rows.get(CONTROL, [])
    ) == run_ids(rows.get(CONTROL, []))


def headline_split(folders: Sequence[Path]) -> str:
    """The confirmatory CountBench once a run on it has finished; dev2 until then."""
    return "confirmatory" if any(p.name == "confirmatory" for p in folders) else "dev2"


def latest_recipe(
    loaded: Mapping[Path, tuple[dict[str, Any], dict[str, list[dict]]]],
) -> Path | None:
    """The folder of the latest committed recipe: the most recent run (by its date, then
    name) of a :data:`HEADLINE_CONFIG` that trained its own recipe against a control and no
    ablation (a run of ablations that repeats the recipe is not a new recipe). Latest, never
    best: picking among recipes by their CountBench numbers would be selection on the test
    set."""
    recipes = [
        p
        for p, (run, rows) in loaded.items()
        if RECIPE in rows
        and CONTROL in rows
        and set(rows) <= RECIPE_ARMS
        and HEADLINE_CONFIG.fullmatch(run.get("config", "configs/bench-counting.yaml"))
    ]
    return max(recipes, key=lambda p: (str(loaded[p][0].get("date")), p.parent.name), default=None)


def readme_table(results: Path = RESULTS) -> str:
    """The headline: on the confirmatory CountBench (dev2 until a confirmatory run finished),
    the latest recipe, its control, the naive-filter run of the same commit, the baseline and
    the best single cue, each defined in one sentence, Δ against the control with the
    seed-level 95% t-interval."""
    folders = run_folders(results)
    split = headline_split(folders)
    loaded = {p: load(p) for p in folders if p.name == split}
    chosen = latest_recipe(loaded)
    if chosen is None:
        return "No recipe has been run against its control yet."
    run, rows = loaded[chosen]
    commit = str(run.get("commit"))[:7]
    arms: list[tuple[str, str, list[dict]]] = [
        (f"CountCLIP (`{chosen.parent.name}`)", RECIPE, rows[RECIPE]),
        ("strong control", CONTROL, rows[CONTROL]),
    ]
    naive = _naive_rows(loaded, chosen)
    if naive:
        arms.append(("CountCLIP, naive filter", NAIVE, naive))
    if "baseline" in rows:
        arms.append(("baseline", "baseline", rows["baseline"]))
    lines = [
        f"On {SPLIT_TITLES[split]}. Latest committed recipe (commit `{commit}`); chance 11.1%.",
        "",
        "| model | what it is | seeds | accuracy % | Δ vs control [95% CI over seeds] |",
        "|---|---|---:|---:|---:|",
    ]
    for label, arm, per_seed in arms:
        found = compare(per_seed, rows[CONTROL]) if arm != CONTROL else None
        delta = f"{found.t_text()}" if found is not None else ""
        if found is not None and found.fewer_seeds:
            delta += f" (seeds {', '.join(map(str, found.seeds))})"
        accuracy = mean_sd([r["accuracy"] for r in per_seed])
        lines.append(f"| {label} | {DEFINITIONS[arm]} | {seeds(per_seed)} | {accuracy} | {delta} |")
    cues = {c: a for c, a in (run.get("cues") or {}).items() if c != "all cues"}
    if cues:
        cue = max(cues, key=cues.get)
        lines.append(
            f"| best single cue | a classifier on one layout property ({cue}), no model "
            f"([why](docs/protocol.md#counting-not-size)) | – | {pct(cues[cue])} | |"
        )
    return "\n".join(lines)


def _naive_rows(
    loaded: Mapping[Path, tuple[dict[str, Any], dict[str, list[dict]]]],
    recipe: Path,
) -> list[dict] | None:
    """The naive-filter runs of the recipe's own commit: in the recipe's folder, else in a
    folder of the same commit whose control is the recipe's control (the same runs)."""
    run, rows = loaded[recipe]
    if NAIVE in rows:
        return rows[NAIVE]
    for _folder, (other_run, other) in sorted(loaded.items()):
        if NAIVE in other and same_recipe(run, rows, other_run, other):
            return other[NAIVE]
    return None
