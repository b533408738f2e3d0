"""Nothing lost, nothing faked: finished outputs are checked on every cache hit, a damaged one
is rebuilt (never read short), and nothing finished is deleted before its replacement is.
Real stages, real files; no mocks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from countclip import pipeline
from countclip.config import TrainConfig
from countclip.runners import LocalRunner
from countclip.stages.train import plan_training, run_training
from countclip.synthetic.shards import write_synthetic_shards
from countclip.training.state import PREVIOUS_FILE, STATE_FILE, CheckpointUnreadable, load_state
from countclip.yamlconfig import load_config

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_synthetic_shards(tmp_path_factory.mktemp("shards"), 40, 40, per_shard=20)


def _manifest(name: str, tars: list[str], content: str) -> dict:
    return {"fingerprint": name, "run_id": f"run-of-{content}", "content": content,
            "outputs": {"shards": tars}}  # fmt: skip


def _cfg(**kw) -> TrainConfig:
    base = dict(batch_size=8, steps=2, warmup_steps=1, eval_every=2, checkpoint_every=2,
                threads=1, val_fraction=0.25, report_to=[])  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_an_upstream_recomputed_to_the_same_bytes_does_not_retrain(shards, tmp_path) -> None:
    counting, common = shards
    root = str(tmp_path)
    first = run_training(_manifest("c", counting, "A"), _manifest("m", common, "B"), None,
                         _cfg(), root)  # fmt: skip
    # the counting download recomputed (a new run id) with byte-identical outputs
    again = run_training(
        {**_manifest("c", counting, "A"), "run_id": "another-run"}, _manifest("m", common, "B"),
        None, _cfg(), root,
    )  # fmt: skip
    assert again["run_id"] == first["run_id"]  # the same finished run: nothing retrained


def test_a_finished_training_outlives_a_failed_replacement(shards, tmp_path) -> None:
    counting, common = shards
    root = str(tmp_path)
    first = run_training(_manifest("c", counting, "A"), _manifest("m", common, "B"), None,
                         _cfg(), root)  # fmt: skip
    changed = _manifest("c", [str(tmp_path / "gone.tar")], "A2")  # new content, and it fails
    with pytest.raises(Exception, match=r"gone\.tar"):
        run_training(changed, _manifest("m", common, "B"), None, _cfg(), root)
    kept = [p for p in Path(first["directory"]).parent.iterdir() if ".replaced-" in p.name]
    assert len(kept) == 1 and (kept[0] / "best.pt").is_file() and (kept[0] / "state.pt").is_file()
    assert (
        plan_training(changed, _manifest("m", common, "B"), None, _cfg(), root).completed() is None
    )


def test_a_damaged_state_falls_back_to_the_previous_one(shards, tmp_path, caplog) -> None:
    counting, common = shards
    cfg = _cfg(steps=4, checkpoint_every=2, eval_every=2)
    done = run_training(_manifest("c", counting, "A"), _manifest("m", common, "B"), None, cfg,
                        str(tmp_path))  # fmt: skip
    run = Path(done["directory"])
    assert torch.load(run / PREVIOUS_FILE, weights_only=False)["step"] == 2
    state = run / STATE_FILE
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 3])  # a truncated copy
    with caplog.at_level("WARNING", logger="countclip.training.state"):
        resumed = load_state(state, cfg)
    assert resumed["step"] == 2
    assert (
        f"{state}: unreadable" in caplog.text and "resuming from the previous state" in caplog.text
    )
    (run / PREVIOUS_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointUnreadable, match=str(run / PREVIOUS_FILE)):
        load_state(state, cfg)


def test_a_damaged_checkpoint_given_to_evaluate_names_the_file(tmp_path) -> None:
    from countclip.training.model import TINY_MODEL, load_model

    bad = tmp_path / "best.pt"
    bad.write_bytes(b"PK\x03\x04 half a zip")
    with pytest.raises(ValueError, match=f"model.pretrained: {bad}: not a readable checkpoint"):
        load_model(TINY_MODEL, str(bad))


@pytest.mark.slow
def test_a_truncated_shard_is_downloaded_again_never_read_short(tmp_path) -> None:
    """After a build, a counting shard and a common shard are cut in half: the next build's
    cache checks see it (sizes), the downloads redo those shards, and verification keeps
    exactly what it kept before."""
    cfg = load_config(
        REPO / "configs" / "synthetic-small.yaml",
        {
            "data_root": str(tmp_path),
            "world": {"rows": 500, "parts": 1, "counting_fraction": 0.3, "misbehave_fraction": 0},
            "download": {"retry_failed_passes": 0, "number_sample_per_shard": 25},
        },
    )
    runner = LocalRunner()
    with pipeline.synthetic_world(cfg, runner):
        first = pipeline.build_dataset(cfg, runner)
    damaged = [first["counting"]["outputs"]["shards"][0], first["common"]["outputs"]["shards"][0]]
    sizes = [os.path.getsize(p) for p in damaged]
    for path, size in zip(damaged, sizes, strict=True):
        with open(path, "r+b") as handle:
            handle.truncate(size // 2)
    with pipeline.synthetic_world(cfg, runner):
        second = pipeline.build_dataset(cfg, runner)
    assert [os.path.getsize(p) for p in damaged] == sizes
    assert second["counting"]["run_id"] != first["counting"]["run_id"]  # rebuilt, not cached
    assert second["verified"]["stats"]["kept"] == first["verified"]["stats"]["kept"]
    assert second["common"]["stats"]["successes"] == first["common"]["stats"]["successes"]
