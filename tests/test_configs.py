"""Every shipped config loads (a renamed field must not leave a config behind), and the
experiment's arms are valid overrides of the experiment's config."""

from __future__ import annotations

from pathlib import Path

import pytest

from countclip.yamlconfig import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name


def test_every_arm_is_a_valid_config() -> None:
    from countclip_experiments import experiment

    cfg = load_config(REPO / "configs" / "bench-counting.yaml")
    arms = experiment.load_arms()
    assert {"countclip", "control", "countclip-naive", "paper-literal"} <= set(arms)
    for name, overrides in arms.items():
        arm = experiment.arm_config(cfg, overrides, seed=2)
        assert arm.train.seed == 2 and arm.pretrain.seed == 2, name
    assert experiment.arm_config(cfg, arms["control"], 0).train.count_loss == "none"
    assert experiment.arm_config(cfg, arms["countclip-naive"], 0).verify.counter == "none"
