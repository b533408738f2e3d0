"""Stage 1 task: DuckDB over LAION metadata parquet -> counting candidates + common sample."""

from __future__ import annotations

from countclip.config import MetadataConfig
from countclip.stages.metadata import is_remote, plan_metadata_stage, run_metadata_stage
from countclip_tasks import artifacts
from countclip_tasks.caching import stage_task
from countclip_tasks.retrying import transient_retries


@stage_task(plan_metadata_stage, "metadata", task_run_name="metadata")
def metadata_task(cfg: MetadataConfig, data_root: str) -> dict:
    """Select counting candidates and a common (non-counting) sample from the source."""
    progress = artifacts.ProgressReporter("metadata-progress", "metadata scan")
    manifest = run_metadata_stage(cfg, data_root, progress=progress)
    progress.done()
    artifacts.markdown("metadata-summary", artifacts.manifest_markdown("Metadata", manifest))
    return manifest


# Remote parquet (Re-LAION over hf:// or https) fails transiently (5xx, 429, reset connections,
# timeouts: countclip.data.remote_parquet.RemoteSourceError): back off and retry. A 404, a denied
# access, a missing column or a malformed file is bad input (MetadataError, a ValueError) and
# fails at once; so does any local-source error (no retries on the plain task above).
remote_metadata_task = metadata_task.with_options(
    name="metadata-remote", task_run_name="metadata", **transient_retries()
)


def metadata_for(cfg: MetadataConfig):
    """The task variant for ``cfg.source``: retries only when the source is remote."""
    return remote_metadata_task if is_remote(cfg.source) else metadata_task
