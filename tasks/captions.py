"""Stage 2 task: spaCy number-word filter, count labels and counterfactual captions."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from prefect import task

from countclip.config import CaptionConfig
from tasks import artifacts
from tasks.caching import stage_cache


@task(
    name="captions",
    task_run_name="captions",
    cache_policy=stage_cache(
        "countclip.captions", "countclip.caption_rules", "countclip.caption_stage"
    ),
    persist_result=True,
    retries=0,
)
def captions_task(metadata_manifest: dict, cfg: CaptionConfig, data_root: str) -> dict:
    """Deterministic: no retries; bad input (a missing column) fails at once."""
    from countclip.caption_stage import run_caption_stage

    progress = artifacts.ProgressReporter("captions-progress", "caption parsing")
    manifest = run_caption_stage(metadata_manifest, cfg, data_root, progress=progress)
    progress.done()
    rejected = manifest.get("rejected_by_reason") or {}
    artifacts.mapping_table(
        "captions-rejected-by-reason",
        rejected,
        ("reason", "rows"),
        "rows rejected by the caption filter, by reason",
    )
    counts = manifest.get("counts_before_download") or {}
    artifacts.mapping_table(
        "captions-counts-before-download",
        counts,
        ("count", "rows"),
        "counting captions kept, per count, before download",
    )
    artifacts.markdown("captions-summary", artifacts.manifest_markdown("Captions", manifest))
    return manifest


def _concat(paths: list[str], out: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from countclip.stage import atomic_path

    tables = [pq.read_table(p) for p in paths if p and Path(p).exists()]
    table = pa.concat_tables(tables, promote_options="default")
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return str(out.resolve())


def _sum_maps(maps: list[dict]) -> dict:
    total: Counter = Counter()
    for m in maps:
        total.update({str(k): int(v) for k, v in (m or {}).items()})
    return dict(sorted(total.items()))


@task(
    name="merge-captions",
    task_run_name="merge-captions",
    cache_policy=stage_cache("countclip.stage"),
    persist_result=True,
    retries=0,
)
def merge_captions_task(part_manifests: list[dict], data_root: str) -> dict:
    """One caption manifest from per-part ones (the Dask path maps captions over parts)."""
    from countclip.stage import fingerprint, read_manifest, stage_dir, write_manifest

    fp = fingerprint("captions-merged", [m["fingerprint"] for m in part_manifests])
    out = stage_dir(data_root, "captions", fp)
    done = read_manifest(out)
    if done is not None:
        return done
    out.mkdir(parents=True, exist_ok=True)
    outputs = {
        name: _concat([m["outputs"].get(name) for m in part_manifests], out / f"{name}.parquet")
        for name in ("counting", "rejected", "common")
    }
    manifest = write_manifest(
        out,
        {
            "stage": "captions",
            "fingerprint": fp,
            "directory": str(out.resolve()),
            "outputs": outputs,
            "inputs": {f"part-{i}": m["fingerprint"] for i, m in enumerate(part_manifests)},
            "config": part_manifests[0].get("config"),
            "seconds": sum(float(m.get("seconds") or 0) for m in part_manifests),
            "parts": len(part_manifests),
            "rows_read": sum(int(m.get("rows_read") or 0) for m in part_manifests),
            "kept": sum(int(m.get("kept") or 0) for m in part_manifests),
            "rejected": sum(int(m.get("rejected") or 0) for m in part_manifests),
            "rejected_by_reason": _sum_maps([m.get("rejected_by_reason") for m in part_manifests]),
            "counts_before_download": _sum_maps(
                [m.get("counts_before_download") for m in part_manifests]
            ),
        },
    )
    artifacts.mapping_table(
        "captions-rejected-by-reason", manifest["rejected_by_reason"], ("reason", "rows")
    )
    return manifest
