"""Task caching across flow runs: identical inputs recompute nothing; a caption-stage change
recomputes the caption stage and everything downstream of it, nothing upstream.

Real Prefect (the session's temporary API), real stages on the synthetic world; states are read
back through the client, the way the UI sees them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from countclip.yamlconfig import load_config

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = {"synthetic-world", "metadata"}
DOWNSTREAM = {"captions", "download-counting", "download-common", "lambdas"}


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


@pytest.fixture(scope="module")
def first_run(prefect_harness, tmp_path_factory):
    from countclip_flows.build_count_dataset import build_count_dataset

    root = tmp_path_factory.mktemp("cache-data")
    state = build_count_dataset(cfg=small_config(root), return_state=True)
    assert state.is_completed(), state
    return root, state


def test_first_run_computes_every_stage(first_run) -> None:
    _, state = first_run
    states = task_states(state)
    assert set(states) == UPSTREAM | DOWNSTREAM, states
    assert Counter(states.values()) == {"Completed": 6}, states
    manifests = state.result()
    assert manifests["counting"]["successes"] > 0
    assert manifests["lambdas"]["lambdas"]


def test_second_run_is_all_cache_hits(first_run) -> None:
    from countclip_flows.build_count_dataset import build_count_dataset

    root, state1 = first_run
    state2 = build_count_dataset(cfg=small_config(root), return_state=True)
    assert state2.is_completed()
    states = task_states(state2)
    assert Counter(states.values()) == {"Cached": 6}, states
    assert state2.result()["lambdas"]["fingerprint"] == state1.result()["lambdas"]["fingerprint"]


def test_caption_change_recomputes_exactly_downstream(first_run) -> None:
    from countclip_flows.build_count_dataset import build_count_dataset

    root, state1 = first_run
    state = build_count_dataset(
        cfg=small_config(root, **{"captions.batch_size": 123}), return_state=True
    )
    assert state.is_completed()
    states = task_states(state)
    assert {n: s for n, s in states.items() if n in UPSTREAM} == dict.fromkeys(UPSTREAM, "Cached")
    assert {n: s for n, s in states.items() if n in DOWNSTREAM} == dict.fromkeys(
        DOWNSTREAM, "Completed"
    ), states
    before, after = state1.result(), state.result()
    assert after["metadata"]["fingerprint"] == before["metadata"]["fingerprint"]
    for stage in ("captions", "counting", "common", "lambdas"):
        assert after[stage]["fingerprint"] != before[stage]["fingerprint"], stage
