"""The sections of ``docs/results.md`` that are no CountBench run: the validation runs that
tuned the recipes (``results/validation/*.json``) and the cue-only baselines at finer object
scales (``results/cues/object-scale.json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from countclip.evaluation.cues import ALL_CUES
from countclip.synthetic.scene_cues import CUES
from countclip_experiments.render.result_rows import pct


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _locked(run: Mapping[str, Any]) -> str:
    """Which tower parts were frozen, in words ('' when both towers trained whole). Records made
    before they carried the lock settings are of runs with the default: nothing locked."""
    parts = []
    if run.get("lock_image"):
        groups = run["lock_image_unlocked_groups"]
        parts.append(f"image tower locked but its last {_plural(groups, 'group')}")
    if run.get("lock_text"):
        layers = run["lock_text_unlocked_layers"]
        parts.append(f"text tower locked but its last {_plural(layers, 'layer')}")
    return "".join(f"; {part}" for part in parts)


def _setting(run: Mapping[str, Any]) -> str:
    """A fine-tune's tuned settings in words: the loss, λ0 and scheme, the counting set, and
    the locked parts of the towers."""
    if run["count_loss"] == "none":
        loss = "L_CLIP only"
    else:
        loss = f"{run['count_loss']}, λ0 {run['lambda0']:g} {run['lambda_scheme']}"
    return f"{loss}; {run['counter'] or 'naive'} counting set{_locked(run)}"


def validation_section(results: Path) -> str:
    """Every recorded tuning run (``results/validation/*.json``), in record-name order."""
    records = [json.loads(p.read_text()) for p in sorted((results / "validation").glob("*.json"))]
    if not records:
        return ""
    lines = [
        "## Validation runs (tuning)",
        "",
        "What chose the recipes: balanced accuracy (mean per-count recall) on the counting",
        "validation split at the last step and at the selected one, and zero-shot accuracy on the",
        "zero-shot sets' validation scenes; no CountBench is read. One block per recorded",
        "tuning command (`python -m countclip_experiments.tuning --record`, or",
        "`python -m countclip_experiments.records` for a fine-tune made before), with what it",
        "was for.",
        "",
        "| record | seed | baseline steps | steps | lr | counting fraction | loss, counting set"
        " | balanced val (last) | best @ step | zero-shot val shape | shape×colour |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for record in records:
        for run in record["runs"]:
            if run.get("wise_ft_alpha") is not None:
                continue  # in the WiSE-FT table below
            zs = run["zero_shot_val"]
            lines.append(
                f"| {record['name']} | {run['seed']} | {run['baseline_steps']} | {run['steps']} | "
                f"{run['lr']:g} | {run['counting_fraction']:g} | {_setting(run)} | "
                f"{run['val_balanced_last']:.3f} | "
                f"{run['val_balanced_best']:.3f} @ {run['best_step']} | "
                f"{pct(zs.get('shape'))} | {pct(zs.get('shape_colour'))} |"
            )
    lines += _wise_ft_table(records)
    lines += ["", "What each record was for:", ""]
    lines += [f"- {r['name']}: {r['note'] or '(no note)'}" for r in records]
    return "\n".join(lines) + "\n"


def wise_ft_sweeps(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every WiSE-FT sweep of the records: one per fine-tune that has WiSE-FT rows, with its
    points ``{alpha, balanced, per_count, shape, shape_colour}`` by α (α = 1 is the fine-tune's
    selected checkpoint itself: its balanced score is the best one of its curve)."""
    sweeps = []
    for record in records:
        runs = record["runs"]
        plain = {r["train_fingerprint"]: r for r in runs if r.get("wise_ft_alpha") is None}
        for fingerprint, run in plain.items():
            wise = [
                r
                for r in record["runs"]
                if r.get("wise_ft_alpha") is not None and r["train_fingerprint"] == fingerprint
            ]
            if not wise:
                continue
            points = [_point(1.0, run["val_balanced_best"], run.get("val_per_count_best"), run)]
            points += [
                _point(r["wise_ft_alpha"], r["val_balanced_wise_ft"], r["val_per_count_wise_ft"], r)
                for r in wise
            ]
            sweeps.append(
                {
                    "record": record["name"],
                    "run": run,
                    "setting": _setting(run),
                    "points": sorted(points, key=lambda p: p["alpha"]),
                }
            )
    return sweeps


def _point(
    alpha: float, balanced: float, per_count: Mapping[str, float] | None, run: Mapping[str, Any]
) -> dict[str, Any]:
    zs = run["zero_shot_val"]
    return {
        "alpha": alpha,
        "balanced": balanced,
        "per_count": dict(per_count or {}),
        "shape": zs.get("shape"),
        "shape_colour": zs.get("shape_colour"),
    }


def _lowest(per_count: Mapping[str, float]) -> str:
    if not per_count:
        return "–"
    count = min(per_count, key=lambda c: (per_count[c], int(c)))
    return f"{per_count[count]:.2f} ({count})"


def _wise_ft_table(records: list[Mapping[str, Any]]) -> list[str]:
    sweeps = wise_ft_sweeps(records)
    if not sweeps:
        return []
    lines = [
        "",
        "WiSE-FT sweeps: each fine-tune above interpolated with the baseline it started from,",
        "θ(α) = (1 − α)·θ_baseline + α·θ_fine-tuned (α = 1: the fine-tune's selected",
        "checkpoint). Balanced accuracy on the counting validation split and zero-shot accuracy",
        "on the validation scenes of θ(α); the lowest per-count validation recall, and its count.",
        "",
        "| record | seed | loss, counting set | α | balanced val | lowest count | zero-shot val "
        "shape | shape×colour |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for sweep in sweeps:
        for point in sweep["points"]:
            lines.append(
                f"| {sweep['record']} | {sweep['run']['seed']} | {sweep['setting']} | "
                f"{point['alpha']:g} | {point['balanced']:.3f} | {_lowest(point['per_count'])} | "
                f"{pct(point['shape'])} | {pct(point['shape_colour'])} |"
            )
    return lines


def object_scale_section(results: Path) -> str:
    """The single-cue baselines of the development CountBenches at the object scales finer
    images would allow (``countclip_experiments.cue_scale``): does the convex-hull cue go
    away?"""
    path = results / "cues" / "object-scale.json"
    if not path.exists():
        return ""
    record = json.loads(path.read_text())
    columns = (*CUES, ALL_CUES)
    lines = [
        "## Cue-only baselines at finer object scales",
        "",
        "From `python -m countclip_experiments.cue_scale` (layouts only, no model): the world's",
        "layout with its smallest object set to what an image of the named side would allow",
        "(~8 px), each cue's classifier accuracy % on the dev / dev2 CountBench of",
        f"`{record['config']}` (dev2 was the confirmatory CountBench when this was made).",
        "Every variant tried is listed; the shipped world is the first row and is unchanged.",
        "",
        "| variant | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in record["variants"]:
        cells = [f"{pct(row['dev'][c])} / {pct(row['dev2'][c])}" for c in columns]
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + " |")
    chance = record["variants"][0]["chance"]
    lines += [
        "",
        f"Chance {pct(chance)}%; a single cue should stay within chance + 5 = "
        f"{pct(chance + 0.05)}%.",
    ]
    return "\n".join(lines) + "\n"
