"""Stage 2: which captions state a count of objects, and the counterfactual captions.

spaCy does the language work: its tokenizer (a blank English pipeline by default, so no model
download) splits "two-tone", "3-2", "o'clock" and "Ocean's" the way the features need, token
attributes (``like_num``, ``is_title``, ``whitespace_``...) feed the rules and the classifier, a
``PhraseMatcher`` finds famous titles and idioms, and, when a trained pipeline is configured, the
dependency parse confirms the number is a ``nummod`` of a noun.

Every number word two..ten of a caption is an *occurrence*. The rules of
:mod:`~countclip.data.captions.rules` name what they see around it; those that are certainly
right (:data:`~countclip.data.captions.classifier.VETOES`: "two hours", "aged five", "$5"...)
rule it out. Each remaining occurrence is scored by the linear model of
:mod:`~countclip.data.captions.classifier`, trained on real LAION captions labelled by hand; the
best-scoring one is the count when its probability reaches the configured operating point
(``captions.count_threshold``), and its character span is what the counterfactuals replace.
Anything else is rejected with one reason from :data:`REJECT_REASONS`.

``CaptionParser(method="rules")`` keeps the previous hand-written rule set (every number must
pass every rule and all must agree), for comparison in ``benchmarks/bench_captions.py``.

A plain ``re`` prefilter skips captions with no number word before spaCy sees them: on real
LAION metadata that is most captions, and it is what keeps the stage well above 100k
captions/s. The stage that runs the parser over a parquet is :mod:`countclip.stages.captions`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cache
from itertools import islice
from typing import Literal

import spacy
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Token
from spacy.util import compile_prefix_regex, compile_suffix_regex

from countclip.config import CaptionConfig
from countclip.data.captions.classifier import (
    VETOES,
    CountClassifier,
    Occurrence,
    caption_features,
    load_classifier,
    occurrence_features,
)
from countclip.data.captions.rules import (
    has_other_count,
    phrase_head,
    reject_reason,
    title_case,
)
from countclip.data.captions.spans import CountCaption, find_number
from countclip.data.captions.words import (
    DIGIT_COUNTS,
    NUMBER_WORDS,
    OTHER_NUMBER_WORDS,
    PICTURED_TITLES,
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
Method = Literal["classifier", "rules"]
#: The operating point of :class:`CaptionConfig` (``count_threshold``), used when none is given.
DEFAULT_THRESHOLD: float = CaptionConfig.model_fields["count_threshold"].default
#: HTML entities LAION alt-texts keep escaped ("&quot;three caballeras&quot;"): split off a word.
_ENTITY = r"&(?:quot|amp|apos|#39|#34|lt|gt);"
#: Words that join two counts of different things: "two cats and three dogs".
_COORDINATORS = frozenset({"and", "&", "+", "plus", ","})


class CaptionError(ValueError):
    """Bad stage-2 input (missing column, no counting caption); the message names the file."""


def _prefilter(include_digits: bool) -> re.Pattern[str]:
    words = "|".join(NUMBER_WORDS.values())
    if include_digits:
        return re.compile(rf"\b(?:{words})\b|(?<![\d.,])(?:10|[2-9])(?!\d)", re.IGNORECASE)
    return re.compile(rf"\b(?:{words})\b", re.IGNORECASE)


def _split_entities(nlp: spacy.Language) -> None:
    """Let the tokenizer split escaped HTML entities off words, as it does quotes."""
    tokenizer = nlp.tokenizer
    tokenizer.prefix_search = compile_prefix_regex([_ENTITY, *nlp.Defaults.prefixes]).search
    tokenizer.suffix_search = compile_suffix_regex([_ENTITY, *nlp.Defaults.suffixes]).search


class CaptionParser:
    """The filter, bound to one spaCy pipeline and one model. Build once, reuse (spaCy load is not
    free). ``threshold`` is the operating point (None: ``CaptionConfig().count_threshold``);
    ``classifier`` a model JSON file (None: the shipped one)."""

    def __init__(
        self,
        spacy_model: str | None = None,
        *,
        include_digits: bool = False,
        require_nummod: bool = True,
        threshold: float | None = None,
        method: Method = "classifier",
        classifier: str | None = None,
    ) -> None:
        if spacy_model:
            self.nlp = spacy.load(spacy_model, exclude=["ner", "lemmatizer", "textcat"])
        else:
            self.nlp = spacy.blank("en")
        _split_entities(self.nlp)
        if method not in ("classifier", "rules"):
            raise ValueError(f"method must be 'classifier' or 'rules', got {method!r}")
        self.method = method
        self.include_digits = include_digits
        self.require_nummod = require_nummod and bool(spacy_model)
        self._classifier_path = classifier
        self._classifier: CountClassifier | None = None
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {self.threshold}")
        self.counts = dict(WORD_COUNTS)
        if include_digits:
            self.counts.update(DIGIT_COUNTS)
        self.prefilter = _prefilter(include_digits)
        self.titles = PhraseMatcher(self.nlp.vocab, attr="LOWER")
        tokenizer = self.nlp.tokenizer
        patterns = [tokenizer(t) for t in TITLES]
        pictured = [t in PICTURED_TITLES for t in TITLES]
        self.titles.add("IDIOM", [d for d, p in zip(patterns, pictured, strict=True) if not p])
        self.titles.add("GROUP", [d for d, p in zip(patterns, pictured, strict=True) if p])
        self._idiom = self.nlp.vocab.strings["IDIOM"]
        self.title_words = frozenset(
            t.lower_ for doc in patterns for t in doc if t.lower_ not in self.counts
        )

    @property
    def classifier(self) -> CountClassifier:
        """The model (loaded on first use, so a parser for feature extraction needs none)."""
        if self._classifier is None:
            self._classifier = load_classifier(self._classifier_path)
        return self._classifier

    @classifier.setter
    def classifier(self, model: CountClassifier) -> None:
        self._classifier = model

    @classmethod
    def from_config(cls, cfg: CaptionConfig) -> CaptionParser:
        return _parser(cfg.spacy_model, cfg.include_digits, cfg.require_nummod, cfg.count_threshold)

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

    def parse_doc(self, doc: Doc, text: str | None = None) -> Parsed:
        """Decide on a tokenized caption (``text`` is ``doc.text``, if at hand)."""
        if self.method == "rules":
            return self._parse_rules(doc, text)
        toks = list(doc)
        low = [t.lower_ for t in toks]
        occurrences = self.occurrences(doc, toks, low)
        if not occurrences:
            return None, "no_number"
        best, p = self.best(occurrences)
        if best is None:
            return None, occurrences[0].reason
        if p < self.threshold:
            return None, "classifier"
        if self.other_count(toks, low, best, occurrences) >= self.threshold:
            return None, "multiple_counts"
        tok = toks[best.index]
        return CountCaption(
            doc.text if text is None else text, best.value, tok.idx, tok.idx + len(tok)
        ), None

    def occurrences(
        self, doc: Doc, toks: list[Token] | None = None, low: list[str] | None = None
    ) -> list[Occurrence]:
        """Every number word (or digit) of the caption, with the rule reason that fired on it
        and, unless a veto rules it out, its classifier features."""
        toks = list(doc) if toks is None else toks
        low = [t.lower_ for t in toks] if low is None else low
        counts = self.counts
        # like_num alone also takes "one", "1st"; the word lists alone take "Two" in "Two-Face"
        hits = [i for i, w in enumerate(low) if w in counts and toks[i].like_num]
        if not hits:
            return []
        # the PhraseMatcher only runs when a word of some title is present (cheap set test)
        titled = [] if self.title_words.isdisjoint(low) else self.titles(doc)
        shared: list[str] | None = None
        out = []
        for i in hits:
            reason = reject_reason(toks, low, i, counts)
            if reason is None and self.require_nummod and doc.has_annotation("DEP"):
                tok = toks[i]
                if tok.dep_ != "nummod" or tok.head.pos_ not in ("NOUN", "PROPN"):
                    reason = "not_nummod"
            in_title = [label for label, s, e in titled if s <= i < e]
            if self._idiom in in_title:
                reason = "title"  # "Seven Seas", "Top Ten", "high five": a veto
            features: tuple[str, ...] = ()
            if reason not in VETOES and reason != "not_nummod" and self._idiom not in in_title:
                if shared is None:
                    shared = caption_features(toks, low, hits, title_case(toks))
                own = occurrence_features(toks, low, i, counts, reason, hits, bool(in_title))
                features = (*own, *shared)
            out.append(Occurrence(i, counts[low[i]], reason, features))
        return out

    def best(self, occurrences: list[Occurrence]) -> tuple[Occurrence | None, float]:
        """The occurrence the classifier scores highest (the first on a tie) and its
        probability; ``(None, 0.0)`` when vetoes ruled every one out."""
        best, best_p = None, 0.0
        for occ in occurrences:
            if not occ.features:
                continue
            p = self.classifier.probability(occ.features)
            if best is None or p > best_p:
                best, best_p = occ, p
        return best, best_p

    # -- helpers -----------------------------------------------------------------------------
    def other_count(
        self, toks: list[Token], low: list[str], best: Occurrence, occurrences: list[Occurrence]
    ) -> float:
        """Another number joined to the count that counts something else: "two cats and three
        dogs", "two dogs and one cat", "three chairs, twelve plates", "two cats and two dogs"
        (four animals). Returns how sure that is: the classifier's probability of the other
        number word (1.0 for "one" or a number outside two..ten), -1.0 when there is none; the
        caption is rejected when it reaches the operating point. A number elsewhere in the
        caption ("ten eggs in two rows of five", "Three little kittens - three kittens mug")
        is left to the classifier."""
        i = best.index
        n = len(low)
        head = phrase_head(toks, low, i)
        others = {o.index: o for o in occurrences if o.index != i and o.features}
        blocking = -1.0
        for m in range(max(0, i - 8), min(n, i + 9)):
            w = low[m]
            if m == i or not (m in others or w in OTHER_NUMBER_WORDS or w == "one"):
                continue
            lo, hi = sorted((i, m))
            between = low[lo + 1 : hi]
            if not any(x in _COORDINATORS for x in between):
                continue
            if any(t.is_punct and t.lower_ != "," for t in toks[lo + 1 : hi]):
                continue  # "- three kittens mug", "(two pieces)": another phrase
            if m + 1 >= n or not toks[m + 1].is_alpha or low[m + 1] in ("of", "another"):
                continue  # "one of them", "and three.": no other noun counted
            if m not in others:
                if w == "one" and "," in between:
                    continue  # "two birds, one facing left": a partition, not another count
                return 1.0
            other = others[m]
            if other.value == best.value and phrase_head(toks, low, m) == head:
                continue  # the same count of the same things, said twice
            blocking = max(blocking, self.classifier.probability(other.features))
        return blocking

    def _parse_rules(self, doc: Doc, text: str | None = None) -> Parsed:
        """The previous rule set: every number word must pass every rule and all must agree."""
        counts = self.counts
        toks = list(doc)
        low = [t.lower_ for t in toks]
        hits = [i for i, w in enumerate(low) if w in counts and toks[i].like_num]
        if not hits:
            return None, "no_number"
        for i, w in enumerate(low[:-1]):
            if w == "one" and low[i + 1] == "of":
                return None, "one_of"
        titled = [] if self.title_words.isdisjoint(low) else self.titles(doc)
        for i in hits:
            if any(s <= i < e for _label, s, e in titled):
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


@cache
def _parser(
    spacy_model: str | None,
    include_digits: bool,
    require_nummod: bool,
    threshold: float = DEFAULT_THRESHOLD,
) -> CaptionParser:
    return CaptionParser(
        spacy_model,
        include_digits=include_digits,
        require_nummod=require_nummod,
        threshold=threshold,
    )


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
