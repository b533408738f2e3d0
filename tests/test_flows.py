"""Flows and deployments: retries on transient download failures, none on bad input, the
prefect.yaml deployments and parameter forms (promotion: tests/test_promotion.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from countclip.config import PipelineConfig
from countclip.yamlconfig import load_config

REPO = Path(__file__).resolve().parents[1]
FLOWS = {
    "build-count-dataset": "flows/build_count_dataset.py:build_count_dataset",
    "train-countclip": "flows/train_countclip.py:train_countclip",
    "evaluate-countbench": "flows/evaluate_countbench.py:evaluate_countbench",
    "retrain-countclip": "flows/retrain_countclip.py:retrain_countclip",
    "demo": "flows/demo.py:demo",
}


def task_runs(flow_state) -> dict:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[flow_state.state_details.flow_run_id])
            )
        )
    return {r.name: r for r in runs}


def test_transient_download_failure_is_retried(prefect_harness, tmp_path, monkeypatch) -> None:
    """The first attempt of the download fails (injected ConnectionError); Prefect backs off,
    retries, and the flow completes with the images downloaded."""
    from prefect import flow

    from countclip.pipeline import synthetic_world
    from countclip_flows.context import resolve_config
    from countclip_flows.runner import PrefectRunner
    from countclip_tasks.caching import bind
    from countclip_tasks.captions import captions_task
    from countclip_tasks.download import INJECT_ENV, download_task
    from countclip_tasks.metadata import metadata_task

    @flow(name="retry-check")
    def retry_check(cfg: PipelineConfig) -> dict:
        cfg = resolve_config(cfg, None)
        root = cfg.data_root
        with synthetic_world(cfg, PrefectRunner(root)):
            metadata = bind(metadata_task, root)(cfg.metadata, root)
            captions = bind(captions_task, root)(metadata, cfg.captions, root)
            fast_retry = download_task.with_options(retry_delay_seconds=[0.5, 1.0, 2.0])
            return bind(fast_retry, root)(captions, "counting", cfg.download, root)

    monkeypatch.setenv(INJECT_ENV, "1")
    cfg = load_config(
        REPO / "configs" / "synthetic-small.yaml",
        {
            "data_root": str(tmp_path),
            "world": {"rows": 200, "counting_fraction": 0.3, "misbehave_fraction": 0.0},
            "download": {"retry_failed_passes": 0},
        },
    )
    state = retry_check(cfg, return_state=True)
    assert state.is_completed(), state
    assert state.result()["stats"]["successes"] > 0
    download = task_runs(state)["download-counting"]
    assert download.state.name == "Completed"
    assert download.run_count == 2  # failed once, retried once
    assert download.task_inputs is not None


def test_bad_input_fails_at_once_without_retries(prefect_harness, tmp_path) -> None:
    """A missing local source is bad input: the remote-parquet retries do not apply to it, and
    even the retrying variant does not retry FileNotFoundError/ValueError."""
    from prefect import flow

    from countclip_tasks.caching import bind
    from countclip_tasks.metadata import metadata_for, remote_metadata_task

    missing = tmp_path / "nope" / "*.parquet"
    cfg = PipelineConfig(data_root=str(tmp_path), synthetic=False, verify={"counter": "none"})
    cfg.metadata.source = str(missing)
    assert metadata_for(cfg.metadata).retries == 0

    @flow(name="bad-input-check")
    def bad_input(cfg: PipelineConfig) -> dict:
        fast = remote_metadata_task.with_options(retry_delay_seconds=0)
        return bind(fast, cfg.data_root)(cfg.metadata, cfg.data_root)

    state = bad_input(cfg, return_state=True)
    assert state.is_failed()
    run = task_runs(state)["metadata"]
    assert run.run_count == 1, "bad input must not be retried"
    assert run.state.name == "Failed"
    with pytest.raises((FileNotFoundError, ValueError, OSError)) as info:
        state.result()
    assert "nope" in str(info.value)


def test_flows_named_and_parameters_are_forms() -> None:
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema

    for name, entrypoint in FLOWS.items():
        flow = load_flow_from_entrypoint(str(REPO / entrypoint))
        assert flow.name == name
        schema = parameter_schema(flow).model_dump()
        cfg = schema["properties"]["cfg"]
        # a pydantic model -> a JSON-schema object the UI renders as a form
        ref = cfg.get("$ref") or cfg["allOf"][0]["$ref"]
        assert ref.endswith("/PipelineConfig")
        assert "PipelineConfig" in schema["definitions"]
        assert "train" in schema["definitions"]["PipelineConfig"]["properties"]


def test_prefect_yaml_deployments() -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    raw = yaml.safe_load((REPO / "prefect.yaml").read_text())
    model = PrefectYamlModel.model_validate(raw)
    deployments = {}
    for d in model.deployments:
        flow = next(n for n, e in FLOWS.items() if e == d.entrypoint)
        deployments[f"{flow}/{d.name}"] = d
    assert {
        "build-count-dataset/synthetic",
        "build-count-dataset/laion400m",
        "train-countclip/laion400m",
        "evaluate-countbench/laion400m",
        "retrain-countclip/weekly",
        "demo/synthetic",
    } <= set(deployments)
    for name, d in deployments.items():
        # a config file read at run time, never an inline copy that drifts from configs/
        assert "cfg" not in d.parameters, name
        path = REPO / d.parameters["config_path"]
        assert path.is_file() and path.parent == REPO / "configs", name
        load_config(path, d.parameters.get("overrides"))  # every config validates
        assert d.work_pool.name in {"cpu", "gpu"}, name
    assert deployments["train-countclip/laion400m"].work_pool.name == "gpu"
    gpu = deployments["train-countclip/laion400m"].parameters
    assert load_config(REPO / gpu["config_path"], gpu["overrides"]).train.processes == 8
    weekly = next(d for d in raw["deployments"] if d["name"] == "weekly")["schedules"]
    assert len(weekly) == 1 and weekly[0]["active"] is False
    assert weekly[0]["cron"].split()[-1] in {"0", "1", "MON", "mon"}  # weekly
    assert load_config(REPO / "configs" / "laion400m.yaml").train.model.pretrained == "openai"


def test_a_deployment_reads_its_config_file_when_the_run_starts(tmp_path: Path) -> None:
    """Editing configs/*.yaml reaches the deployment's next run: the flow loads the file."""
    from countclip_flows.context import resolve_config

    path = tmp_path / "mine.yaml"
    path.write_text("extends: " + str(REPO / "configs" / "synthetic-small.yaml") + "\n")
    before = resolve_config(None, None, str(path), {"train": {"steps": 3}})
    path.write_text(path.read_text() + "lambdas: {scheme: norm}\n")
    after = resolve_config(None, None, str(path), {"train": {"steps": 3}})
    assert (before.lambdas.scheme, after.lambdas.scheme) == ("log", "norm")
    assert before.train.steps == after.train.steps == 3


@pytest.mark.slow
def test_demo_flow_reports_three_models(prefect_harness, tmp_path) -> None:
    """The `make demo` wiring on a tiny world: both fine-tunes start from the baseline, and the
    report compares all three models on the same CountBench images."""
    from countclip_flows.demo import demo

    cfg = load_config(
        REPO / "configs" / "synthetic-small.yaml",
        {
            "data_root": str(tmp_path),
            "world": {"rows": 600, "parts": 1, "counting_fraction": 0.3},
            "download": {"image_size": 64, "retry_failed_passes": 0},
            "pretrain": {"rows": 600, "steps": 8, "batch_size": 16, "warmup_steps": 2},
            "train": {
                "steps": 6,
                "batch_size": 16,
                "eval_every": 3,
                "checkpoint_every": 6,
                "warmup_steps": 1,
                "val_fraction": 0.2,
            },
            "evaluate": {"batch_size": 64},
        },
    )
    state = demo(cfg=cfg, return_state=True)
    assert state.is_completed(), state
    report = state.result()
    table = report["table"]
    for label in ("baseline", "control", "countclip"):
        assert label in table
    # the world's cue report reaches the report: the cue-only rows, and the comparison on the
    # images no single cue guesses
    assert "| hull area |" in table and "whose count no single-cue classifier guesses" in table
    runs = task_runs(state)
    assert {"train-control", "train-countclip"} <= set(runs)
    for label in ("baseline", "control", "countclip"):
        assert runs[f"evaluate-{label}"].state.is_completed()
    markdown = Path(report["markdown"])
    assert markdown.is_file() and "CountBench accuracy" in markdown.read_text()


@pytest.mark.slow
@pytest.mark.long
def test_retrain_promotes_only_a_better_model_on_the_frozen_set(prefect_harness, tmp_path) -> None:
    """Two scheduled runs with nothing new: the first promotes its model and freezes the
    promotion set; the second trains the same model (a cache hit), scores it on the same set
    and keeps the promoted one (not strictly better)."""
    from countclip_flows.retrain_countclip import retrain_countclip

    cfg = load_config(
        REPO / "configs" / "synthetic-small.yaml",
        {
            "data_root": str(tmp_path),
            "world": {"rows": 600, "parts": 1, "counting_fraction": 0.3},
            "download": {"image_size": 64, "retry_failed_passes": 0},
            "train": {
                "steps": 4,
                "batch_size": 16,
                "eval_every": 2,
                "checkpoint_every": 4,
                "warmup_steps": 1,
                "val_fraction": 0.3,
            },
            "evaluate": {"batch_size": 64, "zero_shot": False},
        },
    )
    first = retrain_countclip(cfg=cfg)
    second = retrain_countclip(cfg=cfg)
    assert first["promoted"] and not second["promoted"]
    assert second["promotion_set_sha256"] == first["promotion_set_sha256"]
    assert second["promotion_score"] == pytest.approx(first["promotion_score"])
    assert second["previous_promotion_score"] == pytest.approx(first["promotion_score"])


@pytest.mark.slow
def test_evaluate_after_train_scores_the_trained_checkpoint(prefect_harness, tmp_path) -> None:
    """`countclip train` then `countclip evaluate` with the same config: the evaluation is of
    the checkpoint the training made (not the base model), and it says so."""
    from countclip_flows.evaluate_countbench import evaluate_countbench
    from countclip_flows.train_countclip import train_countclip

    overrides = {
        "data_root": str(tmp_path),
        "world": {"rows": 400, "parts": 1, "counting_fraction": 0.3, "misbehave_fraction": 0},
        "download": {"retry_failed_passes": 0},
        "train": {"steps": 2, "batch_size": 8, "eval_every": 2, "checkpoint_every": 2},
        "evaluate": {"batch_size": 32, "zero_shot": False},
    }
    path = str(REPO / "configs" / "synthetic-small.yaml")
    trained = train_countclip(config_path=path, overrides=overrides)
    result = evaluate_countbench(config_path=path, overrides=overrides)
    assert result["stats"]["label"] == "trained"
    results = json.loads(Path(result["outputs"]["results"]).read_text())
    assert results["model"]["checkpoint"] == trained["outputs"]["checkpoint"]
