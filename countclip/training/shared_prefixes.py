"""Text features of many captions, each shared opening encoded once.

open_clip's CLIP text tower is causal: a token's hidden states depend only on the tokens before
it. Captions that open alike therefore have the same hidden states until they part, and
CountBench's nine captions of an image part only at the number word (distinct images' captions
often share an opening too). :func:`encode_shared_prefixes` builds the token trie of the
captions and runs the tower over its nodes depth by depth, each node attending to the keys and
values kept for its ancestors: a language model's incremental decoding, over a tree. A caption
ends at its pooled (end-of-text) token, and in the last layer only those tokens need more than
their keys and values.

On the synthetic confirmatory CountBench (540 images, 4,860 captions; open_clip's tokenizer at
context 77) the trie has 18.4k nodes where the distinct captions have 38.8k tokens (57.0k for
all captions). The features equal
``model.encode_text``'s up to float summation order (tests/test_evaluate.py). A tower this
cannot read exactly (another block type, cross attention, no causal mask, another pooling) is
refused by :func:`can_share_prefixes`, and its caller encodes the usual way.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

KEPT_BYTES = 256 * 2**20
"""Keys and values kept at once, at most (captions are encoded in chunks of about this)."""


def _blocks(model: nn.Module) -> list[nn.Module]:
    return list(getattr(getattr(model, "transformer", None), "resblocks", []))


def can_share_prefixes(model: nn.Module) -> bool:
    """True for a text tower whose every block is open_clip's plain residual attention block
    (self-attention in :class:`torch.nn.MultiheadAttention` with one input projection) and
    that pools at the end-of-text token; the causal mask is the caller's check
    (:func:`countclip.training.encoders.can_trim`)."""
    if getattr(model, "text_pool_type", "argmax") not in ("argmax", "eos"):
        return False
    blocks = _blocks(model)
    return bool(blocks) and all(
        type(b) is ResidualAttentionBlock
        and not hasattr(b, "ln_1_kv")
        and isinstance(b.attn, nn.MultiheadAttention)
        and b.attn.in_proj_weight is not None
        for b in blocks
    )


def pooled_positions(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The position each caption's features are read at (open_clip's ``text_global_pool``)."""
    if getattr(model, "text_pool_type", "argmax") == "eos":
        return (tokens == model.text_eos_id).int().argmax(dim=-1)
    return tokens.argmax(dim=-1)


def _lexicographic(sequences: list[tuple[int, ...]]) -> list[int]:
    return sorted(range(len(sequences)), key=sequences.__getitem__)


class _Trie:
    """The token trie of some captions: a node per distinct prefix, numbered depth-major."""

    def __init__(self, sequences: list[tuple[int, ...]]) -> None:
        ids: dict[tuple[int, int], int] = {}
        token: list[int] = []
        parent: list[int] = []
        depth: list[int] = []
        self.end: list[int] = []  # the node each caption's pooled token is
        for seq in sequences:
            node = -1
            for position, tok in enumerate(seq):
                key = (node, tok)
                child = ids.get(key)
                if child is None:
                    child = ids[key] = len(token)
                    token.append(tok)
                    parent.append(node)
                    depth.append(position)
                node = child
            self.end.append(node)
        # renumbered depth-major: each depth is one slice of the node arrays
        depth_t = torch.tensor(depth, dtype=torch.long)
        order = torch.argsort(depth_t, stable=True)
        new_id = torch.empty_like(order)
        new_id[order] = torch.arange(len(order))
        parent_t = torch.tensor(parent, dtype=torch.long)[order]
        self.parent = torch.where(parent_t >= 0, new_id[parent_t.clamp(min=0)], parent_t)
        self.token = torch.tensor(token, dtype=torch.long)[order]
        self.end = new_id[torch.tensor(self.end, dtype=torch.long)].tolist()
        self.size = len(token)
        self.height = int(depth_t.max()) + 1
        bounds = torch.searchsorted(depth_t[order], torch.arange(self.height + 1)).tolist()
        self.levels = list(itertools.pairwise(bounds))
        self.is_end = torch.zeros(self.size, dtype=torch.bool)
        self.is_end[torch.tensor(self.end, dtype=torch.long)] = True
        # ancestors[n, :depth(n) + 1]: the path from the root to n (n last)
        self.ancestors = torch.zeros(self.size, self.height, dtype=torch.long)
        for d, (first, stop) in enumerate(self.levels):
            if d:
                self.ancestors[first:stop, :d] = self.ancestors[self.parent[first:stop], :d]
            self.ancestors[first:stop, d] = torch.arange(first, stop)


def _attend(block: ResidualAttentionBlock, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """One query per node against its path's keys and values (``kv``: keys, then values, on
    the last axis): ``block.attn``'s computation."""
    heads = block.attn.num_heads
    n, length, width = kv.shape[0], kv.shape[1], kv.shape[2] // 2
    q = q.view(n, 1, heads, width // heads).transpose(1, 2)
    k = kv[..., :width].view(n, length, heads, width // heads).transpose(1, 2)
    v = kv[..., width:].view(n, length, heads, width // heads).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, width)
    return block.attn.out_proj(out)


def _encode_trie(model: nn.Module, trie: _Trie, device: torch.device) -> torch.Tensor:
    """The last hidden state (before ``ln_final``) of every node that ends a caption, in node
    order."""
    blocks = _blocks(model)
    dtype = model.transformer.get_cast_dtype()
    width = model.token_embedding.embedding_dim
    kv = [torch.empty(trie.size, 2 * width, dtype=dtype, device=device) for _ in blocks]
    out = torch.empty(trie.size, width, dtype=dtype, device=device)
    token, is_end = trie.token.to(device), trie.is_end.to(device)
    for d, (first, stop) in enumerate(trie.levels):
        path = trie.ancestors[first:stop, : d + 1].to(device)
        x = model.token_embedding(token[first:stop]).to(dtype)
        x = x + model.positional_embedding[d].to(dtype)
        ends = is_end[first:stop]
        for i, block in enumerate(blocks):
            qkv = F.linear(block.ln_1(x), block.attn.in_proj_weight, block.attn.in_proj_bias)
            kv[i][first:stop] = qkv[:, width:]
            q = qkv[:, :width]
            if i == len(blocks) - 1:  # only the pooled tokens go on: the rest were keys
                x, q, path = x[ends], q[ends], path[ends]
                if not len(x):
                    break
            gathered = kv[i].index_select(0, path.flatten()).view(*path.shape, 2 * width)
            x = x + block.ls_1(_attend(block, q, gathered))
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        else:
            out[first:stop][ends] = x
    return out[is_end]


@torch.inference_mode()
def encode_shared_prefixes(
    model: nn.Module, tokens: torch.Tensor, device: torch.device, normalize: bool = True
) -> torch.Tensor:
    """``model.encode_text(tokens)`` (CPU, float32), each shared prefix encoded once; only
    for a model :func:`can_share_prefixes` (and causal)."""
    ends = pooled_positions(model, tokens).tolist()
    sequences = [tuple(row[: end + 1]) for row, end in zip(tokens.tolist(), ends, strict=True)]
    width = model.token_embedding.embedding_dim
    node_bytes = 2 * len(_blocks(model)) * width * torch.finfo(torch.float32).bits // 8
    per_chunk = max(1, KEPT_BYTES // node_bytes)  # nodes; a chunk has at most its tokens
    order = _lexicographic(sequences)  # neighbours share openings: chunks lose little
    parts: list[tuple[list[int], torch.Tensor]] = []
    start = 0
    while start < len(order):
        stop, budget = start, per_chunk
        while stop < len(order) and (stop == start or budget >= len(sequences[order[stop]])):
            budget -= len(sequences[order[stop]])
            stop += 1
        chunk = order[start:stop]
        trie = _Trie([sequences[j] for j in chunk])
        pooled = _encode_trie(model, trie, device)
        row_of = {node: r for r, node in enumerate(torch.nonzero(trie.is_end).flatten().tolist())}
        x = model.ln_final(pooled[[row_of[node] for node in trie.end]])
        if isinstance(model.text_projection, nn.Linear):
            x = model.text_projection(x)
        elif model.text_projection is not None:
            x = x @ model.text_projection
        parts.append((chunk, (F.normalize(x, dim=-1) if normalize else x).float().cpu()))
        start = stop
    out = torch.empty(len(sequences), parts[0][1].shape[1])
    for chunk, feats in parts:
        out[torch.tensor(chunk)] = feats
    return out
