"""Stage 4 task: class frequencies of the downloaded counting set -> λ per count."""

from __future__ import annotations

from prefect import task

from countclip.config import LambdaConfig
from tasks import artifacts
from tasks.caching import stage_cache


@task(
    name="lambdas",
    task_run_name="lambdas",
    cache_policy=stage_cache("countclip.lambdas"),
    persist_result=True,
    retries=0,
)
def lambdas_task(download_manifest: dict, cfg: LambdaConfig, data_root: str) -> dict:
    """Deterministic arithmetic over local shards: no retries."""
    from countclip.lambdas import run_lambda_stage

    manifest = run_lambda_stage(download_manifest, cfg, data_root)
    freqs = manifest.get("frequencies") or {}
    lambdas = manifest.get("lambdas") or {}
    rows = [
        {"count": int(c), "downloaded": freqs.get(c, 0), "lambda": lambdas.get(c)}
        for c in sorted(set(freqs) | set(lambdas), key=int)
    ]
    artifacts.table(
        "lambdas-per-count",
        rows,
        f"class frequencies and λ ({manifest.get('scheme', cfg.scheme)} scheme)",
    )
    artifacts.links("lambdas", manifest.get("outputs") or {})
    return manifest
