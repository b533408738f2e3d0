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
from countclip_tasks.promotion import promote_task
from countclip_tasks.train import train_task


@flow(name="retrain-countclip", log_prints=True)
def retrain_countclip(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    runner: Runner = "default",
) -> dict:
    """Retrain and promote the new model only if its val counting accuracy is better."""
    cfg = resolve_config(cfg, data_root)
    root = cfg.data_root
    with world_context(cfg):
        data = build_stages(cfg, runner)
        trained = bind(train_task, root)(
            data["counting"], data["common"], data["lambdas"], cfg.train, root, label="candidate"
        )
        bench = bind(countbench_task, root)(cfg.evaluate, cfg.download, root)
        checkpoint = (trained.get("outputs") or {}).get("checkpoint")
        evaluation = bind(evaluate_task, root)(
            model_ref_for(cfg, checkpoint, "candidate"), bench, cfg.evaluate, root
        )
    decision = promote_task(trained, evaluation, root, run_name=flow_run.get_name())
    print(
        f"promoted: {decision['promoted']} (val counting accuracy "
        f"{decision['best_val_count_acc']} vs {decision['previous_best_val_count_acc']})"
    )
    return decision
