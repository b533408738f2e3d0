"""``retrain-countclip`` (scheduled weekly): build incrementally -> train -> evaluate -> promote.

"Incrementally" is the cache: stages whose inputs did not change (same source parts, same
config) are cache hits, so a weekly run recomputes only what new data or config touched.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from countclip import pipeline
from countclip.config import PipelineConfig
from countclip_flows.context import Runner, prepare, select_for, stoppable
from countclip_flows.runner import PrefectRunner


@flow(name="retrain-countclip", log_prints=True)
def retrain_countclip(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    config_path: str | None = None,
    overrides: dict | None = None,
    runner: Runner = "default",
) -> dict:
    """Retrain, and promote the new model only if it counts better than the promoted one on
    the frozen promotion set."""
    cfg = prepare("retrain", cfg, data_root, config_path, overrides)
    with stoppable():
        decision = pipeline.retrain(
            cfg, PrefectRunner(cfg.data_root), flow_run.get_name(), select_for(runner)
        )
    print(
        f"promoted: {decision['promoted']} (frozen promotion set: "
        f"{decision['promotion_score']:.4f} vs {decision['previous_promotion_score']})"
    )
    return decision
