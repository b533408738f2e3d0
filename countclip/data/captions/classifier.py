"""The measured part of stage 2: a linear model that scores each number word of a caption as a
count of visible things, trained on real LAION captions labelled by hand.

Why a model: rules written against captions we wrote ourselves scored 97% on those and far less
on real LAION text (docs/captions.md). Here spaCy still does the language work (the blank English
tokenizer; ``like_num``, ``is_title``, ``whitespace_``...) and the rules of
:mod:`~countclip.data.captions.rules` still name what they see, but as *features*: the labelled
tune split of ``tests/data/laion_number_captions.jsonl`` decides how much each one weighs.
Only rules that are certainly right (:data:`VETOES`: times, ages, dates, measures and money,
parts of larger numbers, multipliers, scores and ranges, identifiers, model names, "one of the
three", a number with no noun; and, in the parser, the idioms of the curated title list) still
reject a number on their own.

Each number word occurrence gets a bag of string features (:func:`occurrence_features`); besides
what the rules see and the words around it, general word knowledge of
:mod:`~countclip.data.captions.nouns` (does the noun after it name people, animals or objects a
picture shows, or an idea or an amount; does the caption read like news or a work's listing) and
the letter trigrams of the next word let it score nouns it never saw in training. The
model is a logistic regression over them, stored as JSON (:data:`MODEL_FILE`, package data:
feature -> weight, the bias, the training data's SHA-256, how the operating point was chosen).
Scoring is a dict lookup per feature and one ``exp``: no scikit-learn or numpy at run time.
``scripts/train_caption_classifier.py`` rebuilds the file bit for bit.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from spacy.tokens import Token

from countclip.data.captions.nouns import (
    NEWS_WORDS,
    WORK_WORDS,
    is_abstract_noun,
    noun_category,
    word_class,
)
from countclip.data.captions.rules import glued, is_plural
from countclip.data.captions.words import (
    BOILERPLATE,
    COMPOUND_HEADS,
    IRREGULAR_PLURALS,
    LABEL_PREV,
    LISTICLE_NOUNS,
    MEASURE_UNITS,
    MODEL_PREV,
    OTHER_NUMBER_WORDS,
    PART_HEADS,
    PHRASE_BREAKS,
    PICTURED_LIST_NOUNS,
    TIME_UNITS,
)

__all__ = [
    "FEATURE_VERSION",
    "MODEL_FILE",
    "VETOES",
    "CountClassifier",
    "Occurrence",
    "caption_features",
    "load_classifier",
    "occurrence_features",
]

#: Bumped when :func:`occurrence_features` changes; the model file records the version it was
#: trained with and loading a mismatching one fails.
FEATURE_VERSION = 2
MODEL_FILE = "count_classifier.json"
#: How far after the number its noun phrase is looked for ("Three South American Carved Wood
#: Masks").
PHRASE_WORDS = 6
_COUNT_AFTER = frozenset({"x", "×", "of", "-", ","})

#: Rule reasons that reject a number word whatever the model says: each is certainly not a count
#: of visible things when its rule fires ("two hours", "aged five", "$5", "twenty-two", "two
#: times", "3-2", "two or three", "Season Two", "iPhone 7", "one of the three", "dinner for
#: two"). On the tune split none of them fires on a labelled count (the benchmark's
#: ``--quality`` report counts them; tests/test_caption_classifier.py holds it). The parser
#: adds ``title`` for the idioms of the curated title list and ``not_nummod`` with a trained
#: pipeline.
VETOES = frozenset(
    {
        "larger_number",
        "multiplier",
        "age",
        "time",
        "date",
        "score",
        "ambiguous",
        "measure",
        "label",
        "model_number",
        "one_of",
        "no_noun",
    }
)

_LISTS: tuple[tuple[str, frozenset[str]], ...] = (
    ("time", TIME_UNITS),
    ("measure", MEASURE_UNITS),
    ("compound", COMPOUND_HEADS),
    ("part", PART_HEADS),
    ("listicle", LISTICLE_NOUNS),
    ("pictured_list", PICTURED_LIST_NOUNS),
    ("label", LABEL_PREV),
    ("model", MODEL_PREV),
    ("break", PHRASE_BREAKS),
    ("irregular_plural", IRREGULAR_PLURALS),
    ("boilerplate", BOILERPLATE),
)


@dataclass(frozen=True)
class Occurrence:
    """One number word (or digit) of a caption: token ``index``, its ``value``, the rule reason
    that fired on it (None when none did), and its features."""

    index: int
    value: int
    reason: str | None
    features: tuple[str, ...]


def _shape(tok: Token | None) -> str:
    if tok is None:
        return "none"
    if tok.is_punct:
        return "punct"
    if tok.like_num:
        return "num"
    if tok.is_upper and len(tok) > 1:
        return "upper"
    if tok.is_title:
        return "title"
    if tok.is_lower:
        return "lower"
    return "other"


def _bucket(n: int, edges: Sequence[int]) -> str:
    for edge in edges:
        if n <= edge:
            return str(edge)
    return f">{edges[-1]}"


def caption_features(
    toks: Sequence[Token], low: Sequence[str], hits: Sequence[int], titlecase: bool
) -> list[str]:
    """Features of the whole caption, shared by its number words: casing (``titlecase``: most
    longer words capitalised, see :func:`~countclip.data.captions.rules.title_case`), length,
    boilerplate, other numbers, "one of", news and work-title words ("charged", "novel", "by
    Name", "(2008)"), and its words as a bag."""
    feats = [f"len={_bucket(len(low), (4, 8, 16, 32))}"]
    words = [t for t in toks if t.is_alpha]
    if words and all(t.is_upper for t in words):
        feats.append("caption_upper")  # ALL CAPS is not Title Case: its own weight
    elif titlecase:
        feats.append("caption_titlecase")
    seen = set(low)
    for w in sorted(seen & BOILERPLATE):
        feats.append(f"boiler={w}")
    if not seen.isdisjoint(BOILERPLATE):
        feats.append("boiler")
    if not seen.isdisjoint(OTHER_NUMBER_WORDS):
        feats.append("other_number_word")
    if any(w.isdigit() for w in low):
        feats.append("digit")
    if any(w == "one" and nxt == "of" for w, nxt in itertools.pairwise(low)):
        feats.append("one_of")
    if not seen.isdisjoint(NEWS_WORDS):
        feats.append("news_word")  # "charged", "killed", "police": people often not pictured
    if not seen.isdisjoint(WORK_WORDS):
        feats.append("work_word")  # "novel", "DVD", "album": a work's title
    n = len(low)
    if any(w == "by" and m + 1 < n and toks[m + 1].is_title for m, w in enumerate(low)):
        feats.append("by_name")  # "... by Mary Higgins Clark"
    if any(low[m] == "(" and low[m + 1].isdigit() and len(low[m + 1]) == 4 for m in range(n - 1)):
        feats.append("paren_year")  # "Two Men With The Blues (2008)"
    feats.append(f"hits={min(len(hits), 3)}")
    # the caption's words as a bag: news verbs ("charged", "killed"), catalogue words, titles
    feats.extend(sorted({f"cap={w}" for w, t in zip(low, toks, strict=True) if t.is_alpha}))
    return feats


def occurrence_features(
    toks: Sequence[Token],
    low: Sequence[str],
    i: int,
    counts: Mapping[str, int],
    reason: str | None,
    hits: Sequence[int],
    in_title: bool,
) -> list[str]:
    """The features of the number at token ``i`` (see the module docstring): its word and
    casing, where it stands, its neighbours (lower-cased, with hyphens noted; the class of the
    word before it; the next word's letter trigrams), the noun phrase after it (and whether its
    plural names people, animals, objects or abstractions, :mod:`~countclip.data.captions.nouns`),
    the word lists its neighbours belong to, the rule that fired on it (``reason``), whether a
    famous title holds it (``in_title``), and the other numbers (``hits``)."""
    n = len(low)
    tok = toks[i]
    value = counts[low[i]]
    glued_before, glued_after = glued(toks, low, i)
    j = i + 2 if glued_after else i + 1
    k = i - 2 if glued_before else i - 1
    nxt = low[j] if j < n else "<end>"
    nxt2 = low[j + 1] if j + 1 < n else "<end>"
    prev = low[k] if k >= 0 else "<start>"
    prev2 = low[k - 1] if k >= 1 else "<start>"
    case = "upper" if tok.is_upper else "title" if tok.is_title else "lower"
    next_shape = _shape(toks[j] if j < n else None)
    f = [
        f"word={'digit' if low[i].isdigit() else low[i]}",
        f"case={case}",
        f"at={_bucket(i, (0, 1, 3, 6, 12))}",
        f"next={nxt}",
        f"next2={nxt2}",
        f"prev={prev}",
        f"prev2={prev2}",
        f"prev+next={prev}|{nxt}",
        f"next_shape={next_shape}",
        f"prev_shape={_shape(toks[k] if k >= 0 else None)}",
        f"rule={reason or 'none'}",
    ]
    prev_class = word_class(prev)
    if prev_class not in ("start", "of"):  # those two are prev=<start> and prev=of already
        f.append(f"prev_class={prev_class}")
    if prev == "of" and k >= 1:  # what comes before "of": "set of three", "family of four"
        before = low[k - 1]
        of_after = (
            "det" if word_class(before) == "det" else "plural" if is_plural(before) else "word"
        )
        f.append(f"of_after={of_after}")
    if j < n and toks[j].is_alpha and len(nxt) > 3:
        # the next word's letter trigrams ("<ki", "ies", "es>"): nouns unseen in training, plurals;
        # a shorter word's trigrams would only repeat next=
        padded = f"<{nxt}>"
        f.extend(sorted({f"next3={padded[m : m + 3]}" for m in range(len(padded) - 2)}))
    if reason == "compound":  # which kind: "two-tone", "five star hotel", "four cheese pizza"
        kind = "glued" if glued_after else "head" if nxt in COMPOUND_HEADS else "phrase"
        f.append(f"compound={kind}")
    if glued_after:
        f.append("glued_after")
        f.append(f"glued_next_plural={is_plural(nxt)}")
    if glued_before:
        f.append("glued_before")
    if i == 0 or all(not t.is_alpha for t in toks[:i]):
        f.append("first_word")
    if tok.is_title and (k < 0 or toks[k].is_punct):
        f.append("capital_after_break")
    for m in range(j, min(n, j + 3)):  # the next three words as a bag
        if toks[m].is_punct:
            f.append("bag_punct")
            break
        f.append(f"bag={low[m]}")
    phrase = []
    for m in range(j, min(n, j + PHRASE_WORDS)):
        if toks[m].is_punct or not toks[m].is_alpha or low[m] in PHRASE_BREAKS:
            break
        phrase.append(low[m])
    head = next((w for w in phrase if is_plural(w)), None)
    f.append(f"phrase_len={len(phrase)}")
    f.append("head_plural" if head else "no_plural_head")
    if head:
        f.append(f"head={head}")
        if head != nxt:
            f.append("head_after_modifier")
    plurals = [w for w in phrase if is_plural(w)]
    if plurals and is_abstract_noun(plurals[0]):
        f.append("head_abstract")  # "three ways", "two wins"
    category = next((c for c in map(noun_category, plurals) if c is not None), None)
    if category is not None:  # "two women", "three kittens", "four chairs"
        f.append("head_concrete")
        f.append(f"head_cat={category}")
    if is_plural(nxt):
        f.append("next_plural")
    if prev in _COUNT_AFTER and is_plural(prev2):
        f.append("count_after_noun")  # "mugs x two", "candle holders, set of two"
    elif is_plural(prev):
        f.append("prev_plural")
    for name, words in _LISTS:
        if nxt in words:
            f.append(f"next_in={name}")
        if prev in words:
            f.append(f"prev_in={name}")
    if in_title:
        f.append("in_title")
    others = [h for h in hits if h != i]
    if others:
        values = {counts[low[h]] for h in others}
        f.append("same_value_elsewhere" if value in values else "other_value_elsewhere")
        f.append("first_of_several" if i < min(others) else "later_of_several")
    if value == 2 and nxt in ("and", "&") and nxt2 in ("two", "a", "half"):
        f.append("two_and")
    return f


class CountClassifier:
    """The trained model: ``weights`` (feature -> weight) and ``bias`` of a logistic regression.

    ``probability(features)`` is the model's probability that the number is a count of visible
    things; unknown features weigh nothing."""

    def __init__(self, model: Mapping[str, Any]) -> None:
        if model.get("feature_version") != FEATURE_VERSION:
            raise ValueError(
                f"caption classifier was trained with feature version "
                f"{model.get('feature_version')}, this code computes version {FEATURE_VERSION}: "
                "rerun scripts/train_caption_classifier.py"
            )
        self.model = model
        self.weights: dict[str, float] = dict(model["weights"])
        self.bias = float(model["bias"])
        self.operating_point = float(model["operating_point"]["threshold"])

    def margin(self, features: Sequence[str]) -> float:
        w = self.weights
        return self.bias + sum(w.get(x, 0.0) for x in features)

    def probability(self, features: Sequence[str]) -> float:
        z = self.margin(features)
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    @classmethod
    def from_text(cls, text: str) -> CountClassifier:
        return cls(json.loads(text))


@cache
def load_classifier(path: str | None = None) -> CountClassifier:
    """The shipped model (package data :data:`MODEL_FILE`), or the JSON file at ``path``."""
    if path is None:
        text = resources.files("countclip.data.captions").joinpath(MODEL_FILE).read_text("utf-8")
    else:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    return CountClassifier.from_text(text)
