"""``demo``: the whole story on the synthetic world, on a CPU.

world -> build -> pretrain the baseline CLIP (L_CLIP only, few counting captions, as in LAION)
-> fine-tune the L_CLIP-only control and CountCLIP from it (same data, steps, seed) ->
CountBench + zero-shot for baseline, control and CountCLIP -> comparison report
(:func:`countclip.pipeline.demo`). Every step is a cached task, so a rerun is instant and a
changed setting recomputes only what depends on it.
"""

from __future__ import annotations

from prefect import flow

from countclip import pipeline
from countclip.config import PipelineConfig
from countclip_flows.context import prepare, stoppable
from countclip_flows.runner import PrefectRunner


@flow(name="demo", log_prints=True)
def demo(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    config_path: str | None = None,
    overrides: dict | None = None,
) -> dict:
    """Baseline vs control vs CountCLIP on synthetic CountBench; returns the report paths."""
    cfg = prepare("demo", cfg, data_root, config_path, overrides)
    with stoppable():
        report = pipeline.demo(cfg, PrefectRunner(cfg.data_root))
    print(f"report: {report.get('markdown')}\n{report.get('table', '')}")
    return report
