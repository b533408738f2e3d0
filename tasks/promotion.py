"""Promotion task for ``retrain-countclip`` (the rule lives in
:mod:`countclip.evaluation.promotion`)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from countclip.evaluation.promotion import promote, read_history, read_promoted
from countclip_tasks import artifacts

__all__ = ["promote_task", "read_history", "read_promoted"]


@task(name="promote", cache_policy=NO_CACHE, persist_result=False, retries=0)
def promote_task(
    train_manifest: dict, eval_manifest: dict | None, data_root: str, run_name: str | None = None
) -> dict[str, Any]:
    """Promote ``train_manifest``'s checkpoint if its val counting accuracy beats the current."""
    record = promote(train_manifest, eval_manifest, data_root, run_name)
    artifacts.table(
        "retrain-history", read_history(data_root)[-20:], "retrain candidates (latest 20)"
    )
    verdict = "promoted" if record["promoted"] else "kept the current model"
    artifacts.markdown(
        "retrain-decision",
        f"# Retrain decision\n\n{verdict}: val counting accuracy {record['best_val_count_acc']} "
        f"vs current {record['previous_best_val_count_acc']}.\n",
    )
    return record
