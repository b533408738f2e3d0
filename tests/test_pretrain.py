"""The synthetic baseline: corpus rendering (LAION-like counting share) and the pretrain stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from countclip.config import PretrainConfig, WorldConfig
from countclip.stages.pretrain import run_pretrain_stage
from countclip.synthetic import generate_metadata
from countclip.synthetic.corpus import render_corpus
from countclip.training.loader import load_samples
from countclip.training.model import TINY_MODEL, load_model
from countclip.training.validation import validation_scores

torch.set_num_threads(1)
WORLD = WorldConfig(rows=600, counting_fraction=0.3, seed=3)


@pytest.fixture(scope="module")
def world_parts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("world")
    return [str(p) for p in generate_metadata(out, WORLD, "http://127.0.0.1:9")]


def test_corpus_caps_counting_share(world_parts: list[str], tmp_path: Path) -> None:
    uncapped = render_corpus(world_parts, tmp_path / "all", rows=600, image_size=32, world=WORLD)
    capped = render_corpus(
        world_parts, tmp_path / "capped", rows=600, image_size=32, counting_share=0.05, world=WORLD
    )
    assert uncapped["sizes"]["counting"] > 0.2 * 600  # the world is counting-rich
    assert capped["sizes"]["counting"] <= 0.05 * 600
    assert capped["sizes"]["counting"] > 0
    assert capped["sizes"]["common"] == uncapped["sizes"]["common"]  # only counting rows dropped
    samples = load_samples(capped["counting"], capped["common"], val_fraction=0.0)
    assert len(samples.train_counting) == capped["sizes"]["counting"]
    assert len(samples.common) == capped["sizes"]["common"]
    assert all(2 <= r.count <= 10 for r in samples.train_counting)


def test_pretrain_stage_writes_loadable_baseline_and_is_cached(
    world_parts: list[str], tmp_path: Path
) -> None:
    world = {
        "fingerprint": "w",
        "config": WORLD.model_dump(mode="json"),
        "outputs": {"metadata": str(Path(world_parts[0]).parent)},
    }
    cfg = PretrainConfig(rows=300, steps=3, batch_size=16, warmup_steps=1, threads=1)
    manifest = run_pretrain_stage(world, cfg, str(tmp_path))
    checkpoint = Path(manifest["outputs"]["checkpoint"])
    assert checkpoint.exists()
    assert manifest["stats"]["counting_share"] <= 0.05 + 1e-9
    model, _, _ = load_model(TINY_MODEL, str(checkpoint), "cpu")
    saved = torch.load(checkpoint, map_location="cpu")
    assert torch.equal(model.state_dict()["logit_scale"], saved["logit_scale"])
    assert run_pretrain_stage(world, cfg, str(tmp_path)) == manifest  # done: manifest returned


def test_validation_scores_balanced_vs_plain() -> None:
    # counts 2..10: 90 "two" samples all right, 10 "ten" samples all wrong
    correct = [90] + [0] * 8
    total = [90] + [0] * 7 + [10]
    scores = validation_scores(correct + total)
    assert scores == {"accuracy": pytest.approx(0.9), "balanced": pytest.approx(0.5)}
    assert validation_scores([0] * 18) is None
