"""The one text encoder (open_clip's, with trailing padding cut off where that is exact) and
batched, L2-normalised embeddings for evaluation.

open_clip's ``CLIP`` text tower is causal and pools at the end-of-text token, so the padding
columns after a batch's longest caption never influence its features: dropping them gives the
same embedding (up to float summation order) for a fraction of the cost. Captions are much
shorter than the context (LAION: ~15-20 tokens of 77), a CountCLIP step encodes up to nine
texts per counting sample, and CountBench scores nine captions per image, so this is where the
text cost of both training and evaluation goes. open_clip has no public call that encodes a
shorter token tensor (``encode_text`` adds the full positional embedding), so the trimmed path
repeats ``CLIP.encode_text`` on a slice of it; any other text tower (Hugging Face, non-causal,
another pooling, a subclass that overrides ``encode_text``) takes open_clip's public
``encode_text`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
from torch import nn

from countclip.training.shared_prefixes import can_share_prefixes, encode_shared_prefixes

PAD_ID = 0
"""open_clip's tokenizers pad with 0 after the end-of-text token."""


def can_trim(model: nn.Module) -> bool:
    """True if cutting the tokens to the longest caption gives ``model.encode_text``'s answer:
    open_clip's own ``CLIP.encode_text``, a causal attention mask, EOT/argmax/first pooling."""
    mask = getattr(model, "attn_mask", None)
    if type(model).encode_text is not open_clip.CLIP.encode_text or mask is None:
        return False
    if getattr(model, "text_pool_type", "argmax") not in ("argmax", "eos", "first"):
        return False
    causal = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.equal(torch.isinf(mask), causal))


def used_length(tokens: torch.Tensor) -> int:
    """Columns up to the last non-padding token of any row (at least 1)."""
    used = (tokens != PAD_ID).int()
    positions = torch.arange(1, tokens.shape[1] + 1, device=tokens.device)
    return max(int((used * positions).amax()), 1)


def encode_text(model: nn.Module, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """``model.encode_text(tokens)``, on the used columns only when :func:`can_trim`."""
    if not can_trim(model):
        return model.encode_text(tokens, normalize=normalize)
    length = used_length(tokens)
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    eos_id = getattr(model, "text_eos_id", None)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=eos_id)
    if model.text_projection is not None:
        if isinstance(model.text_projection, nn.Linear):
            x = model.text_projection(x)
        else:
            x = x @ model.text_projection
    return F.normalize(x, dim=-1) if normalize else x


@torch.inference_mode()
def encode_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int,
    device: torch.device,
    *,
    trim: bool = True,
    share_prefixes: bool = True,
) -> torch.Tensor:
    """L2-normalised text embeddings (float32, CPU) of ``texts``, in order.

    With ``share_prefixes`` (and a tower that allows it), each token prefix that several texts
    share is encoded once (:mod:`countclip.training.shared_prefixes`). Otherwise, with ``trim``,
    texts are batched in order of token length so each batch is cut to its own longest caption
    (:func:`encode_text`); ``trim=False`` pads every caption to the full context (the naive
    baseline ``benchmarks/bench_eval.py`` measures against).
    """
    if not texts:
        return torch.zeros(0, 0)
    tokens = tokenizer(list(texts))
    if trim and share_prefixes and can_trim(model) and can_share_prefixes(model):
        return encode_shared_prefixes(model, tokens, device)
    if not trim:
        chunks = [
            model.encode_text(tokens[i : i + batch_size].to(device), normalize=True).float().cpu()
            for i in range(0, len(texts), batch_size)
        ]
        return torch.cat(chunks)
    order = torch.argsort((tokens != PAD_ID).sum(dim=1), stable=True)
    chunks = [
        encode_text(model, tokens[order[i : i + batch_size]].to(device)).float().cpu()
        for i in range(0, len(texts), batch_size)
    ]
    out = torch.empty(len(texts), chunks[0].shape[1])
    out[order] = torch.cat(chunks)
    return out


@torch.inference_mode()
def encode_images(model: Any, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """L2-normalised image embeddings (float32, CPU)."""
    return model.encode_image(images.to(device), normalize=True).float().cpu()
