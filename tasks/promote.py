"""The retrain flow's promotion task: freeze the promotion set once, then decide (the rule
lives in :mod:`countclip.evaluation.promotion`)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from countclip.stages.promote import read_history, read_promoted, run_promotion
from countclip_tasks import artifacts

__all__ = ["promote_task", "read_history", "read_promoted"]


@task(name="promote", cache_policy=NO_CACHE, persist_result=False, retries=0)
def promote_task(
    train_manifest: dict,
    verified_manifest: dict,
    data_root: str,
    model_name: str,
    run_name: str | None = None,
    countbench_accuracy: float | None = None,
) -> dict[str, Any]:
    """Promote the candidate if it counts better than the promoted model on the frozen set."""
    record = run_promotion(
        train_manifest,
        verified_manifest,
        data_root,
        model_name,
        run_name=run_name,
        countbench_accuracy=countbench_accuracy,
    )
    frozen = record["promotion_set"]
    artifacts.mapping_table(
        "promotion-set-per-count",
        frozen["per_count"],
        ("count", "samples"),
        f"frozen promotion set, sha256 {frozen['sha256'][:12]} (frozen {frozen['frozen_at']})",
    )
    artifacts.table(
        "retrain-history", read_history(data_root)[-20:], "retrain candidates (latest 20)"
    )
    verdict = "promoted" if record["promoted"] else "kept the current model"
    artifacts.markdown(
        "retrain-decision",
        f"# Retrain decision\n\n{verdict}: balanced counting accuracy on the frozen promotion "
        f"set (sha256 {record['promotion_set_sha256'][:12]}) {record['promotion_score']:.4f} "
        f"vs the promoted model's {record['previous_promotion_score']}.\n",
    )
    return record
