"""Batched, L2-normalised CLIP embeddings for evaluation, with trailing text padding cut off
where that is exact (open_clip's causal text tower pooled at EOT): CountBench captions are ~10-25
tokens in a 77-token context, and text encoding dominates evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def _trimmable(model: Any) -> bool:
    """True if ``model`` is open_clip's ``CLIP`` with a causal text mask and an EOT/first pool:
    then trailing padding cannot influence the pooled feature, and cutting the token tensor to
    the batch's longest caption gives the same embedding for less work."""
    import open_clip

    mask = getattr(model, "attn_mask", None)
    if type(model).encode_text is not open_clip.model.CLIP.encode_text or mask is None:
        return False
    if getattr(model, "text_pool_type", "argmax") not in ("argmax", "eos", "first"):
        return False
    causal = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.equal(torch.isinf(mask), causal))


def _encode_text_trimmed(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip ``CLIP.encode_text`` on ``tokens[:, :L]``, L = the longest caption in the batch
    (padding id 0 after the EOT token)."""
    from open_clip.transformer import text_global_pool

    used = (tokens != 0).int()
    length = int((used * torch.arange(1, tokens.shape[1] + 1, device=tokens.device)).amax())
    tokens = tokens[:, : max(length, 1)]
    seq = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:seq].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:seq, :seq])
    x = model.ln_final(x)
    x = text_global_pool(
        x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None)
    )
    if model.text_projection is not None:
        if isinstance(model.text_projection, torch.nn.Linear):
            x = model.text_projection(x)
        else:
            x = x @ model.text_projection
    return torch.nn.functional.normalize(x, dim=-1)


@torch.inference_mode()
def encode_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int,
    device: torch.device,
    *,
    trim: bool = True,
) -> torch.Tensor:
    """L2-normalised text embeddings (float32, CPU) of ``texts``, in order.

    With ``trim`` (and a model where it is exact, see :func:`_trimmable`) texts are batched in
    order of token length and each batch is cut to its longest caption: CountBench captions
    are ~10-25 tokens, padded to a 77-token context for ViT-B-32.
    """
    if not texts:
        return torch.zeros(0, 0)
    tokens = tokenizer(list(texts))
    if trim and _trimmable(model):
        lengths = (tokens != 0).sum(dim=1)
        order = torch.argsort(lengths, stable=True)
        chunks = []
        for i in range(0, len(texts), batch_size):
            idx = order[i : i + batch_size]
            chunks.append(_encode_text_trimmed(model, tokens[idx].to(device)).float().cpu())
        out = torch.empty(len(texts), chunks[0].shape[1])
        out[order] = torch.cat(chunks)
        return out
    chunks = [
        model.encode_text(tokens[i : i + batch_size].to(device), normalize=True).float().cpu()
        for i in range(0, len(texts), batch_size)
    ]
    return torch.cat(chunks)


@torch.inference_mode()
def encode_images(model: Any, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    return model.encode_image(images.to(device), normalize=True).float().cpu()
