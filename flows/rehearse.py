"""``rehearse``: a real config's whole path at toy scale, offline, in minutes.

Runs *your* config (column mapping, caption settings, counter and detector, model, precision,
λ scheme) through every stage before it costs a GPU day: what cannot be had offline is
substituted and named (:data:`countclip.synthetic.rehearsal.SUBSTITUTIONS`), the sizes are
scaled down (:data:`~countclip.synthetic.rehearsal.SCALE`), nothing else changes.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from countclip import pipeline
from countclip.config import PipelineConfig
from countclip.preflight import preflight
from countclip.synthetic.rehearsal import SUBSTITUTIONS, rehearsal_world
from countclip_flows.context import resolve_config, stoppable
from countclip_flows.runner import PrefectRunner


@flow(name="rehearse", log_prints=True)
def rehearse(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    config_path: str | None = None,
    overrides: dict | None = None,
) -> dict:
    """Rehearse ``cfg`` under ``<data_root>/rehearsal``; returns the report and manifests."""
    cfg = resolve_config(cfg, data_root, config_path, overrides)
    for number, substitution in enumerate(SUBSTITUTIONS, 1):
        print(f"substitution {number}: {substitution}")
    with stoppable(), rehearsal_world(cfg, Path(cfg.data_root) / "rehearsal") as toy:
        toy = resolve_config(toy, None)
        preflight(toy, "retrain")  # the rehearsal's own resources: served, saved, present
        result = pipeline.rehearse(toy, PrefectRunner(toy.data_root))
    checked = result["checked"]["stats"]
    print(
        f"rehearsal done: {result['counting']['stats']['successes']} counting and "
        f"{result['common']['stats']['successes']} common images, verify decided "
        f"{checked['samples']} ({checked['counter']}), report {result['report']['markdown']}"
    )
    return result
