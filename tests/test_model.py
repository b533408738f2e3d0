"""Tiny model registration, tower locking, and open_clip-loadable checkpoints."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch

from countclip.config import ModelConfig
from countclip.training.model import (
    SMALL_MODEL,
    SMALL_MODEL_CONFIG,
    TINY_MODEL,
    TINY_MODEL_CONFIG,
    create_model,
    load_model,
    save_checkpoint_for_open_clip,
    uses_quick_gelu,
)
from countclip.yamlconfig import load_config

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model(ModelConfig(name=TINY_MODEL))


def test_tiny_config_registered_with_open_clip(tiny):
    model, preprocess_train, preprocess_val, tokenizer = tiny
    assert TINY_MODEL in open_clip.list_models()
    assert open_clip.get_model_config(TINY_MODEL) == TINY_MODEL_CONFIG
    params = sum(p.numel() for p in model.parameters())
    assert 7_000_000 < params < 8_500_000  # ~7.8M, 6.3M of it the token embedding (STACK.md)
    # open_clip.get_tokenizer picks up the custom context length and the ViT-B-32 BPE vocab
    assert tokenizer.context_length == 16
    assert open_clip.get_tokenizer(TINY_MODEL).context_length == 16
    assert tokenizer(["two red stars"]).shape == (1, 16)
    assert model.visual.transformer.resblocks[0].attn.num_heads == 4
    from PIL import Image

    image = Image.new("RGB", (100, 80), (200, 10, 10))
    assert preprocess_val(image).shape == (3, 64, 64)
    assert preprocess_train(image).shape == (3, 64, 64)


def test_small_config_is_the_tiny_design_wider():
    assert open_clip.get_model_config(SMALL_MODEL) == SMALL_MODEL_CONFIG
    torch.manual_seed(0)
    model, _, preprocess_val, tokenizer = create_model(ModelConfig(name=SMALL_MODEL))
    assert model.visual.transformer.resblocks[0].attn.num_heads == 6
    assert len(model.transformer.resblocks) == 4
    assert tokenizer.context_length == 16
    from PIL import Image

    image = preprocess_val(Image.new("RGB", (64, 64), (0, 0, 200))).unsqueeze(0)
    image_f, text_f, _ = model(image, tokenizer(["two blue squares"]))[:3]
    assert image_f.shape == text_f.shape == (1, 192)


def test_checkpoint_loads_unchanged_with_plain_open_clip(tiny, tmp_path):
    model = tiny[0]
    path = save_checkpoint_for_open_clip(model, tmp_path / "ck.pt")
    loaded, _, _ = open_clip.create_model_and_transforms(TINY_MODEL, pretrained=str(path))
    ours = model.state_dict()
    theirs = loaded.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    # and through our own loader (what evaluation uses), in eval mode
    again, _, _ = load_model(TINY_MODEL, str(path))
    assert not again.training
    assert all(torch.equal(ours[k], again.state_dict()[k]) for k in ours)
    # a DDP-style "module." wrapper is unwrapped before saving
    wrapper = torch.nn.Module()
    wrapper.module = model
    path2 = save_checkpoint_for_open_clip(wrapper, tmp_path / "ck2.pt")
    assert set(torch.load(path2, weights_only=True)) == set(ours)


def test_create_from_local_checkpoint_and_missing_file(tiny, tmp_path):
    path = save_checkpoint_for_open_clip(tiny[0], tmp_path / "ck.pt")
    model = create_model(ModelConfig(name=TINY_MODEL, pretrained=str(path)))[0]
    assert torch.equal(model.logit_scale, tiny[0].logit_scale)
    assert torch.equal(model.visual.conv1.weight, tiny[0].visual.conv1.weight)
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        create_model(ModelConfig(name=TINY_MODEL, pretrained=str(tmp_path / "nope.pt")))


def test_tower_locking():
    model = create_model(ModelConfig(lock_image=True, lock_text=True))[0]
    assert not any(p.requires_grad for p in model.visual.parameters())
    assert not model.token_embedding.weight.requires_grad
    assert model.logit_scale.requires_grad  # the temperature stays trainable
    partial = create_model(ModelConfig(lock_image=True, lock_image_unlocked_groups=1))[0]
    assert partial.visual.proj.requires_grad
    assert not partial.visual.conv1.weight.requires_grad


def test_trimmed_text_encoding_matches_open_clip(tiny):
    from countclip.training.encoders import encode_text
    from countclip.training.model import TrainForward, unwrap_model

    model, _, _, tokenizer = tiny
    texts = tokenizer(["two red stars", "a picture of seven blue circles on a textured plate"])
    full = model.encode_text(texts, normalize=True)
    trimmed = encode_text(model, texts)
    assert torch.allclose(full, trimmed, atol=1e-5)
    _, text_f, scale = TrainForward(model)(torch.zeros(1, 3, 64, 64), texts)
    assert torch.allclose(text_f, full, atol=1e-5) and scale == model.logit_scale.exp()
    assert unwrap_model(TrainForward(model)) is model


OPENAI_MODELS = sorted({name for name, tag in open_clip.list_pretrained() if tag == "openai"})


@pytest.mark.parametrize("name", OPENAI_MODELS)
def test_openai_weights_always_get_quickgelu(name: str) -> None:
    """OpenAI's CLIP was trained with QuickGELU; open_clip builds e.g. ViT-B-32 with GELU and
    only warns when 'openai' weights are loaded into it. Every OpenAI tag resolves to QuickGELU,
    and so does a checkpoint fine-tuned from one (evaluation keeps the origin tag)."""
    from countclip.evaluation.countbench_scores import quick_gelu_of

    assert uses_quick_gelu(ModelConfig(name=name, pretrained="openai"))
    ref = {"name": name, "checkpoint": "runs/x/best.pt", "pretrained": "openai"}
    assert quick_gelu_of(ref)


def test_quickgelu_follows_the_tag_and_an_explicit_setting() -> None:
    assert not uses_quick_gelu(ModelConfig(name="ViT-B-32", pretrained="laion2b_s34b_b79k"))
    assert not uses_quick_gelu(ModelConfig(name="ViT-B-32", pretrained=None))
    assert uses_quick_gelu(ModelConfig(name="ViT-B-32", pretrained=None, quick_gelu=True))
    assert not uses_quick_gelu(ModelConfig(name="ViT-B-32", pretrained="openai", quick_gelu=False))


def test_the_real_config_builds_quickgelu_activations(tmp_path: Path) -> None:
    """configs/laion400m.yaml's model, built without downloading anything: random weights saved
    locally stand in for OpenAI's, with the activation the config resolves to."""
    cfg = load_config(REPO / "configs" / "laion400m.yaml").train.model
    assert uses_quick_gelu(cfg)
    random_init = open_clip.create_model(cfg.name, pretrained=None, force_quick_gelu=True)
    weights = tmp_path / "openai-stand-in.pt"
    torch.save(random_init.state_dict(), weights)
    local = cfg.model_copy(update={"pretrained": str(weights), "quick_gelu": uses_quick_gelu(cfg)})
    model = create_model(local)[0]
    activations = {type(m).__name__ for m in model.modules() if "GELU" in type(m).__name__}
    assert activations == {"QuickGELU"}
