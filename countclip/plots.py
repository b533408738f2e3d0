"""Every PNG the project draws: class histogram, λ, loss curves, confusion matrix, per-count bars.

matplotlib runs headless (Agg): stages run in Prefect workers and tests with no display. Each
function builds its own ``Figure`` (no pyplot global state, so threads and repeated calls do not
leak figures), saves it through :func:`countclip.atomic.atomic_path` (a crash never leaves a
half-written PNG that a later cache hit would serve) and returns the final path.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)

import numpy as np
from matplotlib.figure import Figure

from countclip.atomic import atomic_path

PathLike = str | os.PathLike[str]


def _save(fig: Figure, path: PathLike, dpi: int = 110) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        # The temp name ends in ".tmp": name the format, or matplotlib cannot infer it.
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return path


def plot_class_frequencies(
    frequencies: Mapping[int, int], lambdas: Mapping[int, float], path: PathLike
) -> Path:
    """Two panels sharing the count axis: samples downloaded per count, and λ per count.

    Counts present in either mapping are shown; a count missing from one side shows as 0 there
    (so a class with no samples is visible rather than silently dropped).
    """
    counts = sorted({int(c) for c in frequencies} | {int(c) for c in lambdas})
    freq = {int(k): int(v) for k, v in frequencies.items()}
    lam = {int(k): float(v) for k, v in lambdas.items()}
    x = np.arange(len(counts))
    fig = Figure(figsize=(8, 3.4))
    ax1, ax2 = fig.subplots(1, 2)
    bars = ax1.bar(x, [freq.get(c, 0) for c in counts], color="#4C72B0")
    ax1.bar_label(bars, fontsize=7)
    ax1.set_title("counting samples per count")
    ax1.set_xlabel("count")
    ax1.set_ylabel("samples")
    bars = ax2.bar(x, [lam.get(c, 0.0) for c in counts], color="#DD8452")
    ax2.bar_label(bars, fmt="%.2f", fontsize=7)
    ax2.set_title("λ per count")
    ax2.set_xlabel("count")
    ax2.set_ylabel("λ")
    for ax in (ax1, ax2):
        ax.set_xticks(x, [str(c) for c in counts])
    fig.tight_layout()
    return _save(fig, path)


def _read_jsonl(path: PathLike) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                # A crash mid-write leaves a partial last line: skip it, but only the last one.
                rest = handle.read().strip()
                if rest:
                    raise ValueError(f"{path}: line {lineno} is not JSON: {exc}") from exc
                break
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        step = row.get("step")
        if value is None or step is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            xs.append(float(step))
            ys.append(value)
    return xs, ys


def plot_loss_curves(metrics_jsonl: PathLike, path: PathLike) -> Path:
    """Contrastive and counting loss against step, plus validation counting accuracy if logged.

    Rows lacking a key (e.g. ``val_count_acc`` logged only every ``eval_every`` steps) are simply
    not plotted for that series.
    """
    rows = _read_jsonl(metrics_jsonl)
    if not rows:
        raise ValueError(f"{metrics_jsonl}: no metric rows to plot")
    has_val = any(r.get("val_count_acc") is not None for r in rows)
    fig = Figure(figsize=(9 if has_val else 6, 3.6))
    axes = fig.subplots(1, 2 if has_val else 1)
    ax = axes[0] if has_val else axes
    for key, colour in (("contrastive_loss", "#4C72B0"), ("count_loss", "#DD8452")):
        xs, ys = _series(rows, key)
        if xs:
            ax.plot(xs, ys, label=key, color=colour, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("training losses")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    if has_val:
        xs, ys = _series(rows, "val_count_acc")
        axes[1].plot(xs, ys, marker="o", color="#55A868")
        axes[1].set_ylim(0, 1)
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("accuracy")
        axes[1].set_title("validation counting accuracy")
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrix(
    matrix: Any, counts: Sequence[int], path: PathLike, title: str = ""
) -> Path:
    """Confusion matrix (rows = true count, columns = predicted), cells annotated with counts.

    Colour is the row-normalised share, so rare classes are as readable as frequent ones.
    """
    m = np.asarray(matrix, dtype=float)
    n = len(counts)
    if m.shape != (n, n):
        raise ValueError(f"confusion matrix shape {m.shape} does not match {n} counts")
    row_sums = m.sum(axis=1, keepdims=True)
    share = np.divide(m, row_sums, out=np.zeros_like(m), where=row_sums > 0)
    fig = Figure(figsize=(5.6, 4.8))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true count")
    labels = [str(c) for c in counts]
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted count")
    ax.set_ylabel("true count")
    if title:
        ax.set_title(title)
    for i in range(n):
        for j in range(n):
            value = m[i, j]
            if value:
                text = f"{int(value)}" if float(value).is_integer() else f"{value:.2f}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    fig.tight_layout()
    return _save(fig, path)


def plot_per_count_accuracy(per_model: Mapping[str, Mapping[int, float]], path: PathLike) -> Path:
    """Grouped bars: one group per count, one bar per model (accuracy in 0..1)."""
    if not per_model:
        raise ValueError("plot_per_count_accuracy: no models given")
    counts = sorted({int(c) for acc in per_model.values() for c in acc})
    models = list(per_model)
    width = 0.8 / len(models)
    x = np.arange(len(counts))
    fig = Figure(figsize=(min(14.0, max(7.0, 2 + len(counts) * (0.3 + 0.3 * len(models)))), 3.8))
    ax = fig.subplots()
    for i, name in enumerate(models):
        acc = {int(k): v for k, v in per_model[name].items()}
        values = [float(acc[c]) if acc.get(c) is not None else np.nan for c in counts]
        ax.bar(x - 0.4 + width * (i + 0.5), values, width, label=name)
    ax.set_xticks(x, [str(c) for c in counts])
    ax.set_ylim(0, 1)
    ax.set_xlabel("true count")
    ax.set_ylabel("accuracy")
    ax.set_title("CountBench accuracy per count")
    ax.axhline(1 / max(len(counts), 1), color="grey", linestyle=":", linewidth=1, label="chance")
    ax.legend(fontsize=8, ncols=min(len(models) + 1, 4))
    fig.tight_layout()
    return _save(fig, path)
