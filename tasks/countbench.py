"""The CountBench task: validate the benchmark's rows and download its images (remote URLs:
transient failures are retried; dead links are recorded, not fatal)."""

from __future__ import annotations

from countclip.config import DownloadConfig, EvalConfig
from countclip.stages.countbench import plan_countbench_stage, run_countbench_stage
from countclip_tasks import artifacts
from countclip_tasks.caching import stage_task
from countclip_tasks.retrying import transient_retries


@stage_task(
    plan_countbench_stage,
    "countbench",
    **transient_retries(retries=3, backoff=2.0, jitter=0.5),
)
def countbench_task(cfg: EvalConfig, download_cfg: DownloadConfig, data_root: str) -> dict:
    """Download CountBench's images (remote URLs: transient failures are retried)."""
    progress = artifacts.ProgressReporter("countbench-progress", "CountBench download")
    manifest = run_countbench_stage(cfg, download_cfg, data_root, progress=progress)
    progress.done()
    artifacts.markdown("countbench-summary", artifacts.manifest_markdown("CountBench", manifest))
    return manifest
