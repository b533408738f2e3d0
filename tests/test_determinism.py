"""Numbers a newcomer can check: on one machine the demo's data stages give the same data
however busy the machine is, and training twice gives the same weights."""

from __future__ import annotations

import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from countclip import pipeline
from countclip.runners import LocalRunner
from countclip.yamlconfig import load_config

REPO = Path(__file__).resolve().parents[1]
SMALL_DEMO = {
    "world": {"rows": 600, "parts": 1, "counting_fraction": 0.3},
    "download": {"retry_failed_passes": 1, "number_sample_per_shard": 50},
    "train": {"steps": 3, "batch_size": 8, "eval_every": 3, "checkpoint_every": 3,
              "warmup_steps": 1, "threads": 1, "report_to": []},
}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _build(root: Path, port: int) -> dict:
    """The demo's data stages into ``root``, the world served on ``port`` (the same port for
    both builds: the metadata's URLs name it)."""
    world = {**SMALL_DEMO["world"], "port": port}
    overrides = {**SMALL_DEMO, "world": world, "data_root": str(root)}
    cfg = load_config(REPO / "configs" / "demo.yaml", overrides)
    runner = LocalRunner()
    with pipeline.synthetic_world(cfg, runner):
        return pipeline.build_dataset(cfg, runner)


def _samples(tars: list[str]) -> dict[str, bytes]:
    """Every member of every shard by name, its bytes only (tar headers carry write times)."""
    found = {}
    for tar in sorted(tars):
        with tarfile.open(tar) as archive:
            for member in archive.getmembers():
                found[f"{Path(tar).parent.name}/{member.name}"] = archive.extractfile(member).read()
    return found


def _table(path: str, drop: tuple[str, ...] = ()) -> list[dict]:
    table = pq.read_table(path)
    return table.drop_columns([c for c in drop if c in table.column_names]).to_pylist()


@pytest.mark.slow
@pytest.mark.long  # two whole builds and two trainings (~2 min quiet): make test-slow, in CI
def test_the_demo_data_is_the_same_beside_a_cpu_hog_and_training_twice_is_too(tmp_path) -> None:
    port = _free_port()
    quiet = _build(tmp_path / "quiet", port)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy = _build(tmp_path / "busy", port)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    # Fingerprints name the data root (the metadata's source is a file under it), so two roots
    # differ there by design; what must not differ is what was written and counted.
    volatile = ("seconds", "images_per_s", "passes", "base_url")
    for stage in ("metadata", "captions", "counting", "verified", "common", "lambdas"):
        a = {k: v for k, v in quiet[stage]["stats"].items() if k not in volatile}
        b = {k: v for k, v in busy[stage]["stats"].items() if k not in volatile}
        assert a == b, stage
    for stage in ("metadata", "captions", "lambdas"):  # every output file's SHA-256
        assert quiet[stage]["content"] == busy[stage]["content"], stage
    # shards are tar files whose headers carry write times: compared member by member below
    for table in ("counting", "common"):
        drop = ("error_message",)  # a timeout's message names how long it waited
        assert _table(quiet[table]["outputs"]["results"], drop) == _table(
            busy[table]["outputs"]["results"], drop
        )
        assert _samples(quiet[table]["outputs"]["shards"]) == _samples(
            busy[table]["outputs"]["shards"]
        )
    assert _table(quiet["verified"]["outputs"]["decisions"]) == _table(
        busy["verified"]["outputs"]["decisions"]
    )
    assert _samples(quiet["verified"]["outputs"]["shards"]) == _samples(
        busy["verified"]["outputs"]["shards"]
    )

    cfg = load_config(REPO / "configs" / "demo.yaml", {**SMALL_DEMO, "data_root": str(tmp_path)})
    runner = LocalRunner()
    weights = []
    for root in ("quiet", "busy"):
        data = quiet if root == "quiet" else busy
        made = pipeline.fine_tune(data, cfg.train, runner, str(tmp_path / root), "countclip")
        weights.append(torch.load(made.result()["outputs"]["last"], weights_only=True))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
