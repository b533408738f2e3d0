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


def test_photographs_are_verified_by_a_detector() -> None:
    """The classical counter counts blobs of rendered scenes: with real photographs
    (``synthetic: false``) it is refused unless asked for by name, and the real config and its
    deployments use the detector."""
    from pydantic import ValidationError

    from countclip.config import PipelineConfig
    from countclip.stages.verify import plan_verify_stage

    with pytest.raises(ValidationError, match=r"verify\.counter: classical counts blobs"):
        PipelineConfig(synthetic=False)
    real = load_config(REPO / "configs" / "laion400m.yaml")
    assert real.verify.counter == "torchvision" and not real.synthetic
    explicit = PipelineConfig(synthetic=False, verify={"classical_on_photos": True})
    plan = plan_verify_stage({"fingerprint": "x"}, explicit.verify, "/tmp/unused")
    assert plan.config["classical_on_photos"] is True  # the manifest records the choice
