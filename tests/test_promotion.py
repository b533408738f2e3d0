"""retrain-countclip's promotion: a frozen promotion set, and a decision made on it.

Real open_clip models (the tiny one, two random inits) scored with CountBench's rule on real
shards; the Prefect tasks run for real (the session's temporary API)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from countclip.config import ModelConfig
from countclip.evaluation.promotion import (
    PromotionSetError,
    freeze_promotion_set,
    score_on_promotion_set,
)
from countclip.synthetic.shards import write_synthetic_shards
from countclip.training.model import TINY_MODEL, create_model, save_checkpoint_for_open_clip
from countclip.training.seeding import seeded_global_rng

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    counting, _ = write_synthetic_shards(tmp_path_factory.mktemp("shards"), 60, 0, per_shard=20)
    return counting


def _checkpoint(folder: Path, seed: int) -> str:
    with seeded_global_rng(seed):
        model = create_model(ModelConfig(name=TINY_MODEL))[0]
    return str(save_checkpoint_for_open_clip(model, folder / f"model-{seed}.pt"))


def test_the_set_is_frozen_when_first_built(shards: list[str], tmp_path: Path) -> None:
    record = freeze_promotion_set(shards[:2], tmp_path, val_fraction=0.5)
    assert 0 < record["samples"] <= 40 and sum(record["per_count"].values()) == record["samples"]
    # new data later (more shards) does not change the frozen set
    assert freeze_promotion_set(shards, tmp_path, val_fraction=0.5) == record
    tar = Path(record["tar"])
    tar.write_bytes(tar.read_bytes()[:-512])  # damaged on disk
    with pytest.raises(PromotionSetError, match="changed"):
        freeze_promotion_set(shards, tmp_path)
    with pytest.raises(PromotionSetError, match="no validation sample"):
        freeze_promotion_set(shards, tmp_path / "other", val_fraction=0.0)


def test_promotion_decides_on_the_frozen_set(prefect_harness, shards, tmp_path) -> None:
    from countclip_tasks.promote import promote_task, read_history, read_promoted

    root = str(tmp_path / "data")
    verified = {"outputs": {"shards": shards}}
    frozen = freeze_promotion_set(shards, root)
    a, b = _checkpoint(tmp_path, 0), _checkpoint(tmp_path, 1)
    score_a = score_on_promotion_set(TINY_MODEL, a, frozen)["balanced"]
    score_b = score_on_promotion_set(TINY_MODEL, b, frozen)["balanced"]
    assert score_a != score_b  # two random inits do not tie on this set

    def manifest(fp: str, checkpoint: str) -> dict:
        return {"fingerprint": fp, "outputs": {"checkpoint": checkpoint}}

    first = promote_task(manifest("a", a), verified, root, TINY_MODEL, run_name="r1")
    assert first["promoted"] and first["promotion_score"] == pytest.approx(score_a)
    second = promote_task(manifest("b", b), verified, root, TINY_MODEL, run_name="r2")
    assert second["promoted"] == (score_b > score_a)
    assert second["previous_promotion_score"] == pytest.approx(score_a)
    best = b if score_b > score_a else a
    again = promote_task(manifest("again", best), verified, root, TINY_MODEL, run_name="r3")
    assert not again["promoted"]  # not strictly better than itself
    assert read_promoted(root)["checkpoint"] == best
    assert [h["run"] for h in read_history(root)] == ["r1", "r2", "r3"]
    assert {h["promotion_set_sha256"] for h in read_history(root)} == {frozen["sha256"]}
    assert json.loads((Path(root) / "models" / "promoted.json").read_text())["checkpoint"] == best
