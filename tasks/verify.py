"""Stage 3b task: keep the counting samples whose image shows the caption's count.

Retried like a download: a worker lost mid-stage (OOM, a preempted GPU node) is transient, and
the stage resumes from the shards it already decided. A missing detector weights file is not
retried: it fails before the stage writes anything, with the file's name.
"""

from __future__ import annotations

from countclip.config import VerifyConfig
from countclip.stages.verify import plan_verify_stage, run_verify_stage
from countclip_tasks import artifacts
from countclip_tasks.caching import stage_task
from countclip_tasks.retrying import transient_retries


@stage_task(
    plan_verify_stage,
    "verify",
    task_run_name="verify",
    **transient_retries(retries=2, backoff=2.0, jitter=0.5),
)
def verify_task(download_manifest: dict, cfg: VerifyConfig, data_root: str) -> dict:
    """Count the objects in every downloaded counting image; keep a sample only if its most
    frequent kind has the caption's count (``cfg.counter: none`` keeps everything)."""
    progress = artifacts.ProgressReporter("verify-progress", f"verify ({cfg.counter})")
    manifest = run_verify_stage(download_manifest, cfg, data_root, progress=progress)
    progress.done()
    stats = manifest["stats"]
    rows = [
        {"count": int(count), "kept": n["kept"], "dropped": n["dropped"]}
        for count, n in stats["per_count"].items()
    ]
    artifacts.table("verify-per-count", rows, f"verified samples per count ({cfg.counter})")
    artifacts.mapping_table(
        "verify-per-reason",
        stats["reasons"],
        ("reason", "samples"),
        "why samples were kept (match, not_verified) or dropped",
    )
    artifacts.markdown("verify-summary", artifacts.manifest_markdown("Verify", manifest))
    return manifest
