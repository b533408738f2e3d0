"""The context rules of stage 2: why a number word two..ten in a caption is not a count.

:class:`countclip.data.captions.parser.CaptionParser` finds the number words and checks that
they agree; the rules here look at one number's neighbours ("two hours", "Ocean's Eight",
"two-tone", "3-2") and name the first reason that applies, one of
:data:`countclip.data.captions.words.REJECT_REASONS`.
They read spaCy token attributes only, so they hold for the blank tokenizer and a trained
pipeline alike (the parser adds the dependency check on top).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from spacy.tokens import Token

from countclip.data.captions.words import (
    AGE_NEXT,
    AGE_PREV,
    AGE_UNITS,
    APPROX_NEXT,
    APPROX_PREV,
    BIG_NAMES,
    CLOCK_MINUTES,
    CLOCK_NEXT,
    COLOUR_MODIFIERS,
    COMPOUND_HEADS,
    COORDINATORS,
    CURRENCY_PREV,
    DIGIT_OK_PREV,
    DURATION_MODIFIERS,
    HEADLINE_NEXT,
    HYPHENS,
    INGREDIENTS,
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
    ORDINALS,
    OTHER_NUMBER_WORDS,
    PART_HEADS,
    PHRASE_BREAKS,
    PICTURED_LIST_NOUNS,
    PORTION_UNITS,
    RANGE_LINKS,
    RATING_CONTEXT,
    RECIPE_WORDS,
    SCORE_WORDS,
    TIME_UNITS,
    VERSUS,
    WEEKDAYS,
    WORD_COUNTS,
)

__all__ = ["has_other_count", "is_plural", "phrase_head", "reject_reason", "title_case"]

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
        "family",
        "team",
        "crew",
        "band",
        "squad",
        "trio",
    ]
)
_BEFORE_NOUN_END = frozenset({"for", "of"})
_CLOCK_BEFORE = frozenset({"half", "quarter", "twenty", "ten", "five"})
_ONE_OF_DETERMINERS = frozenset(
    {"the", "these", "those", "my", "our", "your", "his", "her", "their"}
)
_ELLIPSIS = frozenset({"...", "…", ".."})


def reject_reason(
    toks: list[Token], low: list[str], i: int, counts: Mapping[str, int]
) -> str | None:
    """Why the number at token ``i`` is not a count of objects, or None.

    ``low`` holds the lower-cased token texts, ``counts`` the number words (and digits) that
    count, with their values; the first rule that fires names the reason."""
    n = len(low)
    tok = toks[i]
    glued_before, glued_after = glued(toks, low, i)
    nxt = low[i + 2] if glued_after else (low[i + 1] if i + 1 < n else "")
    j = i + 2 if glued_after else i + 1  # index of nxt
    after = low[j + 1] if j + 1 < n else ""
    after2 = low[j + 2] if j + 2 < n else ""
    prev = low[i - 2] if glued_before else (low[i - 1] if i >= 1 else "")
    k = i - 2 if glued_before else i - 1  # index of prev
    before = low[k - 1] if k >= 1 else ""
    count = counts[low[i]]

    # part of a larger number: "twenty-two", "two hundred", "three dozen", "two point five"
    if nxt in LARGER_NEXT or prev in LARGER_PREV or (prev == "and" and before == "hundred"):
        return "larger_number"
    # multipliers and fractions: "two times", "three-quarters", "two and a half", "2 in 1"
    if (
        nxt in MULTIPLIER_NEXT
        or (prev in MULTIPLIER_PREV and (prev == "times" or (k >= 1 and toks[k - 1].like_num)))
        or (nxt == "and" and after == "a" and after2 in ("half", "quarter"))
        or (nxt in ("in", "out") and (after in counts or after in ("one", "1", "of")))
        or (prev == "in" and before in ("1", "one"))  # "one in two people"
        or (prev == "of" and before == "out")  # "three out of four"
    ):
        return "multiplier"
    # "one of two cats", "one of the three blasts": the subject is one of them
    if (prev == "of" and before == "one") or (
        prev in _ONE_OF_DETERMINERS and before == "of" and k >= 2 and low[k - 2] == "one"
    ):
        return "one_of"
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
    if prev in ("past", "to") and before in _CLOCK_BEFORE:  # "half past two", "quarter to ten"
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
        and (low[i + 2] in counts or low[i + 2] in WORD_COUNTS or toks[i + 2].like_num)
    ):
        other = _value(low[i + 2])
        if low[i + 1] == "or" or other is None or other > count:
            return "ambiguous"
        return "score"
    if (
        i >= 2
        and low[i - 1] in RANGE_LINKS
        and toks[i - 2].like_num
        # "3-2", "2 - 4", "two - three"; not "Photo 5 of 12 - Three chairs"
        and (not toks[i - 2].whitespace_ or low[i - 2].isdigit() == low[i].isdigit())
    ):
        other = _value(low[i - 2])
        if low[i - 1] in ("or", "/") or other is None or other < count:
            return "ambiguous"
        return "score"
    # approximate: "about ten", "over two", "at least three", "two or more", "two+"
    if prev in APPROX_PREV or nxt in APPROX_NEXT or (prev == "to" and before == "up"):
        return "ambiguous"
    if prev == "between" and nxt == "and" and j + 1 < n and toks[j + 1].like_num:
        return "ambiguous"  # "between two and four people"; "between two trees" counts two
    if prev == "and" and k >= 2 and toks[k - 1].like_num and low[k - 2] == "between":
        return "ambiguous"  # the four of "between two and four people"
    if nxt == "or" and after in ("more", "so", "less", "fewer"):
        return "ambiguous"
    # measures, prices, ratings: "two inches", "$5", "two cups of flour", "five stars rating"
    if nxt in MEASURE_UNITS or prev in CURRENCY_PREV:
        return "measure"
    if (
        nxt in PORTION_UNITS
        and after == "of"
        and (after2 in INGREDIENTS or not RECIPE_WORDS.isdisjoint(low))
    ):
        return "measure"  # "two cups of flour"; "two cups of coffee" are two cups
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
        if low[m] in PICTURED_LIST_NOUNS and m + 1 < n and low[m + 1] in HEADLINE_NEXT:
            return "listicle"  # "Five options to consider", not "the three colour options"
        if toks[m].is_punct:
            break
    # titles: a capitalised number inside a capitalised name in an otherwise lower-case
    # caption ("the Seven Seas", "Ocean's Eight", "a Three Rivers fan")
    if prev == "'s" and (tok.is_title or tok.is_upper) and k >= 1 and not toks[k - 1].is_lower:
        return "title"
    if tok.is_title and k >= 0 and not toks[k].is_punct and not title_case(toks):
        nxt_tok = toks[j] if j < n else None
        if (nxt_tok is not None and nxt_tok.is_title) or prev == "the" or toks[k].is_title:
            return "title"
    # compound modifiers: "two-tone", "five star hotel", "four cheese pizza"; but the parts of
    # "a four pack of socks", "six drawer chest", "three-piece set" are pictured and counted
    if glued_after and not is_plural(nxt) and nxt not in PART_HEADS:
        return "compound"
    if nxt in COMPOUND_HEADS and not (
        (nxt in COLOUR_MODIFIERS and is_plural(after))  # "eight colored pencils"
        or (nxt in ("color", "colour") and after in PICTURED_LIST_NOUNS)  # "three colour options"
    ):
        return "compound"
    if _singular_phrase(toks, low, j):
        return "compound"
    # a number with no noun: "dinner for two (by candlelight)", "mother of three" (but "set of
    # two", "a family of four" count)
    if (
        prev in _BEFORE_NOUN_END
        and before not in _SET_PREV
        and (j >= n or (toks[j].is_punct and nxt not in _ELLIPSIS) or nxt in PHRASE_BREAKS)
    ):
        return "no_noun"  # but not "illustration of six...": a caption cut short
    return None


def glued(toks: list[Token], low: list[str], i: int) -> tuple[bool, bool]:
    """Whether a hyphen glued on both sides joins the token at ``i`` to the word before it and
    to the word after it ("two-tone", "set-of-two"): such a token is part of a compound."""
    n = len(low)
    after = (
        i + 2 < n
        and low[i + 1] in HYPHENS
        and not toks[i].whitespace_
        and not toks[i + 1].whitespace_
    )
    before = (
        i >= 2
        and low[i - 1] in HYPHENS
        and not toks[i - 2].whitespace_
        and not toks[i - 1].whitespace_
    )
    return before, after


def _phrase(toks: list[Token], low: list[str], start: int, size: int = 4) -> list[str]:
    """Up to ``size`` words from ``start`` until punctuation, a digit or a phrase break."""
    words = []
    for m in range(start, min(len(low), start + size)):
        if toks[m].is_punct or not toks[m].is_alpha or low[m] in PHRASE_BREAKS:
            break
        words.append(low[m])
    return words


def _singular_phrase(toks: list[Token], low: list[str], j: int) -> bool:
    """ "four cheese pizza", "three bean chili", "five spice powder": the number modifies a noun
    phrase of two or more words with no plural in it, so it counts nothing pictured (unless the
    first word names countable parts, :data:`PART_HEADS`)."""
    words = _phrase(toks, low, j)
    return len(words) >= 2 and words[0] not in PART_HEADS and not any(map(is_plural, words))


def phrase_head(toks: list[Token], low: list[str], i: int) -> str:
    """Roughly the noun the number at ``i`` counts: the first plural word of the phrase after
    it ("three little kittens" -> "kittens"), else the next word."""
    for word in _phrase(toks, low, i + 1):
        if is_plural(word):
            return word
    return low[i + 1] if i + 1 < len(low) else ""


def has_other_count(toks: list[Token], low: list[str], hits: list[int]) -> bool:
    """Another number in the caption that counts something else: "two cats and one dog",
    "three chairs, twelve plates", "two cats 3 dogs"."""
    hitset = set(hits)
    n = len(low)
    partition = _partition(low, hits)
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
        if w == "one" and not partition and m + 1 < n and low[m + 1] not in ("of", "another"):
            # "one" is a count when coordinated with ours: "two dogs and one cat"
            for h in hits:
                lo, hi = sorted((h, m))
                if hi - lo <= 6 and any(low[x] in COORDINATORS for x in range(lo + 1, hi)):
                    return True
    return False


def _partition(low: list[str], hits: list[int]) -> bool:
    """ "two birds, one facing left and one facing right": a list after the count that splits the
    counted things ("one ..., one ..." or "one ... the other") holds no other count; "two dogs
    and one cat" does."""
    ones = [
        m
        for m in range(hits[0] + 1, len(low))
        if low[m] == "one" and (m + 1 == len(low) or low[m + 1] not in ("of", "another"))
    ]
    if not ones or low[ones[0] - 1] not in (",", "-", "–", ":", ";", "("):
        return False
    rest = low[ones[0] + 1 :]
    return len(ones) >= 2 or ("the", "other") in itertools.pairwise(rest)


def _value(word: str) -> int | None:
    if word in WORD_COUNTS:
        return WORD_COUNTS[word]
    if word == "one":
        return 1
    if word.isdigit():
        return int(word)
    return None


def is_plural(word: str) -> bool:
    return (
        (word.endswith("s") and not word.endswith("ss"))
        or word.endswith("men")  # businessmen, firemen, snowmen
        or word in IRREGULAR_PLURALS
    )


def title_case(toks: list[Token]) -> bool:
    """Most longer words capitalised ("Set Of Three Red Stars Vector Icon") or all caps: then
    capitals say nothing about names, and only the curated title list applies."""
    words = [t for t in toks if t.is_alpha and len(t) > 3]
    if len(words) < 2:
        return True
    caps = sum(1 for t in words if not t.is_lower)
    return caps >= 0.6 * len(words)
