"""Stage "promote" (the retrain flow's last step): freeze the promotion set once, then promote
a candidate only if it counts better on that set than the promoted model
(:mod:`countclip.evaluation.promotion`). Not cached: its answer depends on what was promoted
before, which lives under ``<data_root>/models/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from countclip.evaluation.promotion import (
    freeze_promotion_set,
    promote,
    read_history,
    read_promoted,
)

__all__ = ["read_history", "read_promoted", "run_promotion"]


def run_promotion(
    train_manifest: Mapping[str, Any],
    verified_manifest: Mapping[str, Any],
    data_root: str,
    model_name: str,
    run_name: str | None = None,
    countbench_accuracy: float | None = None,
) -> dict[str, Any]:
    """The decision record (``promoted``, both scores, the set's hash), with the frozen
    promotion set's record under ``promotion_set``. The set is built from the verified
    counting set's validation split by the first retrain; later runs only check its hash."""
    promotion_set = freeze_promotion_set(verified_manifest["outputs"]["shards"], data_root)
    record = promote(
        train_manifest,
        promotion_set,
        data_root,
        model_name=model_name,
        run_name=run_name,
        countbench_accuracy=countbench_accuracy,
    )
    return {**record, "promotion_set": promotion_set}


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_promotion
PLAN = None  # not cached: its answer depends on what was promoted before
