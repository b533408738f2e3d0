"""CountBench's scoring rule, apart from any model or data loading: each image against nine
captions (its own caption with the labelled number word swapped to two..ten), predicted count =
argmax similarity; accuracy, per-count accuracy, mean per-class recall and the confusion matrix.

Captions longer than the text context are cropped to whole words around the number
(:func:`countclip.training.tokens.crop_span`): the tokenizer's own truncation — or the
reproduction's character truncation — can cut the number off, leaving nine identical captions.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from countclip.counts import COUNTS


def metrics_from_similarities(
    similarities: Any, true_counts: Sequence[int] | torch.Tensor, counts: Iterable[int] = COUNTS
) -> dict:
    """Accuracy, per-count accuracy, mean per-class recall, confusion matrix and predictions
    from an ``(N, K)`` similarity matrix whose column ``j`` is the caption saying ``counts[j]``.

    Ties go to the first (smallest) count, as ``torch.argmax`` does. A count with no samples
    has accuracy ``None`` and is left out of the mean per-class recall.
    """
    counts = [int(c) for c in counts]
    sims = torch.as_tensor(similarities).detach().to("cpu", torch.float64)
    true = torch.as_tensor(true_counts).detach().to("cpu", torch.long).reshape(-1)
    if sims.ndim != 2 or sims.shape[1] != len(counts):
        raise ValueError(
            f"similarities must be (N, {len(counts)}) for counts {counts}, got {tuple(sims.shape)}"
        )
    if sims.shape[0] != true.shape[0]:
        raise ValueError(f"{sims.shape[0]} similarity rows but {true.shape[0]} true counts")
    position = {c: i for i, c in enumerate(counts)}
    unknown = sorted({int(t) for t in true.tolist()} - set(position))
    if unknown:
        raise ValueError(f"true counts {unknown} are not among the evaluated counts {counts}")
    k = len(counts)
    true_idx = torch.tensor([position[int(t)] for t in true.tolist()], dtype=torch.long)
    pred_idx = sims.argmax(dim=1) if len(true_idx) else torch.zeros(0, dtype=torch.long)
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((true_idx, pred_idx), torch.ones_like(true_idx), accumulate=True)
    support = confusion.sum(dim=1)
    correct = confusion.diagonal()
    per_count = {
        c: (correct[i].item() / support[i].item() if support[i] else None)
        for i, c in enumerate(counts)
    }
    present = [v for v in per_count.values() if v is not None]
    n = int(true_idx.numel())
    return {
        "n": n,
        "counts": counts,
        "accuracy": (correct.sum().item() / n) if n else None,
        "per_count_accuracy": per_count,
        "mean_per_class_recall": (sum(present) / len(present)) if present else None,
        "support": {c: int(support[i]) for i, c in enumerate(counts)},
        "confusion": confusion.tolist(),
        "predictions": [counts[i] for i in pred_idx.tolist()],
    }


def stored_span(row: Mapping[str, Any]) -> tuple[int, int] | None:
    """A CountBench row's stored number-word span (``number_start``/``number_end`` of
    ``rows.parquet``), or None where the CountBench stage could not locate it."""
    if row.get("number_start") is None or row.get("number_end") is None:
        return None
    return int(row["number_start"]), int(row["number_end"])


def count_captions(
    text: str,
    number: int,
    tokenizer: Any,
    counts: Iterable[int] = COUNTS,
    context_length: int | None = None,
    span: tuple[int, int] | None = None,
) -> list[str] | None:
    """The captions of one CountBench row: ``text`` with its labelled number word replaced by
    each of ``counts`` (case kept), each cropped around the number to fit the text context.

    The word is ``text[span[0]:span[1]]`` when given (the CountBench stage stored it in
    ``rows.parquet``), else located with :func:`countclip.data.captions.parser.find_number` for
    the given ``number``. Returns None if it cannot be found.
    """
    from countclip.data.captions.parser import CountCaption, find_number
    from countclip.training.tokens import crop_span

    if span is not None:
        found = CountCaption(text, int(number), int(span[0]), int(span[1]))
    else:
        found = find_number(text, number)
    if found is None:
        return None
    start, end = found.start, found.end
    suffix = text[end:]
    rewritten_all = [found.counterfactual(c) if c != number else text for c in counts]
    if _fits_for_every_count(text, start, end, rewritten_all, tokenizer, context_length):
        return rewritten_all
    out: list[str] = []
    for c, rewritten in zip(counts, rewritten_all, strict=True):
        new_end = len(rewritten) - len(suffix)
        if rewritten[:start] != text[:start] or not rewritten.endswith(suffix) or new_end <= start:
            raise ValueError(f"counterfactual({c}) changed more than the number span: {text!r}")
        out.append(crop_span(rewritten, start, new_end, tokenizer, context_length)[0])
    return out


def _fits_for_every_count(
    text: str,
    start: int,
    end: int,
    rewritten: Sequence[str],
    tokenizer: Any,
    context_length: int | None,
) -> bool:
    """Fast path: with open_clip's SimpleTokenizer (BPE never crosses a word or punctuation
    boundary) a caption's token count is its count without the number word plus the word's own
    tokens, so one tokenisation of the row tells whether all nine rewrites fit uncropped."""
    from countclip.training.tokens import token_count

    limit = context_length or getattr(tokenizer, "context_length", None)
    if not limit or not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "sot_token_id")):
        return False
    words = [r[start : len(r) - (len(text) - end)] for r in rewritten]
    if not all(w.isalnum() for w in words):
        return False
    cost = [_word_tokens(tokenizer, w) for w in words]
    base = token_count(text, tokenizer) - _word_tokens(tokenizer, text[start:end])
    return base + max(cost) <= int(limit)


def _word_tokens(tokenizer: Any, word: str) -> int:
    try:
        cache = _WORD_TOKENS.setdefault(tokenizer, {})
    except TypeError:  # not weak-referenceable: no cache
        return len(tokenizer.encode(word))
    if word not in cache:
        cache[word] = len(tokenizer.encode(word))
    return cache[word]


_WORD_TOKENS: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()
