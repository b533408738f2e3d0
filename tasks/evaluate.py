"""Evaluation tasks: one model on CountBench and the zero-shot check; the comparison report."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from countclip.config import EvalConfig
from countclip.stages.evaluate import plan_evaluation_stage, run_evaluation_stage, run_report
from countclip_tasks import artifacts
from countclip_tasks.caching import stage_task


def _per_count_rows(manifest: dict) -> list[dict]:
    """Per-count accuracy rows of an evaluation manifest."""
    value = manifest["stats"].get("per_count_accuracy") or {}
    return [
        {"count": int(c), "accuracy": v}
        for c, v in sorted(value.items(), key=lambda kv: int(kv[0]))
    ]


@stage_task(plan_evaluation_stage, "evaluate", task_run_name="evaluate-{model_ref[label]}")
def evaluate_task(
    model_ref: dict, countbench_manifest: dict, cfg: EvalConfig, data_root: str
) -> dict:
    """CountBench metrics of one model (deterministic: no retries)."""
    label = str(model_ref.get("label", "model"))
    progress = artifacts.ProgressReporter(f"evaluate-{label}-progress", f"evaluating {label}")
    manifest = run_evaluation_stage(
        model_ref, countbench_manifest, cfg, data_root, progress=progress
    )
    progress.done()
    rows = _per_count_rows(manifest)
    if rows:
        artifacts.table(
            f"countbench-{label}-per-count", rows, f"CountBench accuracy per count ({label})"
        )
    artifacts.markdown(
        f"evaluate-{label}-summary", artifacts.manifest_markdown(f"Evaluation ({label})", manifest)
    )
    artifacts.links(f"evaluate-{label}", manifest.get("outputs") or {})
    return manifest


@task(name="report", retries=0, cache_policy=NO_CACHE, persist_result=False)
def report_task(
    results: dict, out_dir: str, cues_path: str | None = None, split: str = "dev"
) -> dict:
    """Write the comparison report (CountCLIP vs control with a paired CI, also on the images
    no single cue guesses; the cue-only baselines of the ``split`` CountBench, from the world's
    cue report at ``cues_path`` when it computed one) and publish it as an artifact."""
    report = run_report(results, out_dir, cues_path, split)
    text = Path(report["markdown"]).read_text()
    artifacts.markdown("countbench-comparison", text, "CountBench: models compared")
    return report
