"""WiSE-FT: the interpolation, and the wise_ft stage after train (an α sweep never retrains)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from countclip import pipeline
from countclip.config import ModelConfig, TrainConfig
from countclip.runners import LocalRunner, NotBuilt, PlanRunner
from countclip.synthetic.shards import write_constant_lambdas, write_synthetic_shards
from countclip.training.model import create_model, save_checkpoint_for_open_clip
from countclip.training.wise_ft import interpolate

torch.set_num_threads(1)


def test_interpolate_is_a_straight_line_between_the_two() -> None:
    start = {"w": torch.zeros(3), "b": torch.ones(2), "ids": torch.arange(4)}
    tuned = {"w": torch.full((3,), 2.0), "b": torch.full((2,), 3.0), "ids": torch.arange(4)}
    half = interpolate(start, tuned, 0.5)
    assert torch.equal(half["w"], torch.ones(3)) and torch.equal(half["b"], torch.full((2,), 2.0))
    assert torch.equal(half["ids"], torch.arange(4))
    assert torch.equal(interpolate(start, tuned, 0.0)["w"], start["w"])
    assert torch.equal(interpolate(start, tuned, 1.0)["b"], tuned["b"])
    assert torch.allclose(interpolate(start, tuned, 0.25)["w"], torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="keys"):
        interpolate(start, {"w": tuned["w"]}, 0.5)
    with pytest.raises(ValueError, match="non-float"):
        interpolate(start, {**tuned, "ids": torch.arange(4) + 1}, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interpolate(start, tuned, 1.5)
    with pytest.raises(ValueError):
        TrainConfig(wise_ft_alpha=-0.1)


def test_alpha_is_no_part_of_a_config_that_does_not_set_it() -> None:
    """Unset, ``wise_ft_alpha`` is not even dumped: every fingerprint made before it existed
    stays, and a config round-trips with or without it."""
    from countclip.config import PipelineConfig
    from countclip.fingerprints import canonical

    assert "wise_ft_alpha" not in canonical(TrainConfig())
    cfg = PipelineConfig(train={"wise_ft_alpha": 0.4})
    assert PipelineConfig.model_validate(cfg.model_dump(mode="json")).train.wise_ft_alpha == 0.4


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Shards, λ and a 'baseline' checkpoint (a random tiny model saved like a pretrain)."""
    root = tmp_path_factory.mktemp("wise")
    counting, common = write_synthetic_shards(root / "shards", 48, 64, per_shard=32)
    lambdas = write_constant_lambdas(root / "lambdas.json")
    torch.manual_seed(3)
    baseline = save_checkpoint_for_open_clip(
        create_model(ModelConfig())[0], root / "baseline" / "last.pt"
    )
    data = {
        "verified": {"outputs": {"shards": counting}, "fingerprint": "c1", "run_id": "c1"},
        "common": {"outputs": {"shards": common}, "fingerprint": "m1", "run_id": "m1"},
        "lambdas": {"outputs": {"lambdas": str(lambdas)}, "fingerprint": "l1", "run_id": "l1"},
    }
    return root, data, str(baseline)


def _cfg(baseline: str, **kw) -> TrainConfig:
    cfg = TrainConfig(
        batch_size=8, steps=4, warmup_steps=1, eval_every=2, checkpoint_every=2, threads=1,
        val_fraction=0.25, lr=1e-2, count_loss="count", report_to=[], **kw,
    )  # fmt: skip
    return pipeline.from_checkpoint(cfg, baseline)


def _weights(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_wise_ft_stage_interpolates_one_fine_tune_for_every_alpha(built) -> None:
    root, data, baseline = built
    runner, data_root = LocalRunner(), str(root / "data")
    plain = pipeline.fine_tune(data, _cfg(baseline), runner, data_root, "countclip").result()
    assert plain["stage"] == "train"
    half = pipeline.fine_tune(
        data, _cfg(baseline, wise_ft_alpha=0.5), runner, data_root, "countclip"
    ).result()
    quarter = pipeline.fine_tune(
        data, _cfg(baseline, wise_ft_alpha=0.25), runner, data_root, "countclip"
    ).result()
    one = pipeline.fine_tune(data, _cfg(baseline, wise_ft_alpha=1.0), runner, data_root, "x")
    assert one.result() == plain  # α = 1 is the plain fine-tune itself
    # One fine-tune: the train stage was reused, never retrained, for every α.
    assert len(list((root / "data" / "train").iterdir())) == 1
    for wise in (half, quarter):
        assert wise["stage"] == "wise_ft" and wise["inputs"]["train"] == plain["fingerprint"]
        assert wise["stats"]["train_fingerprint"] == plain["fingerprint"]
        assert wise["stats"]["start"] == baseline
    assert half["fingerprint"] != quarter["fingerprint"]
    start, tuned = _weights(baseline), _weights(plain["outputs"]["checkpoint"])
    mixed = _weights(half["outputs"]["checkpoint"])
    for key, value in mixed.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (start[key] + tuned[key]) / 2)
    # The stage scores θ(α) on the very validation split and rule the fine-tune selected on.
    curve = [
        json.loads(line)
        for line in Path(plain["outputs"]["metrics"]).read_text().splitlines()
        if '"val_count_balanced_acc"' in line
    ]
    zero = runner.run("wise_ft", plain, data["verified"], 0.0, data_root, label="countclip")
    assert zero["stats"]["val_count_balanced_acc"] == pytest.approx(
        curve[0]["val_count_balanced_acc"]  # step 0: the starting model
    )
    full = runner.run("wise_ft", plain, data["verified"], 1.0, data_root, label="countclip")
    assert full["stats"]["val_count_balanced_acc"] == pytest.approx(
        plain["stats"]["best_val_count_acc"]  # the selected checkpoint's score
    )
    again = runner.run("wise_ft", plain, data["verified"], 0.5, data_root, label="other label")
    assert again["run_id"] == half["run_id"]  # cached: α and the fine-tune are its identity
    other = {**data["verified"], "fingerprint": "c2"}
    with pytest.raises(ValueError, match="counting set"):
        runner.run("wise_ft", plain, other, 0.5, data_root, label="countclip")


def test_the_plan_runner_finds_a_finished_wise_ft(built) -> None:
    """``countclip evaluate`` after ``countclip train`` finds θ(α) the way it was made."""
    root, data, baseline = built
    data_root = str(root / "data")
    cfg = _cfg(baseline, wise_ft_alpha=0.5)
    made = pipeline.fine_tune(data, cfg, LocalRunner(), data_root, "countclip").result()
    found = pipeline.fine_tune(data, cfg, PlanRunner(), data_root, "countclip").result()
    assert found["fingerprint"] == made["fingerprint"] and found["stage"] == "wise_ft"
    missing = _cfg(baseline, wise_ft_alpha=0.3)
    with pytest.raises(NotBuilt):
        pipeline.fine_tune(data, missing, PlanRunner(), data_root, "countclip").result()


def test_every_stage_has_its_prefect_task() -> None:
    """The Prefect runner maps wise_ft (like every stage but the per-source metadata) to its
    task, so a flow runs WiSE-FT as a cached task run too."""
    from countclip_flows.runner import TASKS

    assert set(pipeline.STAGE_NAMES) - {"metadata"} <= set(TASKS)
    assert TASKS["wise_ft"].name == "wise-ft"
