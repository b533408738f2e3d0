"""Stage 4 task: class frequencies of the downloaded counting set -> λ per count."""

from __future__ import annotations

from countclip.config import LambdaConfig
from countclip.stages.lambdas import plan_lambda_stage, run_lambda_stage
from countclip_tasks import artifacts
from countclip_tasks.caching import stage_task


@stage_task(plan_lambda_stage, "lambdas", task_run_name="lambdas")
def lambdas_task(download_manifest: dict, cfg: LambdaConfig, data_root: str) -> dict:
    """Deterministic arithmetic over local shards: no retries."""
    manifest = run_lambda_stage(download_manifest, cfg, data_root)
    stats = manifest["stats"]
    freqs, lambdas = stats["frequencies"], stats["lambdas"]
    rows = [
        {"count": int(c), "downloaded": freqs.get(c, 0), "lambda": lambdas.get(c)}
        for c in sorted(set(freqs) | set(lambdas), key=int)
    ]
    artifacts.table(
        "lambdas-per-count",
        rows,
        f"class frequencies and λ ({stats['scheme']} scheme)",
    )
    artifacts.links("lambdas", manifest.get("outputs") or {})
    return manifest
