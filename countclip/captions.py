"""Stage 2: which captions state a count of objects, and the counterfactual captions.

spaCy does the language work: its tokenizer (a blank English pipeline by default, so no model
download) splits "two-tone", "3-2", "o'clock" and "Ocean's" the way the rules need, token
attributes (``like_num``, ``is_title``, ``whitespace_``...) drive the rules, a ``PhraseMatcher``
finds famous titles and idioms, and, when a trained pipeline is configured, the dependency parse
confirms the number is a ``nummod`` of a noun.

The rules favour precision: a caption is accepted only if every number word two..ten in it
reads as a count of visible things and they all agree. Anything else is rejected with one
reason from :data:`REJECT_REASONS` (see :mod:`countclip.numbers` for the word lists).

A plain ``re`` prefilter skips captions with no number word before spaCy sees them: on real
LAION metadata that is most captions, and it is what keeps the stage well above 100k
captions/s. The stage that runs the parser over a parquet is :mod:`countclip.caption_stage`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import islice

import spacy
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Token

from countclip.config import CaptionConfig
from countclip.numbers import (
    AGE_NEXT,
    AGE_PREV,
    AGE_UNITS,
    APPROX_NEXT,
    APPROX_PREV,
    BIG_NAMES,
    CLOCK_MINUTES,
    CLOCK_NEXT,
    COMPOUND_HEADS,
    COORDINATORS,
    CURRENCY_PREV,
    DIGIT_COUNTS,
    DIGIT_OK_PREV,
    DURATION_MODIFIERS,
    HYPHENS,
    IRREGULAR_PLURALS,
    LABEL_PREV,
    LARGER_NEXT,
    LARGER_PREV,
    LISTICLE_NOUNS,
    LISTICLE_PREV,
    MEASURE_UNITS,
    MODEL_PREV,
    MONTHS,
    MULTIPLIER_NEXT,
    MULTIPLIER_PREV,
    NUMBER_WORDS,
    ORDINALS,
    OTHER_NUMBER_WORDS,
    PORTION_UNITS,
    RANGE_LINKS,
    RATING_CONTEXT,
    REJECT_REASONS,
    SCORE_WORDS,
    TIME_UNITS,
    TITLES,
    VERSUS,
    WEEKDAYS,
    WORD_COUNTS,
)

__all__ = [
    "NUMBER_WORDS",
    "REJECT_REASONS",
    "CaptionError",
    "CaptionParser",
    "CountCaption",
    "find_number",
    "parse_caption",
    "parse_captions",
]

Parsed = tuple["CountCaption | None", "str | None"]

_SET_PREV = frozenset(
    [
        "set",
        "pack",
        "lot",
        "box",
        "bundle",
        "case",
        "group",
        "collection",
        "kit",
        "pk",
        "pcs",
        "pair",
    ]
)
_BEFORE_NOUN_END = frozenset({"for", "of"})


class CaptionError(ValueError):
    """Bad stage-2 input (missing column, no counting caption); the message names the file."""


@dataclass(frozen=True)
class CountCaption:
    """A caption that states a count: ``text[start:end]`` is the number word (or digit)."""

    text: str
    count: int
    start: int
    end: int

    @property
    def word(self) -> str:
        return self.text[self.start : self.end]

    def counterfactual(self, n: int) -> str:
        """The caption with only the number's span replaced by ``n``, keeping its casing
        ("Three" -> "Seven", "THREE" -> "SEVEN"); a digit stays a digit."""
        if n not in NUMBER_WORDS:
            raise ValueError(f"counterfactual count must be in 2..10, got {n}")
        return self.text[: self.start] + _cased(self.word, n) + self.text[self.end :]


def _cased(original: str, n: int) -> str:
    if original.isdigit():
        return str(n)
    word = NUMBER_WORDS[n]
    if original.isupper():
        return word.upper()
    if original[:1].isupper():
        return word.capitalize()
    return word


def _prefilter(include_digits: bool) -> re.Pattern[str]:
    words = "|".join(NUMBER_WORDS.values())
    if include_digits:
        return re.compile(rf"\b(?:{words})\b|(?<![\d.,])(?:10|[2-9])(?!\d)", re.IGNORECASE)
    return re.compile(rf"\b(?:{words})\b", re.IGNORECASE)


class CaptionParser:
    """The rules, bound to one spaCy pipeline. Build once, reuse (spaCy load is not free)."""

    def __init__(
        self,
        spacy_model: str | None = None,
        *,
        include_digits: bool = False,
        require_nummod: bool = True,
    ) -> None:
        if spacy_model:
            self.nlp = spacy.load(spacy_model, exclude=["ner", "lemmatizer", "textcat"])
        else:
            self.nlp = spacy.blank("en")
        self.include_digits = include_digits
        self.require_nummod = require_nummod and bool(spacy_model)
        self.counts = dict(WORD_COUNTS)
        if include_digits:
            self.counts.update(DIGIT_COUNTS)
        self.prefilter = _prefilter(include_digits)
        self.titles = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        tokenizer = self.nlp.tokenizer
        patterns = [tokenizer(t) for t in TITLES]
        self.titles.add("TITLE", patterns)
        self.title_words = frozenset(
            t.lower_ for doc in patterns for t in doc if t.lower_ not in self.counts
        )

    @classmethod
    def from_config(cls, cfg: CaptionConfig) -> CaptionParser:
        return _parser(cfg.spacy_model, cfg.include_digits, cfg.require_nummod)

    # -- public ------------------------------------------------------------------------------
    def parse(self, text: str) -> Parsed:
        """``(CountCaption, None)`` or ``(None, reason)``."""
        if not text or not self.prefilter.search(text):
            return None, "no_number"
        return self.parse_doc(self.nlp(text), text)

    def pipe(
        self, texts: Iterable[str | None], *, batch_size: int = 2000, n_process: int = 1
    ) -> Iterator[Parsed]:
        """Parse many captions with ``nlp.pipe``; order is kept. Memory is bounded by
        ``batch_size`` captions whatever the iterable's length."""
        it = iter(texts)
        search = self.prefilter.search
        while chunk := list(islice(it, batch_size)):
            todo = [i for i, t in enumerate(chunk) if t and search(t)]
            results: list[Parsed] = [(None, "no_number")] * len(chunk)
            if todo:
                docs = self.nlp.pipe(
                    (chunk[i] for i in todo), batch_size=batch_size, n_process=n_process
                )
                for i, doc in zip(todo, docs, strict=True):
                    results[i] = self.parse_doc(doc, chunk[i])
            yield from results

    # -- rules -------------------------------------------------------------------------------
    def parse_doc(self, doc: Doc, text: str | None = None) -> Parsed:
        """Apply the rules to a parsed caption (``text`` is ``doc.text``, if at hand)."""
        counts = self.counts
        toks = list(doc)
        low = [t.lower_ for t in toks]
        hits = [i for i, w in enumerate(low) if w in counts]
        hits = [i for i in hits if toks[i].like_num]  # like_num alone also takes "one", "1st"
        if not hits:
            return None, "no_number"
        for i, w in enumerate(low[:-1]):
            if w == "one" and low[i + 1] == "of":
                return None, "one_of"
        # the PhraseMatcher only runs when a word of some title is present (cheap set test)
        titled = [] if self.title_words.isdisjoint(low) else self._title_spans(doc)
        for i in hits:
            if any(s <= i < e for s, e in titled):
                return None, "title"
            reason = self._reason(toks, low, i)
            if reason is None and self.require_nummod and doc.has_annotation("DEP"):
                tok = toks[i]
                if tok.dep_ != "nummod" or tok.head.pos_ not in ("NOUN", "PROPN"):
                    reason = "not_nummod"
            if reason is not None:
                return None, reason
        values = {counts[low[i]] for i in hits}
        if len(values) > 1 or self._other_count(toks, low, hits):
            return None, "multiple_counts"
        # The same count twice is one count only when it repeats the same phrase (LAION often
        # repeats a title in the description): "two cats and two dogs" is four animals.
        heads = {low[i + 1] if i + 1 < len(low) else "" for i in hits}
        if len(heads) > 1:
            return None, "multiple_counts"
        first = toks[hits[0]]
        return CountCaption(
            doc.text if text is None else text,
            counts[low[hits[0]]],
            first.idx,
            first.idx + len(first),
        ), None

    def _title_spans(self, doc: Doc) -> list[tuple[int, int]]:
        return [(s, e) for _id, s, e in self.titles(doc)]

    def _reason(self, toks: list[Token], low: list[str], i: int) -> str | None:
        """Why the number at token ``i`` is not a count of objects, or None."""
        n = len(low)
        tok = toks[i]
        # Neighbours; a hyphen glued on both sides ("two-tone") joins a compound.
        glued_after = (
            i + 2 < n
            and low[i + 1] in HYPHENS
            and not tok.whitespace_
            and not toks[i + 1].whitespace_
        )
        glued_before = (
            i >= 2
            and low[i - 1] in HYPHENS
            and not toks[i - 2].whitespace_
            and not toks[i - 1].whitespace_
        )
        nxt = low[i + 2] if glued_after else (low[i + 1] if i + 1 < n else "")
        j = i + 2 if glued_after else i + 1  # index of nxt
        after = low[j + 1] if j + 1 < n else ""
        after2 = low[j + 2] if j + 2 < n else ""
        prev = low[i - 2] if glued_before else (low[i - 1] if i >= 1 else "")
        k = i - 2 if glued_before else i - 1  # index of prev
        before = low[k - 1] if k >= 1 else ""
        count = self.counts[low[i]]

        # part of a larger number: "twenty-two", "two hundred", "three dozen", "two point five"
        if nxt in LARGER_NEXT or prev in LARGER_PREV or (prev == "and" and before == "hundred"):
            return "larger_number"
        # multipliers and fractions: "two times", "three-quarters", "two and a half", "2 in 1"
        if (
            nxt in MULTIPLIER_NEXT
            or prev in MULTIPLIER_PREV
            or (nxt == "and" and after == "a" and after2 in ("half", "quarter"))
            or (nxt in ("in", "out") and (after in self.counts or after in ("one", "1", "of")))
        ):
            return "multiplier"
        # ages: "ten years old", "a two-year-old", "aged five", "turns three"
        if prev in AGE_PREV or nxt in AGE_NEXT:
            return "age"
        if nxt in AGE_UNITS:
            rest = [w for w in low[j + 1 : j + 4] if w not in HYPHENS]
            if rest[:1] == ["old"] or rest[:2] == ["of", "age"]:
                return "age"
        # times and durations: "two hours", "three full days", "at seven pm", "half past two"
        if nxt in TIME_UNITS or nxt in CLOCK_NEXT:
            return "time"
        m = j
        while m < n and m < j + 2 and low[m] in DURATION_MODIFIERS:
            m += 1
        if m < n and m != j and low[m] in TIME_UNITS:
            return "time"
        if prev == "past" or (prev == "to" and before in ("quarter", "half", "twenty")):
            return "time"
        if nxt in CLOCK_MINUTES and toks[j].like_num and not glued_after:
            return "time"
        if prev in ("at", "by", "until", "till", "from") and (
            j >= n or toks[j].is_punct or nxt in CLOCK_NEXT or nxt in ("tonight", "today")
        ):
            return "time"
        # dates and ordinals next to the number
        for w, idx in ((nxt, j), (prev, k)):
            if w in MONTHS or w in WEEKDAYS or w in ORDINALS:
                return "date"
            if w == "may" and 0 <= idx < n and toks[idx].text == "May":
                return "date"
        if nxt == "of" and (after in MONTHS or (j + 1 < n and toks[j + 1].text == "May")):
            return "date"
        # scores and ranges: "three to one", "3-2", "two nil", "two or three", "2-4"
        if nxt in VERSUS or prev in VERSUS or nxt in SCORE_WORDS:
            return "score"
        if (
            i + 2 < n
            and low[i + 1] in RANGE_LINKS
            and (low[i + 2] in self.counts or low[i + 2] in WORD_COUNTS or toks[i + 2].like_num)
        ):
            other = _value(low[i + 2])
            if low[i + 1] == "or" or other is None or other > count:
                return "ambiguous"
            return "score"
        if i >= 2 and low[i - 1] in RANGE_LINKS and (toks[i - 2].like_num):
            other = _value(low[i - 2])
            if low[i - 1] in ("or", "/") or other is None or other < count:
                return "ambiguous"
            return "score"
        # approximate: "about ten", "over two", "at least three", "two or more", "two+"
        if prev in APPROX_PREV or nxt in APPROX_NEXT or (prev == "to" and before == "up"):
            return "ambiguous"
        if nxt == "or" and after in ("more", "so", "less", "fewer"):
            return "ambiguous"
        # measures, prices, ratings: "two inches", "$5", "two cups of flour", "five stars rating"
        if nxt in MEASURE_UNITS or prev in CURRENCY_PREV:
            return "measure"
        if nxt in PORTION_UNITS and after == "of":
            return "measure"
        if nxt in ("by", "x") and j + 1 < n and toks[j + 1].like_num:
            return "measure"
        if nxt == "stars" and (after in RATING_CONTEXT or prev in ("rated", "rating")):
            return "measure"
        # identifiers and product names: "Season Two", "No. 5", "Windows Ten", "iPhone 7"
        if prev in LABEL_PREV:
            return "label"
        if prev in MODEL_PREV:
            return "model_number"
        if glued_before:  # "Catch-22", "T-two", "X-5"
            return "model_number"
        if low[i].isdigit() and k >= 0:
            ptok = toks[k]
            if ptok.is_alpha and not ptok.is_lower and prev not in DIGIT_OK_PREV:
                return "model_number"
        # lists and headlines: "Top Ten", "Five Ways To ...", "Big Three"
        if prev in LISTICLE_PREV or (prev in BIG_NAMES and not tok.is_lower):
            return "title"
        for m in range(j, min(n, j + 3)):
            if low[m] in LISTICLE_NOUNS:
                return "listicle"
            if toks[m].is_punct:
                break
        # titles: a capitalised number inside a capitalised name in an otherwise lower-case
        # caption ("the Seven Seas", "Ocean's Eight", "a Three Rivers fan")
        if prev == "'s" and (tok.is_title or tok.is_upper) and k >= 1 and not toks[k - 1].is_lower:
            return "title"
        if tok.is_title and k >= 0 and not toks[k].is_punct and not _title_case(toks):
            nxt_tok = toks[j] if j < n else None
            if (nxt_tok is not None and nxt_tok.is_title) or prev == "the" or toks[k].is_title:
                return "title"
        # compound modifiers: "two-tone", "three-piece suit", "five star hotel"
        if glued_after and not _plural(nxt):
            return "compound"
        if nxt in COMPOUND_HEADS:
            return "compound"
        # a number with no noun: "dinner for two", "mother of three" (but "set of two" counts)
        if prev in _BEFORE_NOUN_END and before not in _SET_PREV and (j >= n or toks[j].is_punct):
            return "ambiguous"
        return None

    def _other_count(self, toks: list[Token], low: list[str], hits: list[int]) -> bool:
        """Another number in the caption that counts something else: "two cats and one dog",
        "three chairs, twelve plates", "two cats 3 dogs"."""
        hitset = set(hits)
        n = len(low)
        for m, w in enumerate(low):
            if m in hitset:
                continue
            if w in OTHER_NUMBER_WORDS:
                return True
            if w in WORD_COUNTS or (w.isdigit() and 0 < len(w) <= 2 and w != "0"):
                # a digit is another count only before a word ("3 dogs"), not a size or label
                nxt = low[m + 1] if m + 1 < n else ""
                prev = low[m - 1] if m else ""
                if w in WORD_COUNTS or (
                    nxt.isalpha()
                    and nxt not in MEASURE_UNITS
                    and nxt not in TIME_UNITS
                    and prev not in LABEL_PREV
                    and prev not in CURRENCY_PREV
                    and not (m and toks[m - 1].is_alpha and not toks[m - 1].is_lower)
                ):
                    return True
            if w == "one" and m + 1 < n and low[m + 1] not in ("of", "another"):
                # "one" is a count when coordinated with ours: "two dogs and one cat"
                for h in hits:
                    lo, hi = sorted((h, m))
                    if hi - lo <= 6 and any(low[x] in COORDINATORS for x in range(lo + 1, hi)):
                        return True
        return False


def _value(word: str) -> int | None:
    if word in WORD_COUNTS:
        return WORD_COUNTS[word]
    if word == "one":
        return 1
    if word.isdigit():
        return int(word)
    return None


def _plural(word: str) -> bool:
    return (word.endswith("s") and not word.endswith("ss")) or word in IRREGULAR_PLURALS


def _title_case(toks: list[Token]) -> bool:
    """Most longer words capitalised ("Set Of Three Red Stars Vector Icon") or all caps: then
    capitals say nothing about names, and only the curated title list applies."""
    words = [t for t in toks if t.is_alpha and len(t) > 3]
    if len(words) < 2:
        return True
    caps = sum(1 for t in words if not t.is_lower)
    return caps >= 0.6 * len(words)


@cache
def _parser(spacy_model: str | None, include_digits: bool, require_nummod: bool) -> CaptionParser:
    return CaptionParser(spacy_model, include_digits=include_digits, require_nummod=require_nummod)


def parse_caption(text: str, *, include_digits: bool = False) -> CountCaption | None:
    """The count stated by ``text`` (2..10) and where it is, or None (see REJECT_REASONS)."""
    return _parser(None, include_digits, True).parse(text)[0]


def parse_captions(
    texts: Iterable[str | None],
    *,
    batch_size: int = 2000,
    n_process: int = 1,
    with_reasons: bool = False,
    include_digits: bool = False,
    parser: CaptionParser | None = None,
) -> Iterator[CountCaption | None] | Iterator[Parsed]:
    """Batched :func:`parse_caption` on ``nlp.pipe``; yields one result per text, in order
    (``(CountCaption | None, reason | None)`` pairs with ``with_reasons=True``)."""
    parser = parser or _parser(None, include_digits, True)
    results = parser.pipe(texts, batch_size=batch_size, n_process=n_process)
    if with_reasons:
        return results
    return (cc for cc, _reason in results)


def find_number(text: str, count: int) -> CountCaption | None:
    """Locate the number for a *given* count (CountBench labels are given): the first
    standalone occurrence of its word or digit, case-insensitive; other numbers may remain.
    Prefers an occurrence not glued to a hyphen ("three" over "three-year-old")."""
    if count not in NUMBER_WORDS:
        raise ValueError(f"count must be in 2..10, got {count}")
    alt = rf"(?:{NUMBER_WORDS[count]}|{count})"
    strict = re.compile(rf"(?<![\w.,\-‐–]){alt}(?![\w\-‐–]|[.,]\d)", re.IGNORECASE)
    loose = re.compile(rf"(?<![\w.,]){alt}(?!\w|[.,]\d)", re.IGNORECASE)
    for pattern in (strict, loose):
        m = pattern.search(text)
        if m:
            return CountCaption(text, count, m.start(), m.end())
    return None
