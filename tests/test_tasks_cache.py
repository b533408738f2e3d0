"""One stage identity, seen through Prefect: the cache key of a stage task is the stage's
fingerprint, and a cache hit is only taken when the stage is complete on disk.

- identical inputs recompute nothing;
- speed-only settings never recompute anything; a semantic setting recomputes exactly the
  stages downstream of it;
- a deleted stage directory is recomputed (and what depends on it), never reported "Cached";
- a code edit in one stage's module recomputes that stage and what is downstream, with fresh
  outputs (a real edit, in a copy of the package run in a subprocess).

Real Prefect (the session's temporary API), real stages on the synthetic world; states are read
back through the client, the way the UI sees them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from countclip.config import PipelineConfig, is_speed_only
from countclip.yamlconfig import load_config

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = {"synthetic-world", "metadata"}
DOWNSTREAM = {"captions", "download-counting", "download-common", "verify", "lambdas"}
STAGES = len(UPSTREAM | DOWNSTREAM)
SPEED_SETTINGS = {
    "metadata.threads": 1,
    "metadata.memory_limit": "1GB",
    "captions.batch_size": 7,
    "captions.rows_per_chunk": 50,
    "download.processes_count": 2,
    "download.thread_count": 4,
    "download.stall_timeout": 99.0,
    "train.threads": 1,
    "train.device": "cpu",
    "evaluate.batch_size": 3,
}


def small_config(data_root: Path, **overrides):
    """configs/synthetic-small.yaml, a little smaller still (this suite runs on 2 cores)."""
    base = {
        "data_root": str(data_root),
        "world": {"rows": 400, "counting_fraction": 0.25},
        "download": {"retry_failed_passes": 0},
    }
    for key, value in overrides.items():
        section, field = key.split(".")
        base.setdefault(section, {})[field] = value
    return load_config(REPO / "configs" / "synthetic-small.yaml", base)


def task_states(flow_state) -> dict[str, str]:
    """``{task run name: state name}`` of one flow run, from the API."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_run_id = flow_state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {r.name: r.state.name for r in runs}


def build(cfg):
    from countclip_flows.build_count_dataset import build_count_dataset

    state = build_count_dataset(cfg=cfg, return_state=True)
    assert state.is_completed(), state
    return state, task_states(state)


def test_speed_settings_are_declared_and_left_out_of_fingerprints() -> None:
    """Every field marked speed-only, and only those, leaves the stage fingerprints alone."""
    from countclip.stages.download import plan_download_stage

    cfg = PipelineConfig()
    declared = {
        f"{section}.{name}"
        for section, model in cfg
        if hasattr(model, "model_fields")
        for name in type(model).model_fields
        if is_speed_only(type(model), name)
    }
    assert set(SPEED_SETTINGS) <= declared
    source = {"fingerprint": "captions-fp", "outputs": {"counting": "x.parquet"}}
    base = plan_download_stage(source, "counting", cfg.download, "/data").fingerprint
    faster = cfg.download.model_copy(update={"processes_count": 32, "thread_count": 256})
    assert plan_download_stage(source, "counting", faster, "/data").fingerprint == base
    other = cfg.download.model_copy(update={"image_size": 128})
    assert plan_download_stage(source, "counting", other, "/data").fingerprint != base


@pytest.fixture(scope="module")
def first_run(prefect_harness, tmp_path_factory):
    root = tmp_path_factory.mktemp("cache-data")
    state, states = build(small_config(root))
    return root, state, states


def test_first_run_computes_every_stage(first_run) -> None:
    _, state, states = first_run
    assert set(states) == UPSTREAM | DOWNSTREAM, states
    assert Counter(states.values()) == {"Completed": STAGES}, states
    manifests = state.result()
    assert manifests["counting"]["stats"]["successes"] > 0
    assert manifests["lambdas"]["stats"]["lambdas"]
    # the cache key is the stage fingerprint: the stored record is named by it
    results = first_run[0] / ".prefect-results"
    for manifest in manifests.values():
        if manifest.get("run_id"):
            assert (results / manifest["fingerprint"]).is_file(), manifest["stage"]


def test_second_run_is_all_cache_hits(first_run) -> None:
    root, state1, _ = first_run
    state2, states = build(small_config(root))
    assert Counter(states.values()) == {"Cached": STAGES}, states
    assert state2.result()["lambdas"]["fingerprint"] == state1.result()["lambdas"]["fingerprint"]


def test_speed_settings_change_nothing(first_run) -> None:
    root, _, _ = first_run
    _, states = build(small_config(root, **SPEED_SETTINGS))
    assert Counter(states.values()) == {"Cached": STAGES}, states


def test_a_semantic_change_recomputes_exactly_downstream(first_run) -> None:
    root, state1, _ = first_run
    state, states = build(small_config(root, **{"captions.include_digits": True}))
    assert {n: s for n, s in states.items() if n in UPSTREAM} == dict.fromkeys(UPSTREAM, "Cached")
    assert {n: s for n, s in states.items() if n in DOWNSTREAM} == dict.fromkeys(
        DOWNSTREAM, "Completed"
    ), states
    before, after = state1.result(), state.result()
    assert after["metadata"]["fingerprint"] == before["metadata"]["fingerprint"]
    for stage in ("captions", "counting", "verified", "common", "lambdas"):
        assert after[stage]["fingerprint"] != before[stage]["fingerprint"], stage


def test_a_deleted_stage_is_recomputed_with_what_depends_on_it(first_run) -> None:
    root, state1, _ = first_run
    counting = Path(state1.result()["counting"]["directory"])
    shutil.rmtree(counting)
    state, states = build(small_config(root))
    assert states["download-counting"] == "Completed", states
    assert states["verify"] == "Completed", states  # verified the download that is gone
    assert states["lambdas"] == "Completed", states
    for name in ("synthetic-world", "metadata", "captions", "download-common"):
        assert states[name] == "Cached", states
    after = state.result()["counting"]
    assert Path(after["directory"]) == counting and (counting / "manifest.json").is_file()
    assert after["stats"]["input_rows"] == state1.result()["counting"]["stats"]["input_rows"]
    assert after["run_id"] != state1.result()["counting"]["run_id"]
    _, states = build(small_config(root))
    assert Counter(states.values()) == {"Cached": STAGES}, states


def _package_copy(tmp_path: Path) -> Path:
    """``countclip`` as a wheel lays it out (sql/ inside), in a folder of its own."""
    site = tmp_path / "site"
    shutil.copytree(
        REPO / "countclip", site / "countclip", ignore=shutil.ignore_patterns("__pycache__")
    )
    return site


def test_a_code_edit_recomputes_that_stage_and_downstream_with_fresh_outputs(
    first_run, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    root, state1, _ = first_run
    site = _package_copy(tmp_path)
    lambdas_py = site / "countclip" / "data" / "lambdas.py"
    source = lambdas_py.read_text()
    edited = source.replace(
        "    return {c: float(lam.get(c, missing)) for c in classes}",
        "    return {c: 10 * float(lam.get(c, missing)) for c in classes}",
    )
    assert edited != source
    lambdas_py.write_text(edited)
    script = (
        "import json, sys\n"
        "import countclip\n"
        f"assert countclip.__file__.startswith({str(site)!r}), countclip.__file__\n"
        "from countclip.yamlconfig import load_config\n"
        "from countclip_flows.build_count_dataset import build_count_dataset\n"
        "cfg = load_config(sys.argv[1], json.loads(sys.argv[2]))\n"
        "state = build_count_dataset(cfg=cfg, return_state=True)\n"
        "print(json.dumps({'flow_run_id': str(state.state_details.flow_run_id),\n"
        "                  'lambdas': state.result()['lambdas']}))\n"
    )
    overrides = {
        "data_root": str(root),
        "world": {"rows": 400, "counting_fraction": 0.25},
        "download": {"retry_failed_passes": 0},
    }
    env = dict(os.environ, PYTHONPATH=str(site), PREFECT_API_URL=str(PREFECT_API_URL.value()))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(REPO / "configs" / "synthetic-small.yaml"),
         json.dumps(overrides)],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[out["flow_run_id"]]))
        )
    states = {r.name: r.state.name for r in runs}
    assert states["lambdas"] == "Completed", states
    assert {n: s for n, s in states.items() if n != "lambdas"} == dict.fromkeys(
        UPSTREAM | DOWNSTREAM - {"lambdas"}, "Cached"
    ), states
    old, new = state1.result()["lambdas"], out["lambdas"]
    assert new["fingerprint"] != old["fingerprint"]
    assert new["code_version"] != old["code_version"]
    for count, value in old["stats"]["lambdas"].items():
        assert new["stats"]["lambdas"][count] == pytest.approx(10 * value)
