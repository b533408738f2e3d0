"""``retrain-countclip`` (scheduled weekly): build incrementally -> train -> evaluate -> promote.

"Incrementally" is the cache: stages whose inputs did not change (same source parts, same
config) are cache hits, so a weekly run recomputes only what new data or config touched.
"""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from countclip.config import PipelineConfig
from countclip_flows.common import Runner, build_stages, resolve_config, world_context
from countclip_flows.evaluate_countbench import model_ref_for
from countclip_tasks.caching import bind
from countclip_tasks.evaluate import countbench_task, evaluate_task
from countclip_tasks.promotion import freeze_promotion_set_task, promote_task
from countclip_tasks.train import train_task


@flow(name="retrain-countclip", log_prints=True)
def retrain_countclip(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    runner: Runner = "default",
) -> dict:
    """Retrain, and promote the new model only if it counts better than the promoted one on
    the frozen promotion set."""
    cfg = resolve_config(cfg, data_root)
    root = cfg.data_root
    with world_context(cfg):
        data = build_stages(cfg, runner)
        trained = bind(train_task, root)(
            data["verified"], data["common"], data["lambdas"], cfg.train, root, label="candidate"
        )
        bench = bind(countbench_task, root)(cfg.evaluate, cfg.download, root)
        checkpoint = (trained.get("outputs") or {}).get("checkpoint")
        evaluation = bind(evaluate_task, root)(
            model_ref_for(cfg, checkpoint, "candidate"), bench, cfg.evaluate, root
        )
        promotion_set = freeze_promotion_set_task(data["verified"], root)
    decision = promote_task(
        trained,
        promotion_set,
        root,
        cfg.train.model.name,
        run_name=flow_run.get_name(),
        countbench_accuracy=evaluation["stats"]["accuracy"],
    )
    print(
        f"promoted: {decision['promoted']} (frozen promotion set: "
        f"{decision['promotion_score']:.4f} vs {decision['previous_promotion_score']})"
    )
    return decision
