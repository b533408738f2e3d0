"""``demo``: the whole story on the synthetic world, on a CPU.

world -> build -> pretrain the baseline CLIP (L_CLIP only, few counting captions, as in LAION)
-> fine-tune the L_CLIP-only control and CountCLIP from it (same data, steps, seed) ->
CountBench + zero-shot for baseline, control and CountCLIP -> comparison report. Thin wiring
only: every step is a cached task, so a rerun is instant and a changed setting recomputes only
what depends on it.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from countclip.config import PipelineConfig, TrainConfig
from countclip_flows.common import Runner, build_stages, resolve_config, world_context
from countclip_flows.evaluate_countbench import model_ref_for
from countclip_tasks.caching import bind
from countclip_tasks.evaluate import countbench_task, evaluate_task, report_task
from countclip_tasks.pretrain import pretrain_task
from countclip_tasks.train import train_task


def control_config(train: TrainConfig) -> TrainConfig:
    """The same run without the counting loss (L_CLIP only)."""
    return train.model_copy(update={"count_loss": "none"})


def from_checkpoint(train: TrainConfig, checkpoint: str) -> TrainConfig:
    """``train`` starting from ``checkpoint`` (the baseline) instead of its configured weights."""
    return train.model_copy(
        update={"model": train.model.model_copy(update={"pretrained": checkpoint})}
    )


@flow(name="demo", log_prints=True)
def demo(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    runner: Runner = "default",
) -> dict:
    """Baseline vs control vs CountCLIP on synthetic CountBench; returns the report paths."""
    cfg = resolve_config(cfg, data_root)
    root = cfg.data_root
    train = bind(train_task, root)
    evaluate = bind(evaluate_task, root)
    with world_context(cfg) as world:
        # CountBench's images do not depend on the build: fetch them while the build's own
        # downloads wait on timeouts and retry passes. (Pretraining the baseline alongside the
        # build was measured slower on 2 cores: it starves the image server and img2dataset.)
        bench_future = bind(countbench_task, root).submit(cfg.evaluate, cfg.download, root)
        data = build_stages(cfg, runner)
        models: dict[str, str | None] = {}
        train_cfg = cfg.train
        if world is not None and cfg.pretrain.enabled:
            baseline = bind(pretrain_task, root)(world, cfg.pretrain, root)
            models["baseline"] = baseline["outputs"]["checkpoint"]
            train_cfg = from_checkpoint(cfg.train, models["baseline"])
        # Both fine-tunes at once, one torch thread each: on 2 cores that is ~1.25x the
        # throughput of running them one after the other with 2 threads (measured).
        parallel = train_cfg.model_copy(update={"threads": 1})
        futures = {
            label: train.submit(
                data["verified"], data["common"], data["lambdas"], run_cfg, root, label=label
            )
            for label, run_cfg in (("control", control_config(parallel)), ("countclip", parallel))
        }
        for label, future in futures.items():
            models[label] = (future.result().get("outputs") or {}).get("checkpoint")
        bench = bench_future.result()
        results = {
            label: evaluate(model_ref_for(cfg, checkpoint, label), bench, cfg.evaluate, root)
            for label, checkpoint in models.items()
        }
    cues = (world or {}).get("outputs", {}).get("cues")
    report = report_task(results, str(Path(root) / "report"), cues, "dev")
    print(f"report: {report.get('markdown')}\n{report.get('table', '')}")
    return report
