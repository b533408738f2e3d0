"""counting_loss against hand-computed values; CountingClipLoss parts and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from countclip.training.losses import CountingClipLoss, counting_loss

torch.set_num_threads(1)


def _hand(i, t, cfs, s=1.0):
    """−log(e^{s i·t} / (e^{s i·t} + Σ_j e^{s i·cf_j})) with plain Python floats."""
    dot = lambda a, b: sum(x * y for x, y in zip(a, b, strict=True))  # noqa: E731
    pos = math.exp(s * dot(i, t))
    return -math.log(pos / (pos + sum(math.exp(s * dot(i, c)) for c in cfs)))


def test_k1_hand_computed_s1_and_scaled():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    caption = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    cf = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]])
    # sample 0: pos 0.6, neg 0 -> log(1 + e^-0.6); sample 1: pos 1, neg 0 -> log(1 + e^-1)
    expected = (math.log1p(math.exp(-0.6)) + math.log1p(math.exp(-1.0))) / 2
    assert counting_loss(image, caption, cf).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(
        (_hand([1, 0], [0.6, 0.8], [[0, 1]]) + _hand([0, 1], [0, 1], [[1, 0]])) / 2
    )
    scaled = (math.log1p(math.exp(-6.0)) + math.log1p(math.exp(-10.0))) / 2
    got = counting_loss(image, caption, cf, logit_scale=torch.tensor(10.0)).item()
    assert got == pytest.approx(scaled, rel=1e-5)
    assert counting_loss(image, caption, cf, logit_scale=10.0).item() == pytest.approx(got)


def test_k8_weights_and_scale_against_hand_values():
    g = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(3, 5, generator=g), dim=-1)
    caption = F.normalize(torch.randn(3, 5, generator=g), dim=-1)
    cf = F.normalize(torch.randn(3, 8, 5, generator=g), dim=-1)
    w = torch.tensor([0.5, 1.0, 2.0])
    for s in (None, 1.0, 14.3):
        per = [
            _hand(image[k].tolist(), caption[k].tolist(), cf[k].tolist(), s or 1.0)
            for k in range(3)
        ]
        unweighted = counting_loss(image, caption, cf, logit_scale=s).item()
        assert unweighted == pytest.approx(sum(per) / 3, rel=1e-5)
        weighted = counting_loss(image, caption, cf, weights=w, logit_scale=s).item()
        assert weighted == pytest.approx(
            sum(wk * lk for wk, lk in zip(w.tolist(), per, strict=True)) / 3, rel=1e-5
        )
    # with random unit vectors and s = 1 the loss sits near ln 9 (why the default s is the scale)
    assert abs(counting_loss(image, caption, cf).item() - math.log(9)) < 0.5


def test_shapes_validated_and_empty_batch_is_zero_with_graph():
    image = torch.zeros(0, 4, requires_grad=True)
    loss = counting_loss(image, torch.zeros(0, 4), torch.zeros(0, 8, 4))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    with pytest.raises(ValueError, match="counterfactual"):
        counting_loss(torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="weights"):
        counting_loss(
            torch.zeros(2, 4), torch.zeros(2, 4), torch.zeros(2, 1, 4), weights=torch.ones(3)
        )


def test_gradients_flow_to_all_inputs():
    g = torch.Generator().manual_seed(1)
    image = torch.randn(4, 6, generator=g, requires_grad=True)
    caption = torch.randn(4, 6, generator=g, requires_grad=True)
    cf = torch.randn(4, 8, 6, generator=g, requires_grad=True)
    counting_loss(
        F.normalize(image, dim=-1),
        F.normalize(caption, dim=-1),
        F.normalize(cf, dim=-1),
        weights=torch.rand(4, generator=g),
    ).backward()
    for t in (image, caption, cf):
        assert t.grad is not None and t.grad.abs().sum() > 0


def test_counting_clip_loss_parts():
    g = torch.Generator().manual_seed(2)
    raw_image = torch.randn(10, 8, generator=g, requires_grad=True)
    image = F.normalize(raw_image, dim=-1)
    text = F.normalize(torch.randn(10, 8, generator=g), dim=-1)
    cf = F.normalize(torch.randn(2, 8, 8, generator=g), dim=-1)
    scale = torch.tensor(14.0, requires_grad=True)
    index = torch.tensor([0, 1])
    w = torch.tensor([1.0, 3.0])
    out = CountingClipLoss("count_plus", "model")(image, text, scale, index, cf, w)
    assert set(out) == {"contrastive_loss", "count_loss"}
    assert out["contrastive_loss"].item() == pytest.approx(ClipLoss()(image, text, scale).item())
    assert out["count_loss"].item() == pytest.approx(
        counting_loss(image[:2], text[:2], cf, w, 14.0).item(), rel=1e-6
    )
    # s is the detached scale: the counting loss alone does not move the temperature
    out["count_loss"].backward(retain_graph=True)
    assert scale.grad is None and raw_image.grad.abs().sum() > 0
    one = CountingClipLoss("count_plus", "one")(image, text, scale, index, cf, w)
    assert one["count_loss"].item() == pytest.approx(
        counting_loss(image[:2], text[:2], cf, w).item(), rel=1e-6
    )
    control = CountingClipLoss("none")(image, text, scale, index, cf, w)
    assert not control["count_loss"].requires_grad
    total = CountingClipLoss.total(control)
    assert total.item() == pytest.approx(control["contrastive_loss"].item())


def test_gradient_reaches_both_towers_of_the_tiny_model():
    from countclip.config import ModelConfig
    from countclip.training.model import create_model

    torch.manual_seed(0)
    model, _, _, tokenizer = create_model(ModelConfig())
    images = torch.randn(2, 3, 64, 64)
    texts = tokenizer(["two red stars", "three blue circles"])
    cfs = tokenizer(["three red stars", "two blue circles"])
    image_f, text_f, scale = model(images, torch.cat([texts, cfs]))[:3]
    loss = counting_loss(image_f, text_f[:2], text_f[2:].unsqueeze(1), logit_scale=scale.detach())
    loss.backward()
    assert model.visual.conv1.weight.grad.abs().sum() > 0
    assert model.token_embedding.weight.grad.abs().sum() > 0
    assert model.logit_scale.grad is None
