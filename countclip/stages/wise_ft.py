"""Stage "wise_ft": WiSE-FT after training (:mod:`countclip.training.wise_ft`), into
``<data_root>/wise_ft/<fingerprint>``: the train stage's selected checkpoint interpolated with
the weights that fine-tune started from, θ(α) = (1 − α)·θ_start + α·θ_fine-tuned, and scored
on the counting validation split.

It is a stage of its own, after ``train``, rather than a setting of the train stage: α is not
part of the train stage's identity (the pipeline hands the train stage its config without
``wise_ft_alpha``), so a sweep of α reuses one fine-tune and costs an interpolation and a
validation pass per value, never a retraining.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from countclip.config import ModelConfig
from countclip.stages.base import Progress, Stage, StageOutput, StagePlan
from countclip.training.sources import shards_of
from countclip.training.wise_ft import check_alpha, wise_ft

WISE_FT = Stage("wise_ft", __name__)


def _fine_tune(train_manifest: Mapping[str, Any], counting_manifest: Mapping[str, Any]) -> dict:
    """The train manifest's config, checked to be a fine-tune of ``counting_manifest``."""
    config = train_manifest.get("config") or {}
    if train_manifest.get("stage") != "train" or "model" not in config:
        raise ValueError("wise_ft: expected the manifest of a finished train stage")
    used = (train_manifest.get("inputs") or {}).get("counting")
    if used != counting_manifest.get("fingerprint"):
        raise ValueError(
            f"wise_ft: the fine-tune was trained on counting set {used}, not on "
            f"{counting_manifest.get('fingerprint')}: its validation split is another"
        )
    return config


def plan_wise_ft_stage(
    train_manifest: Mapping[str, Any],
    counting_manifest: Mapping[str, Any],
    alpha: float,
    data_root: str,
) -> StagePlan:
    """The identity is α and the two manifests: θ_start, θ_fine-tuned and the validation split
    are all settled by the train stage's fingerprint."""
    _fine_tune(train_manifest, counting_manifest)
    return WISE_FT.plan(
        data_root,
        config={"alpha": check_alpha(alpha)},
        upstream={"train": train_manifest, "counting": counting_manifest},
    )


def run_wise_ft_stage(
    train_manifest: Mapping[str, Any],
    counting_manifest: Mapping[str, Any],
    alpha: float,
    data_root: str,
    progress: Progress | None = None,
    label: str = "train",
) -> dict:
    """Outputs ``checkpoint`` (θ(α), open_clip's format); stats: ``alpha``, the counting
        validation scores of θ(α) (``val_count_balanced_acc``...), and the fine-tune's own
        (``train_fingerprint``, ``best_val_count_acc``, ``best_step``) for whoever reads this
        manifest in place of the train stage's. ``label`` names the run (the train stage's label);
    it is no part of the identity."""
    config = _fine_tune(train_manifest, counting_manifest)
    plan = plan_wise_ft_stage(train_manifest, counting_manifest, alpha, data_root)

    def build(work: Path) -> StageOutput:
        model = ModelConfig.model_validate(config["model"])
        outputs, stats = wise_ft(
            model,
            train_manifest["outputs"]["checkpoint"],
            alpha,
            work,
            shards_of(counting_manifest),
            float(config.get("val_fraction", 0.1)),
            batch_size=int(config.get("batch_size", 64)),
        )
        trained = train_manifest.get("stats") or {}
        stats |= {
            "start": model.pretrained,
            "train_fingerprint": train_manifest["fingerprint"],
            "best_val_count_acc": trained.get("best_val_count_acc"),
            "best_step": trained.get("best_step"),
        }
        return StageOutput(outputs=outputs, stats=stats)

    return plan.run(build, progress)


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_wise_ft_stage
PLAN = plan_wise_ft_stage
