"""Stage 2: which captions state a count of objects, and the counterfactual captions.

spaCy does the language work: its tokenizer (a blank English pipeline by default, so no model
download) splits "two-tone", "3-2", "o'clock" and "Ocean's" the way the rules need, token
attributes (``like_num``, ``is_title``, ``whitespace_``...) drive the rules, a ``PhraseMatcher``
finds famous titles and idioms, and, when a trained pipeline is configured, the dependency parse
confirms the number is a ``nummod`` of a noun.

The rules favour precision: a caption is accepted only if every number word two..ten in it
reads as a count of visible things and they all agree. Anything else is rejected with one
reason from :data:`REJECT_REASONS` (see :mod:`countclip.data.captions.words` for the word lists).

A plain ``re`` prefilter skips captions with no number word before spaCy sees them: on real
LAION metadata that is most captions, and it is what keeps the stage well above 100k
captions/s. The stage that runs the parser over a parquet is :mod:`countclip.stages.captions`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import islice

import spacy
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from countclip.config import CaptionConfig
from countclip.data.captions.rules import has_other_count, phrase_head, reject_reason
from countclip.data.captions.words import (
    DIGIT_COUNTS,
    NUMBER_WORDS,
    REJECT_REASONS,
    TITLES,
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
            reason = reject_reason(toks, low, i, counts)
            if reason is None and self.require_nummod and doc.has_annotation("DEP"):
                tok = toks[i]
                if tok.dep_ != "nummod" or tok.head.pos_ not in ("NOUN", "PROPN"):
                    reason = "not_nummod"
            if reason is not None:
                return None, reason
        values = {counts[low[i]] for i in hits}
        if len(values) > 1 or has_other_count(toks, low, hits):
            return None, "multiple_counts"
        # The same count twice is one count only when it counts the same things (LAION often
        # repeats a title in the description: "Three little kittens - three kittens mug"):
        # "two cats and two dogs" is four animals.
        heads = {phrase_head(toks, low, i) for i in hits}
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
