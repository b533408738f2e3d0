"""Tokenisation that never cuts the number word off.

CLIP tokenizers truncate at the context length (77 for ViT-B-32, 16 for the tiny model), so a
long LAION caption whose number word sits late would lose exactly the token the counting loss is
about, and its counterfactuals would become identical to the caption. Instead, a caption that does
not fit is cropped to a window of whole words around the number span, grown word by word (right
first, then left, alternating: the counted noun usually follows the number) while the window's
tokenisation still fits.
"""

from __future__ import annotations

import re
from typing import Any

_WORD = re.compile(r"\S+")


def token_count(text: str, tokenizer: Any) -> int:
    """Tokens ``tokenizer`` produces for ``text``, start/end tokens included, before truncation."""
    if hasattr(tokenizer, "encode") and hasattr(tokenizer, "sot_token_id"):  # open_clip Simple
        return len(tokenizer.encode(text)) + 2
    inner = getattr(tokenizer, "tokenizer", None)  # open_clip HFTokenizer wraps a HF tokenizer
    if inner is not None and callable(inner):
        return len(inner(text)["input_ids"])
    ids = tokenizer([text], context_length=4096)  # generic fallback: non-padding positions
    return int((ids != 0).sum())


def _context_length(tokenizer: Any, context_length: int | None) -> int:
    length = context_length or getattr(tokenizer, "context_length", None)
    if not length:
        raise ValueError("crop_to_context: tokenizer has no context_length; pass one")
    return int(length)


def crop_span(
    text: str, start: int, end: int, tokenizer: Any, context_length: int | None = None
) -> tuple[str, int, int]:
    """Like :func:`crop_to_context`, also returning the number span's offsets in the result."""
    if not 0 <= start < end <= len(text):
        raise ValueError(f"crop_to_context: span [{start}, {end}) outside a {len(text)}-char text")
    limit = _context_length(tokenizer, context_length)
    if token_count(text, tokenizer) <= limit:
        return text, start, end
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    # Words that overlap the number span form the core that must survive.
    core = [i for i, (ws, we) in enumerate(words) if ws < end and we > start]
    lo, hi = core[0], core[-1]
    # Per-word counts are exact for open_clip's SimpleTokenizer (its BPE never crosses
    # whitespace) and a close estimate elsewhere; the final check below makes it exact.
    cost = [token_count(text[ws:we], tokenizer) - 2 for ws, we in words]
    used = 2 + sum(cost[lo : hi + 1])
    take_right = True
    while True:
        grew = False
        for side in (1, 0) if take_right else (0, 1):
            if side == 1 and hi + 1 < len(words) and used + cost[hi + 1] <= limit:
                hi += 1
                used += cost[hi]
                grew = True
                break
            if side == 0 and lo > 0 and used + cost[lo - 1] <= limit:
                lo -= 1
                used += cost[lo]
                grew = True
                break
        if not grew:
            break
        take_right = not take_right
    while True:
        left, right = words[lo][0], words[hi][1]
        left, right = min(left, start), max(right, end)
        cropped = text[left:right]
        if token_count(cropped, tokenizer) <= limit or (lo >= core[0] and hi <= core[-1]):
            return cropped, start - left, end - left
        # Estimate was optimistic (non-SimpleTokenizer): drop the outer word farther away.
        if hi > core[-1] and (hi - core[-1] >= core[0] - lo):
            hi -= 1
        else:
            lo += 1


def crop_to_context(
    text: str, start: int, end: int, tokenizer: Any, context_length: int | None = None
) -> str:
    """A window of whole words of ``text`` around the number span ``[start, end)`` whose
    tokenisation fits ``context_length`` (default: the tokenizer's). ``text`` is returned
    unchanged when it already fits. The number word is always kept whole, even if (absurdly)
    it alone did not fit."""
    return crop_span(text, start, end, tokenizer, context_length)[0]
