"""Stage "evaluate": one model on the downloaded CountBench (nine captions per image, argmax)
and the zero-shot check (:mod:`countclip.evaluation`). The model's identity is its name and
the content of its weights, so a retrained checkpoint is a new evaluation and the same
weights moved elsewhere are not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from countclip.config import EvalConfig
from countclip.evaluation.countbench_scores import evaluate_model, model_identity
from countclip.evaluation.report import write_comparison_report
from countclip.stages.base import Progress, Stage, StageOutput, StagePlan

EVALUATE = Stage("evaluate", __name__, resumable=True)  # results.json names its own files


def plan_evaluation_stage(
    model_ref: Mapping[str, Any],
    countbench_manifest: Mapping[str, Any],
    cfg: EvalConfig,
    data_root: str,
) -> StagePlan:
    if not model_ref.get("name"):
        raise ValueError("model_ref: field 'name' (open_clip model name) is required")
    checkpoint = model_ref.get("checkpoint")
    if checkpoint and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"model_ref: checkpoint file not found: {checkpoint}")
    return EVALUATE.plan(
        data_root,
        config=cfg,
        upstream={"countbench": countbench_manifest},
        identity=model_identity(model_ref),
    )


def run_evaluation_stage(
    model_ref: Mapping[str, Any],
    countbench_manifest: Mapping[str, Any],
    cfg: EvalConfig,
    data_root: str,
    progress: Progress | None = None,
) -> dict:
    """CountBench and the zero-shot check for the model ``model_ref`` names
    (:func:`~countclip.evaluation.countbench_scores.evaluate_model`)."""
    plan = plan_evaluation_stage(model_ref, countbench_manifest, cfg, data_root)

    def build(work: Path) -> StageOutput:
        outputs, stats = evaluate_model(model_ref, countbench_manifest, cfg, work, progress)
        return StageOutput(outputs=outputs, stats=stats)

    return plan.run(build, progress)


def run_report(
    results: Mapping[str, Any], out_dir: str, cues_path: str | None = None, split: str = "dev"
) -> dict:
    """The comparison report of several evaluations (CountCLIP vs control with a paired CI,
    also on the images no single cue guesses; the cue-only baselines of the ``split``
    CountBench from the world's cue report at ``cues_path``, when there is one). Not cached:
    it is cheap and its inputs are the evaluations. Returns its files (``markdown``, ...) and
    the table."""
    cue_report = json.loads(Path(cues_path).read_text()) if cues_path else {}
    report = write_comparison_report(
        results,
        out_dir,
        cues=cue_report.get(split),
        cue_scenes=(cue_report.get("scenes") or {}).get(split),
    )
    return {k: str(v) for k, v in report.items()}


# What a runner calls (countclip.runners): this stage's run and plan.
RUN = run_evaluation_stage
REPORT = run_report
PLAN = plan_evaluation_stage
