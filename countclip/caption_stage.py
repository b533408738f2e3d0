"""Stage 2 as files: stream the candidate captions through :class:`CaptionParser`, write
``counting.parquet`` (accepted rows, with the count and the number's character span) and
``rejected.parquet`` (with the reason), atomically, and a manifest with the tallies.

Apart from the parser because the parser is also used alone (CountBench scoring, tests, the
caption benchmark) and must not carry file handling with it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from countclip.captions import CaptionError, CaptionParser, CountCaption
from countclip.config import CaptionConfig
from countclip.stage import atomic_dir, fingerprint, read_manifest, stage_dir, write_manifest

STAGE = "captions"
STAGE_VERSION = "1"
Progress = Callable[[float, str], None] | None

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


def run_caption_stage(
    metadata_manifest: dict, cfg: CaptionConfig, data_root: str, progress: Progress = None
) -> dict:
    """Parse every candidate caption; write ``counting.parquet`` (accepted, with the count and
    the number's span) and ``rejected.parquet`` (with the reason). Streams the candidates in
    ``cfg.rows_per_chunk`` row batches, so memory does not grow with the input."""
    started = time.perf_counter()
    report = progress or (lambda _f, _m: None)
    fp = fingerprint(STAGE, cfg, metadata_manifest["fingerprint"], STAGE_VERSION)
    out = stage_dir(data_root, STAGE, fp)
    done = read_manifest(out)
    if done is not None:
        return done
    source = metadata_manifest["outputs"]["candidates"]
    pf = _open_candidates(source)
    total = max(pf.metadata.num_rows, 1)
    parser = CaptionParser.from_config(cfg)
    reasons: Counter[str] = Counter()
    counts: Counter[int] = Counter()
    seen = 0
    with atomic_dir(out) as tmp:
        counting_w = pq.ParquetWriter(tmp / "counting.parquet", _COUNTING_SCHEMA)
        rejected_w = pq.ParquetWriter(tmp / "rejected.parquet", _REJECTED_SCHEMA)
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
                    rejected_w.write_table(
                        pa.table(
                            {
                                "SAMPLE_ID": [cols["SAMPLE_ID"][r] for r in rej],
                                "TEXT": [texts[r] for r in rej],
                                "reason": rej_reason,
                            },
                            schema=_REJECTED_SCHEMA,
                        )
                    )
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
    return write_manifest(
        out,
        {
            "stage": STAGE,
            "fingerprint": fp,
            "directory": str(Path(out).resolve()),
            "outputs": {
                "counting": str((out / "counting.parquet").resolve()),
                "rejected": str((out / "rejected.parquet").resolve()),
                "common": metadata_manifest["outputs"].get("common"),
            },
            "inputs": {"metadata": metadata_manifest["fingerprint"]},
            "config": cfg,
            "seconds": round(time.perf_counter() - started, 3),
            "rows_read": seen,
            "kept": kept,
            "rejected": seen - kept,
            "rejected_by_reason": dict(sorted(reasons.items())),
            "counts_before_download": {str(c): counts[c] for c in sorted(counts)},
        },
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
