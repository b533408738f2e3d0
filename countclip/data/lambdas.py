"""Class frequencies of what was *downloaded* -> λ per count.

λ weights the counting loss per count class so that the long LAION tail (7..10 objects) is not
drowned by "two". The frequencies come from the download stage's results (successes only),
because what matters is what the trainer will see, not what the metadata promised.

Formulas (docs/design.md, exact), with n_c the downloaded samples of count c, n = Σ n_c:

- constant: λ_c = λ0
- norm:     λ_c = (1 − n_c / n) · λ0
- modal:    λ_c = (n_modal / n_c) · λ0, n_modal = n_c of the most frequent class
- log:      σ_c = log2(log2(n / n_c)); λ_c = ((σ_c − σ_min) / σ_max + 1) · λ0

Edge cases (defined here, tested in tests/test_lambdas.py):

- **Missing class** (a count in 2..10 absent from ``frequencies`` or with n_c = 0): it gets the
  largest λ of the present classes. Such a count can still reach the trainer (another split,
  a later download), and it is at least as rare as the rarest present class, so it should be
  weighted at least as much; modal and log are undefined at n_c = 0 (division by zero,
  log2(∞)), and one rule for every scheme is easier to reason about than per-scheme limits.
- **Zero samples** (n = 0): nothing to balance, every count gets λ0.
- **A single present class** (n_c = n): nothing to balance, every count gets λ0 in every
  scheme. The literal norm formula would give 0 there and silently switch the counting loss
  off; log is undefined (log2(log2(1)) = log2(0)).
- **σ_max = 0** (log): with ≥ 2 present classes σ_max ≥ 0, and σ_max = 0 only when exactly
  two classes have equal counts (then every σ_c = 0): every count gets λ0, the limit of
  "all classes equally frequent".
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb

from countclip import sql
from countclip.atomic import atomic_write_json
from countclip.config import LambdaConfig
from countclip.counts import COUNTS
from countclip.progress import Progress, report_to

SCHEMES: tuple[str, ...] = ("constant", "norm", "modal", "log")

PathLike = str | os.PathLike[str]


def _clean_frequencies(frequencies: Mapping[Any, Any]) -> dict[int, int]:
    """Integer keys (JSON gives strings) and non-negative integer counts."""
    clean: dict[int, int] = {}
    for key, value in frequencies.items():
        try:
            count, n = int(key), int(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"frequencies: {key!r} -> {value!r} is not int -> int") from exc
        if n < 0:
            raise ValueError(f"frequencies: count {count} has a negative frequency {n}")
        clean[count] = clean.get(count, 0) + n
    return clean


def compute_lambdas(
    frequencies: Mapping[int, int], scheme: str, lambda0: float = 1.0
) -> dict[int, float]:
    """λ per count for ``scheme`` (constant, norm, modal, log), exactly as in DESIGN.md.

    The result has a λ for every count in 2..10 and for any other key of ``frequencies``.
    See the module docstring for the edge cases (missing class, zero samples, single class,
    σ_max = 0).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: {scheme!r} is not one of {', '.join(SCHEMES)}")
    if not math.isfinite(lambda0) or lambda0 < 0:
        raise ValueError(f"lambda0: {lambda0!r} must be a finite number >= 0")
    freq = _clean_frequencies(frequencies)
    classes = sorted(set(COUNTS) | set(freq))
    present = {c: n for c, n in freq.items() if n > 0}
    n = sum(present.values())

    if scheme == "constant" or len(present) <= 1:
        return {c: float(lambda0) for c in classes}

    lam: dict[int, float]
    if scheme == "norm":
        lam = {c: (1.0 - nc / n) * lambda0 for c, nc in present.items()}
    elif scheme == "modal":
        n_modal = max(present.values())
        lam = {c: (n_modal / nc) * lambda0 for c, nc in present.items()}
    else:  # log
        sigma = {c: math.log2(math.log2(n / nc)) for c, nc in present.items()}
        s_min, s_max = min(sigma.values()), max(sigma.values())
        if s_max <= 1e-12:
            lam = {c: float(lambda0) for c in present}
        else:
            lam = {c: ((s - s_min) / s_max + 1.0) * lambda0 for c, s in sigma.items()}

    missing = max(lam.values())
    return {c: float(lam.get(c, missing)) for c in classes}


def _parquet_files(source: PathLike | Iterable[PathLike]) -> list[str]:
    """A parquet file, a directory of img2dataset output (every pass), or a list of files."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*.parquet") if not p.name.startswith("."))
            if not files:
                raise FileNotFoundError(f"{path}: no parquet files under this directory")
            return files
        if not path.exists():
            raise FileNotFoundError(f"{path}: download results parquet not found")
        return [str(path)]
    files = [str(p) for p in source]
    for f in files:
        if not Path(f).exists():
            raise FileNotFoundError(f"{f}: download results parquet not found")
    if not files:
        raise FileNotFoundError("class_frequencies: empty list of parquet files")
    return files


def class_frequencies(
    download_manifest_or_results_parquet: Mapping[str, Any] | PathLike | Iterable[PathLike],
) -> dict[int, int]:
    """Downloaded counting samples per count 2..10 (successes only), via sql/class_frequencies.sql.

    Accepts a download stage manifest (uses ``outputs["results"]``), its results.parquet, an
    img2dataset output directory (all per-shard parquet files, every pass) or a list of files.
    Every count 2..10 is in the result, with 0 where nothing was downloaded.
    """
    source = download_manifest_or_results_parquet
    if isinstance(source, Mapping):
        try:
            source = source["outputs"]["results"]
        except KeyError as exc:
            raise ValueError("download manifest: no outputs['results'] parquet path") from exc
    files = _parquet_files(source)
    query = sql.load("class_frequencies.sql")
    con = duckdb.connect()
    try:
        columns = {
            row[0]
            for row in con.execute(
                "SELECT name FROM parquet_schema($paths)", {"paths": files}
            ).fetchall()
        }
        for needed in ("status", "count"):
            if needed not in columns:
                raise ValueError(
                    f"{files[0]}: no '{needed}' column (not counting download output?)"
                )
        rows = con.execute(
            query, {"paths": files, "min_count": min(COUNTS), "max_count": max(COUNTS)}
        ).fetchall()
    finally:
        con.close()
    result = dict.fromkeys(COUNTS, 0)
    result.update({int(c): int(n) for c, n in rows})
    return result


def write_lambdas(
    frequencies_source: Mapping[str, Any] | PathLike,
    cfg: LambdaConfig,
    work: Path,
    progress: Progress | None = None,
) -> tuple[dict, dict]:
    """Class frequencies of ``frequencies_source`` (the counting download's manifest, or the
    verify stage's, whose ``results`` hold only the samples it kept) -> ``lambdas.json`` and
    ``lambdas.png`` in ``work``; returns ``(outputs, stats)``."""
    from countclip.plots import plot_class_frequencies  # matplotlib only when it runs

    report_to(progress)(0.0, "class frequencies")
    freqs = class_frequencies(frequencies_source)
    lambdas = compute_lambdas(freqs, cfg.scheme, cfg.lambda0)
    body = {
        "scheme": cfg.scheme,
        "lambda0": cfg.lambda0,
        "frequencies": {str(c): n for c, n in sorted(freqs.items())},
        "lambdas": {str(c): v for c, v in sorted(lambdas.items())},
    }
    atomic_write_json(work / "lambdas.json", body)
    plot_class_frequencies(freqs, lambdas, work / "lambdas.png")
    outputs = {"lambdas": work / "lambdas.json", "plot": work / "lambdas.png"}
    return outputs, {"counting_samples": sum(freqs.values()), **body}


def load_lambdas(path_or_manifest: Mapping[str, Any] | PathLike) -> dict[int, float]:
    """λ per count from a lambda stage manifest or its lambdas.json (int keys)."""
    if isinstance(path_or_manifest, Mapping):
        path_or_manifest = path_or_manifest["outputs"]["lambdas"]
    body = json.loads(Path(path_or_manifest).read_text())
    return {int(c): float(v) for c, v in body["lambdas"].items()}
