"""How good the count verification was, measured against a ground truth (the report's numbers).

The verify stage decides from pixels; on the synthetic world a ground truth says what each
image really shows (``ground_truth.parquet``: SAMPLE_ID, true_count, noise), so its decisions
can be scored: *precision* is the share of kept samples whose image shows the caption's count
(what the trainer learns from), *recall* the share of such samples that were kept (what
verification cost), the *counter accuracy* the share of images where the counter found exactly
the objects drawn. Read through ``sql/verification_quality.sql``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import duckdb

from countclip import sql

PathLike = str | os.PathLike[str]
_FIELDS = ("samples", "with_truth", "kept", "right", "kept_right", "counted", "exact")


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _summary(totals: Mapping[str, int]) -> dict[str, Any]:
    return {
        "samples": totals["samples"],
        "kept": totals["kept"],
        "kept_fraction": _ratio(totals["kept"], totals["samples"]),
        "precision": _ratio(totals["kept_right"], totals["kept"]),
        "recall": _ratio(totals["kept_right"], totals["right"]),
        "noise_before": _ratio(totals["with_truth"] - totals["right"], totals["with_truth"]),
        "counter_accuracy": _ratio(totals["exact"], totals["counted"]),
    }


def verification_quality(
    decisions: Mapping[str, Any] | PathLike, ground_truth: PathLike
) -> dict[str, Any]:
    """Precision, recall, kept fraction and counter accuracy of the verify stage's decisions
    (its manifest or ``decisions.parquet``) against ``ground_truth`` (a parquet with
    SAMPLE_ID, true_count, noise), overall, per caption count and per noise kind.

    ``noise_before`` is the share of samples whose image does not show the caption's count
    (what naive filtering trains on); ``1 - precision`` is that share after verification.
    """
    if isinstance(decisions, Mapping):
        try:
            decisions = decisions["outputs"]["decisions"]
        except KeyError as exc:
            raise ValueError("verify manifest: no outputs['decisions'] parquet path") from exc
    for label, path in (("decisions", decisions), ("ground truth", ground_truth)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: {label} parquet not found")
    con = duckdb.connect()
    try:
        rows = con.execute(
            sql.load("verification_quality.sql"),
            {"decisions": str(decisions), "truth": str(ground_truth)},
        ).fetchall()
    finally:
        con.close()
    overall = dict.fromkeys(_FIELDS, 0)
    per_count: dict[int, dict[str, int]] = {}
    per_noise: dict[str, dict[str, int]] = {}
    for count, noise, *values in rows:
        for bucket in (
            overall,
            per_count.setdefault(count, dict.fromkeys(_FIELDS, 0)),
            per_noise.setdefault(noise, dict.fromkeys(_FIELDS, 0)),
        ):
            for name, value in zip(_FIELDS, values, strict=True):
                bucket[name] += int(value)
    result = _summary(overall)
    result["per_count"] = {c: _summary(t) for c, t in sorted(per_count.items())}
    result["per_noise"] = {
        n: {k: v for k, v in _summary(t).items() if k in ("samples", "kept", "kept_fraction")}
        for n, t in sorted(per_noise.items())
    }
    return result
