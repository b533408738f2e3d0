"""The README's one results table (between its ``results:start``/``results:end`` markers): the
headline arms of every confirmatory run and of every run on dev2 (the former confirmatory
CountBench), each recipe against its control."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from countclip_experiments.render.generated_doc import REPO
from countclip_experiments.render.result_rows import (
    CONTROL,
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
HEADLINE = ("countclip", "control", "countclip-naive", "paper-literal")


def run_ids(per_seed: Sequence[dict]) -> tuple[str, ...]:
    """What identifies a row's runs: the evaluation fingerprint of every seed."""
    return tuple(r["evaluation_fingerprint"] for r in per_seed)


def _outcome(arm: str, run: Mapping[str, Any]) -> str:
    """What one seed's run produced: its arm, seed, the prediction for every image and its
    zero-shot scores. A run made again from other code or rebuilt data has another fingerprint;
    if this is equal, it reproduced the earlier run exactly and is the same row."""
    predictions = sorted(zip(run["sample_ids"], run["predicted"], strict=True))
    return json.dumps([arm, run["seed"], predictions, run["zero_shot"]], sort_keys=True)


SPLITS = {
    "confirmatory": "Confirmatory CountBench (fresh since issue 32; each recipe family reads it "
    "once, registered in [results/ledger.json](results/ledger.json) before the run)",
    "dev2": "dev2 CountBench: the confirmatory CountBench of these runs until issue 32, now a "
    "second development set (it served five experiments, and r2 was designed after r1's "
    "numbers on it were seen)",
}
"""The README's blocks, in order; the dev CountBench's tables are in docs/results.md."""


def readme_table(results: Path = RESULTS) -> str:
    """The README's one table: the headline arms of every confirmatory run, then of every run
    on dev2 (the former confirmatory CountBench), each recipe with its Δ against its control:
    per seed, the seed-level t-interval, the hierarchical bootstrap. Every recipe is shown, not
    the best one: choosing among them by their confirmatory numbers would be selection on the
    test set. A row whose runs an earlier experiment already shows (the same baselines and
    control), or made again with the very same outcome, is not repeated."""
    folders = run_folders(results)
    lines = [
        "Chance 11.1%. Δ: the model's CountBench accuracy minus its control's on the same "
        "images, seed s paired with seed s (points); the claims rest on the seed-level "
        "interval (Student's t over the per-seed differences), the bootstrap resamples seeds "
        "then images.",
    ]
    for split, title in SPLITS.items():
        chosen = [p for p in folders if p.name == split]
        lines += ["", f"**{title}.**", ""]
        if not chosen:
            lines.append("No registered run has finished on it yet.")
            continue
        lines += _block(chosen)
    return "\n".join(lines)


def _block(chosen: Sequence[Path]) -> list[str]:
    lines = [
        "| experiment | model | seeds | CountBench accuracy % | Δ vs control per seed "
        "| Δ [seed-level 95% t] | Δ [bootstrap 95%] |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    shown: dict[tuple[str, ...], str] = {}
    outcomes: dict[str, str] = {}  # the outcome of every shown seed -> "experiment arm"
    repeated: list[str] = []
    best_cue: tuple[str, float] | None = None
    for folder in chosen:
        run, rows = load(folder)
        control = rows.get(CONTROL)
        experiment = f"{folder.parent.name} (`{str(run.get('commit'))[:7]}`)"
        for arm in ("baseline", *HEADLINE):
            if arm not in rows:
                continue
            per_seed = rows[arm]
            cells = " | | "
            if control is not None and arm != CONTROL:
                found = compare(per_seed, control)
                if found is not None:
                    cells = f"{found.per_seed_text()} | {found.t_text()} | {found.bootstrap_text()}"
            if run_ids(per_seed) in shown:
                repeated.append(f"{folder.parent.name} {arm} ({shown[run_ids(per_seed)]})")
                continue
            keys = [_outcome(arm, r) for r in per_seed]
            earlier = {outcomes.get(key) for key in keys}
            if None not in earlier:
                repeated.append(
                    f"{folder.parent.name} {arm} (seed {seeds(per_seed)} of "
                    f"{', '.join(sorted(earlier))} made again: the same prediction for every "
                    "image)"
                )
                continue
            shown[run_ids(per_seed)] = f"the runs of {folder.parent.name} {arm}"
            outcomes.update(dict.fromkeys(keys, f"{folder.parent.name} {arm}"))
            accuracy = mean_sd([r["accuracy"] for r in per_seed])
            lines.append(f"| {experiment} | {arm} | {seeds(per_seed)} | {accuracy} | {cells} |")
        cues = {c: a for c, a in (run.get("cues") or {}).items() if c != "all cues"}
        if cues:
            cue = max(cues, key=cues.get)
            best_cue = (cue, cues[cue]) if best_cue is None or cues[cue] > best_cue[1] else best_cue
    if repeated:
        lines += ["", "Not repeated: " + "; ".join(repeated) + "."]
    if best_cue:
        lines += ["", f"Best single cue-only baseline on the same images: {best_cue[0]}, "
                  f"{pct(best_cue[1])}% ([why](docs/protocol.md))."]  # fmt: skip
    return lines
