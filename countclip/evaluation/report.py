"""Side-by-side comparison of evaluated models (e.g. baseline / L_CLIP-only control / CountCLIP).

Input is what the evaluation stage writes: label -> ``results.json`` dict (``{"countbench": ...,
"zero_shot": ...}``), the stage manifest that points to it, or a bare CountBench results dict
from :func:`evaluate_countbench`. The
first model is the reference: every other model gets a difference column in percentage points,
so "what did training buy, and did it cost shape/colour recognition" reads off one table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from countclip.atomic import atomic_write_json, atomic_write_text
from countclip.counts import COUNTS
from countclip.evaluation.cues import cue_blind_rows


def _resolve(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """An evaluation stage *manifest* (what the Prefect tasks pass around) stands for the
    ``results.json`` it points to; a results dict is used as it is."""
    path = (result.get("outputs") or {}).get("results") if "countbench" not in result else None
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text())
    return result


def _countbench(result: Mapping[str, Any]) -> Mapping[str, Any]:
    return result.get("countbench") or result


def _per_count(result: Mapping[str, Any]) -> dict[int, float | None]:
    raw = _countbench(result).get("per_count_accuracy") or {}
    return {int(k): v for k, v in raw.items()}


def _rows(result: Mapping[str, Any]) -> list[tuple[str, float | None, str | None]]:
    """(metric name, value in 0..1 or None, free text) rows of one model, in table order."""
    cb = _countbench(result)
    rows: list[tuple[str, float | None, str | None]] = [
        ("CountBench accuracy", cb.get("accuracy"), None),
        ("mean per-class recall", cb.get("mean_per_class_recall"), None),
    ]
    per_count = _per_count(result)
    for c in COUNTS:
        rows.append((f"accuracy, count {c}", per_count.get(c), None))
    for task, zs in sorted((result.get("zero_shot") or {}).items()):
        rows.append((f"zero-shot {task}: accuracy", zs.get("accuracy"), None))
        rows.append((f"zero-shot {task}: mean recall", zs.get("mean_per_class_recall"), None))
    evaluated = cb.get("evaluated_main", cb.get("evaluated"))
    total = cb.get("rows_main", cb.get("rows"))
    coverage = f"{evaluated} of {total}" if evaluated is not None else None
    extra = int(cb.get("evaluated") or 0) - int(
        cb.get("evaluated_main") or cb.get("evaluated") or 0
    )
    if coverage and extra > 0:
        coverage += f" (+{extra})"
    rows.append(("images evaluated", None, coverage))
    return rows


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _delta(value: float | None, ref: float | None) -> str:
    if value is None or ref is None:
        return "–"
    return f"{100 * (value - ref):+.1f} pp"


def comparison_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The markdown table: one column per model, then one Δ column per non-reference model."""
    labels = list(results)
    if not labels:
        raise ValueError("write_comparison_report: no results given")
    results = {label: _resolve(results[label]) for label in labels}
    columns = {label: _rows(results[label]) for label in labels}
    ref = labels[0]
    header = ["metric", *labels, *(f"Δ {label} − {ref}" for label in labels[1:])]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---", *(["---:"] * (len(header) - 1))]) + "|",
    ]
    names = [name for name, _, _ in columns[ref]]
    for other in labels[1:]:  # metrics only some models have (e.g. zero-shot) still get a row
        names += [n for n, _, _ in columns[other] if n not in names]
    for name in names:
        cells = []
        values = {}
        for label in labels:
            match = next((row for row in columns[label] if row[0] == name), None)
            if match is None:
                cells.append("–")
                values[label] = None
                continue
            _, value, text = match
            values[label] = value
            cells.append(text if text is not None else _pct(value))
        deltas = [
            _delta(values[label], values[ref]) if name != "images evaluated" else ""
            for label in labels[1:]
        ]
        lines.append("| " + " | ".join([name, *cells, *deltas]) + " |")
    return "\n".join(lines)


def _correct_by_id(result: Mapping[str, Any]) -> dict[int, bool]:
    """Per-image correctness from the evaluation's predictions parquet."""
    import pyarrow.parquet as pq

    path = (_countbench(result).get("outputs") or {}).get("predictions")
    if not path or not Path(path).is_file():
        return {}
    table = pq.read_table(path, columns=["SAMPLE_ID", "correct"]).to_pydict()
    return dict(zip(table["SAMPLE_ID"], table["correct"], strict=True))


def paired_comparison(
    model: Mapping[str, Any],
    reference: Mapping[str, Any],
    seed: int = 0,
    only: Collection[int] | None = None,
) -> dict[str, Any] | None:
    """``model`` − ``reference`` on the images both scored (of those, the ``SAMPLE_ID``s in
    ``only`` when given): the accuracy difference with a paired bootstrap 95% CI over images,
    and McNemar's test (one seed: what a single run can say; the benchmark adds seeds)."""
    from countclip.evaluation.statistics import mcnemar, paired_bootstrap_ci

    mine, theirs = _correct_by_id(model), _correct_by_id(reference)
    ids = sorted(i for i in set(mine) & set(theirs) if only is None or i in only)
    if not ids:
        return None
    a, b = [mine[i] for i in ids], [theirs[i] for i in ids]
    return {
        "images": len(ids),
        **paired_bootstrap_ci(a, b, seed=seed),
        "mcnemar_p": mcnemar(a, b)["p_value"],
    }


def _paired_text(cmp: Mapping[str, Any]) -> str:
    return (
        f"{100 * cmp['diff']:+.1f} points, paired bootstrap 95% CI [{100 * cmp['low']:+.1f}, "
        f"{100 * cmp['high']:+.1f}], McNemar p = {cmp['mcnemar_p']:.2g}"
        + (" — the interval excludes 0" if cmp["low"] > 0 or cmp["high"] < 0 else "")
    )


def _paired_lines(
    results: Mapping[str, Mapping[str, Any]],
    pairs: Sequence[tuple[str, str]],
    cue_blind: Collection[int] | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """One line per pair: on every image both scored, and (with ``cue_blind``) on the images
    whose count no single-cue classifier guesses."""
    lines, found = [], {}
    for model, reference in pairs:
        if model not in results or reference not in results:
            continue
        cmp = paired_comparison(results[model], results[reference])
        if cmp is None:
            continue
        found[f"{model} - {reference}"] = cmp
        text = f"**{model} − {reference}** on the same {cmp['images']} images: {_paired_text(cmp)}."
        blind = None
        if cue_blind is not None:
            blind = paired_comparison(results[model], results[reference], only=cue_blind)
        if blind is not None:
            found[f"{model} - {reference}, cue-blind images"] = blind
            text += (
                f" On the {blind['images']} of them whose count no single-cue classifier "
                f"guesses: {_paired_text(blind)}."
            )
        lines.append(text)
    return lines, found


def _cue_lines(cues: Mapping[str, float]) -> list[str]:
    lines = [
        "Cue-only baselines on the same CountBench: a classifier that sees one non-numerical "
        "property of each scene's layout (chance 11.1%):",
        "",
        "| cue | accuracy |",
        "|---|---:|",
    ]
    return lines + [f"| {cue} | {_pct(acc)} |" for cue, acc in cues.items()]


def write_comparison_report(
    results: Mapping[str, Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    *,
    pairs: Sequence[tuple[str, str]] = (("countclip", "control"),),
    cues: Mapping[str, float] | None = None,
    cue_scenes: Mapping[str, Any] | None = None,
) -> dict:
    """Write ``report.md`` (the table, the paired comparisons of ``pairs``, the cue-only
    baselines when given, each model's source and timing), ``per_count.png`` (grouped bars per
    count, all models) and ``comparison.json``; return their paths and the text to print.

    ``cue_scenes`` (each single-cue classifier's guess per CountBench row, as the world's cue
    report keeps them) adds each pair's difference on the images no single cue guesses."""
    from countclip.plots import plot_per_count_accuracy

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = comparison_table(results)
    labels = list(results)
    results = {label: _resolve(results[label]) for label in labels}
    png = plot_per_count_accuracy(
        {
            label: {c: v for c, v in _per_count(results[label]).items() if v is not None}
            for label in labels
        },
        out_dir / "per_count.png",
    )
    blind = cue_blind_rows(cue_scenes) if cue_scenes is not None else None
    paired, comparisons = _paired_lines(results, pairs, blind)
    summary_text = "\n\n".join([table, *paired, *(["\n".join(_cue_lines(cues))] if cues else [])])
    lines = [
        "# CountBench comparison",
        "",
        f"Reference: **{labels[0]}**; Δ columns are percentage points against it. "
        f"Chance is {100 / len(COUNTS):.1f}% (nine counts).",
        "",
        summary_text,
        "",
        "![accuracy per count](per_count.png)",
        "",
        "## Models",
        "",
    ]
    for label in labels:
        result = results[label]
        cb = _countbench(result)
        model = result.get("model") or {}
        source = model.get("checkpoint") or model.get("pretrained") or "random init"
        timing = cb.get("timing") or {}
        line = f"- **{label}**: `{model.get('name', '?')}` ({source})"
        if cb.get("message"):
            line += f"; {cb['message']}"
        if timing.get("images_per_second"):
            line += (
                f"; {timing['images_per_second']} images/s, text encoding "
                f"{100 * (timing.get('text_share') or 0):.0f}% of the time"
            )
        lines.append(line)
    markdown = atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n")
    summary = {
        label: {
            "accuracy": _countbench(results[label]).get("accuracy"),
            "mean_per_class_recall": _countbench(results[label]).get("mean_per_class_recall"),
            "per_count_accuracy": _per_count(results[label]),
            "zero_shot": {
                task: zs.get("accuracy")
                for task, zs in (results[label].get("zero_shot") or {}).items()
            },
        }
        for label in labels
    }
    json_path = atomic_write_json(
        out_dir / "comparison.json",
        {"models": summary, "paired": comparisons, "cues": dict(cues or {})},
    )
    return {
        "markdown": str(markdown),
        "table": summary_text,
        "per_count_png": str(png),
        "json": str(json_path),
        "reference": labels[0],
        "models": labels,
    }
