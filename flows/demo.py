"""``demo``: the whole story on the synthetic world, on a CPU.

world -> build -> train the L_CLIP-only control and CountCLIP -> CountBench for both ->
comparison report. Thin wiring only: every step is a cached task, so a rerun is instant and a
changed setting recomputes only what depends on it.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from countclip.config import PipelineConfig, TrainConfig
from flows.common import Runner, build_stages, resolve_config, world_context
from flows.evaluate_countbench import model_ref_for
from tasks.caching import bind
from tasks.evaluate import countbench_task, evaluate_task, report_task
from tasks.train import train_task


def control_config(train: TrainConfig) -> TrainConfig:
    """The same run without the counting loss (L_CLIP only)."""
    return train.model_copy(update={"count_loss": "none"})


@flow(name="demo", log_prints=True)
def demo(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    runner: Runner = "default",
) -> dict:
    """Control vs CountCLIP on synthetic CountBench; returns the report paths."""
    cfg = resolve_config(cfg, data_root)
    root = cfg.data_root
    train = bind(train_task, root)
    evaluate = bind(evaluate_task, root)
    with world_context(cfg):
        data = build_stages(cfg, runner)
        models = {
            "control": train(
                data["counting"],
                data["common"],
                data["lambdas"],
                control_config(cfg.train),
                root,
                label="control",
            ),
            "countclip": train(
                data["counting"],
                data["common"],
                data["lambdas"],
                cfg.train,
                root,
                label="countclip",
            ),
        }
        bench = bind(countbench_task, root)(cfg.evaluate, cfg.download, root)
        results = {
            label: evaluate(
                model_ref_for(cfg, (m.get("outputs") or {}).get("checkpoint"), label),
                bench,
                cfg.evaluate,
                root,
            )
            for label, m in models.items()
        }
    report = report_task(results, str(Path(root) / "report"))
    print(f"report: {report.get('markdown')}\n{report.get('table', '')}")
    return report
