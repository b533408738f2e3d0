"""The CountCLIP objective: open_clip's contrastive loss plus the counting loss.

L = L_CLIP + L_count, where L_CLIP is open_clip's ``ClipLoss`` over the *whole* batch (counting
and common samples; counterfactual captions are not part of it; features gathered across ranks
exactly as open_clip does) and L_count is (docs/design.md, "The method")

    L_count = (1/N) Σ_k w_k · −log( e^{s·i_k·t_k} / (e^{s·i_k·t_k} + Σ_j e^{s·i_k·cf_kj}) )

over the N counting samples, with K = 1 counterfactual (L_count) or K = 8 (L_count+), and
w_k = λ(c_k). The paper writes s = 1; measured here that leaves the loss near ln 9 and teaches
almost nothing, so the default s is the model's exponentiated logit scale, *detached* (the
counting loss should not be able to move the temperature that L_CLIP calibrates).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from torch import nn


def counting_loss(
    image_features: torch.Tensor,
    caption_features: torch.Tensor,
    counterfactual_features: torch.Tensor,
    weights: torch.Tensor | None = None,
    logit_scale: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """(1/N) Σ_k w_k·ℓ_k with ℓ_k the softmax cross-entropy of the true caption against the
    true caption plus the K counterfactuals.

    Shapes: image (N, D), caption (N, D), counterfactuals (N, K, D), weights (N,). Features are
    used as given (CLIP normalises them; this function does not). ``logit_scale`` is the
    multiplier s itself, already exponentiated as open_clip's ``ClipLoss`` takes it; None means
    s = 1 (the paper's formula). N = 0 gives a zero that still belongs to the graph, so a batch
    without counting samples needs no special case (and DDP sees every parameter used).
    """
    if image_features.ndim != 2 or caption_features.shape != image_features.shape:
        raise ValueError(
            f"counting_loss: image {tuple(image_features.shape)} and caption "
            f"{tuple(caption_features.shape)} features must both be (N, D)"
        )
    n, d = image_features.shape
    if (
        counterfactual_features.ndim != 3
        or counterfactual_features.shape[0] != n
        or (counterfactual_features.shape[2] != d)
    ):
        raise ValueError(
            f"counting_loss: counterfactual features {tuple(counterfactual_features.shape)} "
            f"must be (N={n}, K, D={d})"
        )
    if n == 0:
        return (image_features.sum() + caption_features.sum() + counterfactual_features.sum()) * 0
    scale = 1.0 if logit_scale is None else logit_scale
    positive = (image_features * caption_features).sum(-1, keepdim=True)  # (N, 1)
    negative = torch.einsum("nd,nkd->nk", image_features, counterfactual_features)  # (N, K)
    logits = scale * torch.cat([positive, negative], dim=1)
    target = torch.zeros(n, dtype=torch.long, device=logits.device)
    per_sample = F.cross_entropy(logits.float(), target, reduction="none")
    if weights is not None:
        if weights.shape != (n,):
            raise ValueError(f"counting_loss: weights {tuple(weights.shape)} must be (N={n},)")
        per_sample = per_sample * weights.to(per_sample.dtype)
    return per_sample.mean()


class CountingClipLoss(nn.Module):
    """``{"contrastive_loss": L_CLIP, "count_loss": L_count}`` like open_clip's losses.

    ``scale_mode``: "model" uses the detached model logit scale as s, "one" uses s = 1.
    ``count_loss="none"`` (or all-zero weights) is the L_CLIP-only control; its ``count_loss``
    is still reported (without gradient) so control and CountCLIP runs log the same metric.
    """

    def __init__(
        self,
        count_loss: str = "count_plus",
        scale_mode: str = "model",
        rank: int = 0,
        world_size: int = 1,
        local_loss: bool = False,
        gather_with_grad: bool = False,
    ) -> None:
        super().__init__()
        if count_loss not in ("none", "count", "count_plus"):
            raise ValueError(f"count_loss must be none|count|count_plus, got {count_loss!r}")
        if scale_mode not in ("model", "one"):
            raise ValueError(f"scale_mode must be model|one, got {scale_mode!r}")
        self.count_loss = count_loss
        self.scale_mode = scale_mode
        self.clip_loss = ClipLoss(
            local_loss=local_loss,
            gather_with_grad=gather_with_grad,
            cache_labels=True,
            rank=rank,
            world_size=world_size,
        )

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        count_index: torch.Tensor,
        counterfactual_features: torch.Tensor,
        weights: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``image_features``/``text_features``: (B, D) for the whole local batch;
        ``count_index``: (N,) positions of the counting samples in it; counterfactuals (N, K, D);
        ``weights``: (N,) λ per counting sample."""
        contrastive = self.clip_loss(image_features, text_features, logit_scale)
        s = logit_scale.detach() if self.scale_mode == "model" else None
        count = counting_loss(
            image_features[count_index],
            text_features[count_index],
            counterfactual_features,
            weights,
            s,
        )
        if self.count_loss == "none":
            count = count.detach()
        return {"contrastive_loss": contrastive, "count_loss": count}

    @staticmethod
    def total(losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """The value to backpropagate: the sum of the parts that carry gradient."""
        return sum(v for v in losses.values() if v.requires_grad)  # type: ignore[return-value]
