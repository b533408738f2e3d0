"""``build-count-dataset``: metadata -> captions -> download counting + common -> verify -> λ."""

from __future__ import annotations

from prefect import flow

from countclip import pipeline
from countclip.config import PipelineConfig
from countclip_flows.context import Runner, prepare, select_for, stoppable
from countclip_flows.runner import PrefectRunner


@flow(name="build-count-dataset", log_prints=True)
def build_count_dataset(
    cfg: PipelineConfig = PipelineConfig(),  # noqa: B008 (the UI form shows the defaults)
    data_root: str | None = None,
    config_path: str | None = None,
    overrides: dict | None = None,
    runner: Runner = "default",
) -> dict:
    """Build the counting dataset (and its common-sample companion) under the data root.

    Args:
        cfg: the pipeline config (the UI shows it as a form; defaults = the synthetic world).
        data_root: overrides ``cfg.data_root`` (handy from the CLI or a deployment run).
        config_path: a YAML of configs/, read when the run starts (deployments pass this, so
            an edited file reaches the next run); wins over ``cfg``.
        overrides: settings deep-merged over the config, like the CLI's ``--set``.
        runner: ``dask`` maps the caption stage over the source's parquet parts on a local
            Dask cluster; ``default`` needs nothing extra.
    """
    cfg = prepare("build", cfg, data_root, config_path, overrides)
    with stoppable():
        manifests = pipeline.build(cfg, PrefectRunner(cfg.data_root), select_for(runner))
    verified = manifests["verified"]["stats"]
    print(
        f"counting set: {manifests['counting']['stats']['successes']} images downloaded, "
        f"{verified['kept']} kept by verification ({verified['counter']}: what training "
        f"reads); common set: {manifests['common']['stats']['successes']} images; "
        f"λ: {manifests['lambdas']['stats']['lambdas']}"
    )
    return manifests
