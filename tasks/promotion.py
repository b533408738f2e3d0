"""Promotion tasks for ``retrain-countclip``: freeze the promotion set once, then decide (the
rule lives in :mod:`countclip.evaluation.promotion`)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from countclip.evaluation.promotion import (
    freeze_promotion_set,
    promote,
    read_history,
    read_promoted,
)
from countclip_tasks import artifacts

__all__ = ["freeze_promotion_set_task", "promote_task", "read_history", "read_promoted"]


@task(name="promotion-set", cache_policy=NO_CACHE, persist_result=False, retries=0)
def freeze_promotion_set_task(counting_manifest: dict, data_root: str) -> dict[str, Any]:
    """The frozen promotion set (built by the first retrain; later runs only check its hash)."""
    record = freeze_promotion_set(counting_manifest["outputs"]["shards"], data_root)
    artifacts.mapping_table(
        "promotion-set-per-count",
        record["per_count"],
        ("count", "samples"),
        f"frozen promotion set, sha256 {record['sha256'][:12]} (frozen {record['frozen_at']})",
    )
    return record


@task(name="promote", cache_policy=NO_CACHE, persist_result=False, retries=0)
def promote_task(
    train_manifest: dict,
    promotion_set: dict,
    data_root: str,
    model_name: str,
    run_name: str | None = None,
    countbench_accuracy: float | None = None,
) -> dict[str, Any]:
    """Promote the candidate if it counts better than the promoted model on the frozen set."""
    record = promote(
        train_manifest,
        promotion_set,
        data_root,
        model_name=model_name,
        run_name=run_name,
        countbench_accuracy=countbench_accuracy,
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
