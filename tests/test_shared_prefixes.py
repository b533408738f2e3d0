"""Encoding each shared token prefix once gives open_clip's own text features, for every caption,
in every chunking, and encodes fewer tokens than the captions hold."""

from __future__ import annotations

import copy

import pytest
import torch

from countclip.counts import NUMBER_WORDS
from countclip.training import shared_prefixes
from countclip.training.encoders import encode_texts
from countclip.training.model import load_model
from countclip.training.shared_prefixes import _Trie, can_share_prefixes, encode_shared_prefixes

CPU = torch.device("cpu")
OPENINGS = ("A picture showing", "There are", "We counted", "")
CAPTIONS = [
    f"{opening} {word} red hexagons on the table.".strip()
    for opening in OPENINGS
    for word in NUMBER_WORDS.values()
] + [
    "x",
    "There are",  # a prefix of other captions, ended by its own end-of-text token
    "A picture showing nine red hexagons on the table.",  # a duplicate
    "In this wonderfully detailed illustration drawn by a talented artist for a children's "
    "picture book we can clearly see seven purple hexagons",  # cut at the context
]


@pytest.fixture(scope="module", params=["countclip-tiny", "countclip-small"])
def model(request):
    torch.manual_seed(0)
    return load_model(request.param, None, "cpu")


def test_the_features_are_open_clips(model) -> None:
    clip, _, tokenizer = model
    tokens = tokenizer(CAPTIONS)
    with torch.inference_mode():
        expected = clip.eval().encode_text(tokens, normalize=True)
    assert can_share_prefixes(clip)
    got = encode_shared_prefixes(clip, tokens, CPU)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(encode_texts(clip, tokenizer, CAPTIONS, 7, CPU), expected,
                               atol=1e-5, rtol=1e-5)  # fmt: skip


def test_chunks_of_any_size_give_the_same_features(model, monkeypatch) -> None:
    clip, _, tokenizer = model
    tokens = tokenizer(CAPTIONS)
    whole = encode_shared_prefixes(clip, tokens, CPU)
    width, blocks = clip.token_embedding.embedding_dim, len(clip.transformer.resblocks)
    monkeypatch.setattr(shared_prefixes, "KEPT_BYTES", 10 * 2 * blocks * width * 4)  # 10 nodes
    torch.testing.assert_close(encode_shared_prefixes(clip, tokens, CPU), whole,
                               atol=1e-6, rtol=1e-6)  # fmt: skip


def test_the_trie_encodes_each_shared_prefix_once(model) -> None:
    _, _, tokenizer = model
    tokens = tokenizer([f"We counted {word} red hexagons." for word in NUMBER_WORDS.values()])
    ends = tokens.argmax(dim=-1).tolist()
    sequences = [tuple(row[: end + 1]) for row, end in zip(tokens.tolist(), ends, strict=True)]
    trie = _Trie(sequences)
    opening, length = 3, len(sequences[0])  # start-of-text, "we", "counted"; then they part
    assert all(len(s) == length for s in sequences)
    assert trie.size == opening + 9 * (length - opening) < 9 * length
    assert trie.is_end.sum() == 9 and len(set(trie.end)) == 9


def test_a_tower_it_cannot_read_exactly_is_refused(model) -> None:
    clip = copy.deepcopy(model[0])
    clip.text_pool_type = "first"
    assert not can_share_prefixes(clip)
    clip = copy.deepcopy(model[0])
    clip.transformer.resblocks[0].ln_1_kv = torch.nn.LayerNorm(4)  # a cross-attention block
    assert not can_share_prefixes(clip)
