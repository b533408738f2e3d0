"""The caption stage's files: stream the candidate captions through :class:`CaptionParser`, write
``counting.parquet`` (accepted rows, with the count and the number's character span) and
``rejected.parquet`` (with the reason), and return the tallies.

Apart from the parser because the parser is also used alone (CountBench scoring, tests, the
caption benchmark) and must not carry file handling with it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from countclip.config import CaptionConfig
from countclip.data.captions.parser import CaptionError, CaptionParser, CountCaption
from countclip.progress import Progress, report_to

_COUNTING_SCHEMA = pa.schema(
    [
        ("SAMPLE_ID", pa.int64()),
        ("URL", pa.string()),
        ("TEXT", pa.string()),
        ("HEIGHT", pa.int64()),
        ("WIDTH", pa.int64()),
        ("count", pa.int32()),
        ("number_start", pa.int32()),
        ("number_end", pa.int32()),
        ("number_word", pa.string()),
    ]
)
_REJECTED_SCHEMA = pa.schema(
    [("SAMPLE_ID", pa.int64()), ("TEXT", pa.string()), ("reason", pa.string())]
)
_INPUT_COLUMNS = ("SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH")


def _open_candidates(path: str) -> pq.ParquetFile:
    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError as exc:
        raise CaptionError(f"candidates parquet not found: {path}") from exc
    except (OSError, pa.ArrowInvalid) as exc:
        raise CaptionError(f"{path}: not a readable parquet file: {exc}") from exc
    names = set(pf.schema_arrow.names)
    missing = [c for c in _INPUT_COLUMNS if c not in names]
    if missing:
        raise CaptionError(f"{path}: missing column(s) {', '.join(missing)}")
    return pf


def label_captions(
    candidates: str, cfg: CaptionConfig, work: Path, progress: Progress | None = None
) -> tuple[dict, dict]:
    """Parse every caption of the ``candidates`` parquet; write ``counting.parquet`` (accepted,
    with the count and the number's span) and ``rejected.parquet`` (with the reason) into
    ``work``; return ``(outputs, stats)``. Streams ``cfg.rows_per_chunk`` rows at a time, so
    memory does not grow with the input."""
    report = report_to(progress)
    source = candidates
    pf = _open_candidates(source)
    total = max(pf.metadata.num_rows, 1)
    parser = CaptionParser.from_config(cfg)
    reasons: Counter[str] = Counter()
    counts: Counter[int] = Counter()
    seen = 0
    counting_w = pq.ParquetWriter(work / "counting.parquet", _COUNTING_SCHEMA)
    rejected_w = pq.ParquetWriter(work / "rejected.parquet", _REJECTED_SCHEMA)
    try:
        for batch in pf.iter_batches(batch_size=cfg.rows_per_chunk, columns=_INPUT_COLUMNS):
            cols = batch.to_pydict()
            texts = cols["TEXT"]
            keep: list[int] = []
            spans: list[CountCaption] = []
            rej: list[int] = []
            rej_reason: list[str] = []
            results = parser.pipe(texts, batch_size=cfg.batch_size, n_process=cfg.n_process)
            for row, (cc, reason) in enumerate(results):
                if cc is None:
                    rej.append(row)
                    rej_reason.append(reason or "no_number")
                else:
                    keep.append(row)
                    spans.append(cc)
            if keep:
                counting_w.write_table(_counting_table(cols, keep, spans))
            if rej:
                rejected_w.write_table(_rejected_table(cols, rej, rej_reason))
            reasons.update(rej_reason)
            counts.update(cc.count for cc in spans)
            seen += len(texts)
            report(seen / total, f"{seen}/{total} captions, {sum(counts.values())} kept")
    finally:
        counting_w.close()
        rejected_w.close()
    if not counts:
        raise CaptionError(
            f"{source}: none of {seen} candidate captions states a count two..ten "
            f"(rejected: {dict(reasons)})"
        )
    kept = sum(counts.values())
    outputs = {"counting": work / "counting.parquet", "rejected": work / "rejected.parquet"}
    return outputs, {
        "rows_read": seen,
        "kept": kept,
        "rejected": seen - kept,
        "rejected_by_reason": dict(sorted(reasons.items())),
        "counts_before_download": {str(c): counts[c] for c in sorted(counts)},
    }


def _rejected_table(cols: dict, rows: list[int], reasons: list[str]) -> pa.Table:
    return pa.table(
        {
            "SAMPLE_ID": [cols["SAMPLE_ID"][r] for r in rows],
            "TEXT": [cols["TEXT"][r] for r in rows],
            "reason": reasons,
        },
        schema=_REJECTED_SCHEMA,
    )


def _counting_table(cols: dict, rows: list[int], spans: list[CountCaption]) -> pa.Table:
    return pa.table(
        {
            "SAMPLE_ID": [cols["SAMPLE_ID"][r] for r in rows],
            "URL": [cols["URL"][r] for r in rows],
            "TEXT": [cols["TEXT"][r] for r in rows],
            "HEIGHT": [cols["HEIGHT"][r] for r in rows],
            "WIDTH": [cols["WIDTH"][r] for r in rows],
            "count": [cc.count for cc in spans],
            "number_start": [cc.start for cc in spans],
            "number_end": [cc.end for cc in spans],
            "number_word": [cc.word for cc in spans],
        },
        schema=_COUNTING_SCHEMA,
    )


def merge_parts(parts: list[dict], work: Path) -> tuple[dict, dict]:
    """One caption result from per-part ones (the Dask path maps the caption stage over
    parquet parts): the three tables concatenated into ``work``, the tallies summed; returns
    ``(outputs, stats)``. ``parts`` are the part stages' manifests."""
    part_manifests = parts
    outputs = {
        name: _concat([m["outputs"].get(name) for m in part_manifests], work / f"{name}.parquet")
        for name in ("counting", "rejected", "common")
    }
    stats = [m["stats"] for m in part_manifests]
    return outputs, {
        "parts": len(part_manifests),
        **{k: sum(int(s.get(k) or 0) for s in stats) for k in ("rows_read", "kept")},
        "rejected": sum(int(s.get("rejected") or 0) for s in stats),
        "rejected_by_reason": _sum_maps([s.get("rejected_by_reason") for s in stats]),
        "counts_before_download": _sum_maps([s.get("counts_before_download") for s in stats]),
    }


def _concat(paths: list[str | None], out: Path) -> Path:
    tables = [pq.read_table(p) for p in paths if p and Path(p).exists()]
    pq.write_table(pa.concat_tables(tables, promote_options="default"), out)
    return out


def _sum_maps(maps: list[dict | None]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for m in maps:
        total.update({str(k): int(v) for k, v in (m or {}).items()})
    return dict(sorted(total.items(), key=lambda kv: (len(kv[0]), kv[0])))
