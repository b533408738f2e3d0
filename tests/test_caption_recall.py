"""Caption recall and precision on the LAION-style sets written for the tests (tests/data), held
as floors. These sets were written by the project, not taken from LAION: the filter's quality
is measured on real labelled captions instead (tests/test_caption_classifier.py, the tables in
docs/captions.md); these floors only keep its behaviour on chosen cases from drifting.

With image-side verification downstream (the verify stage), the caption filter's job is to keep
genuine counting captions; precision on non-count uses is shared with the image check, but must
not be given back. Measured on these sets (parser with the blank spaCy pipeline):

=========================  =========================  ==========================
set                        counting captions kept     non-count captions rejected
=========================  =========================  ==========================
dev, before                63/88 (71.6%)              84/90 (93.3%)
dev, rules                 88/88 (100%)               90/90 (100%)
dev, classifier v1         83/88 (94.3%)              88/90 (97.8%)
dev, classifier v2         84/88 (95.5%)              87/90 (96.7%)
held out, before           26/40 (65.0%)              32/40 (80.0%)
held out, rules            39/40 (97.5%)              37/40 (92.5%)
held out, classifier v1    37/40 (92.5%)              36/40 (90.0%)
held out, classifier v2    38/40 (95.0%)              35/40 (87.5%)
naive first match          100% (both sets)           0% (both sets)
=========================  =========================  ==========================

"Before" is the parser before the recall rules (pack/drawer/piece... compounds, partitions,
repeated counts of the same things, pictured lists, portions that are not recipe amounts,
singular compound phrases); "rules" the rule set after them, which these sets were written for
(the dev sets were in view while the rules were written; the held out sets were written
afterwards and measured once). "Classifier" is the filter now: vetoes, then a model trained on
real LAION captions labelled under the rule in docs/captions.md (issue 29); "v1" its first
features, "v2" those of feature version 2 (word knowledge of countclip/data/captions/nouns.py,
the class of the word before the number, the next word's letter trigrams), chosen by
cross-validation on the tune split of the real captions, where recall at 90% rejection rose
from 84.7% to 88.3% (docs/captions.md).

The floors went down with the classifier, by 5 and 2 on dev and by 2 and 1 held out, for these
reasons:

- counts, dev -5 and held out -2: six of the eight misses are product-type compounds whose
  number counts parts ("two tier wedding cake", "Two-Tier Fruit Basket", "Four Panel Room
  Divider", "Five Light Chandelier", "three tier cake stand", "Four-Drawer Dresser"). The
  rule the real captions were labelled under calls these non-counts ("three-tier stand" is its
  own example), so the model learned to reject them: here the written sets and the labelling
  rule disagree, and the labelled real data is what the filter is measured on. The other two
  are Title Case captions ("The Five Puppies Of Our Golden Retriever", "The Two Brothers At
  Their Graduation"): on real LAION, Title Case captions with a number word are mostly titles
  of works (two in three on the tune split).
- non-counts, dev -2 and held out -1: singular compound phrases ("three bean chili", "five
  spice powder", "three cheese lasagna", "six cylinder engine"), which the rules rejected
  outright but which real captions also write for counts ("Two beautiful young woman", "Two
  Female Chef"), so the model weighs them instead; "Six Nations rugby trophy"; "two cups of
  chicken broth" (a recipe amount the rules' ingredient list did not name).

The held-out set was looked at during that change (its misses showed that a veto must cover
both numbers of "three out of four" and "between two and four", that "one of the two
finalists" and "mother of two" need vetoes, that "millimetre" was missing from the units and
"Secret Seven" belongs with the idioms): its numbers are no longer a held-out measurement.

Version 2 moved the floors by +1 and -1 on both sets (these sets played no part in choosing
it): it keeps "Five Light Chandelier In Antique Brass" and the two Title Case captions named
above ("The Five Puppies Of Our Golden Retriever", "The Two Brothers At Their Graduation"), and
loses "the three colour options of the new phone" (0.559 against the operating point 0.56);
it keeps two more singular compound phrases, "three speed bicycle with a basket" and "three
phase electric motor", which start the caption (a number that starts a caption is a count
more often than not on the real captions) and have no plural to tell otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from countclip.data.captions.parser import NUMBER_WORDS, REJECT_REASONS, CaptionParser

DATA = Path(__file__).parent / "data"
NAIVE = re.compile(r"\b(" + "|".join(NUMBER_WORDS.values()) + r")\b", re.IGNORECASE)


def _lines(name: str) -> list[str]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def counting(name: str) -> list[tuple[int, str]]:
    return [(int(n), text) for n, text in (line.split("\t", 1) for line in _lines(name))]


@pytest.fixture(scope="module")
def parser() -> CaptionParser:
    return CaptionParser()


@pytest.mark.parametrize(
    ("suffix", "kept_floor", "rejected_floor"),
    [("", 84, 87), ("_heldout", 38, 35)],
    ids=["dev", "heldout"],
)
def test_recall_and_precision_hold_the_measured_numbers(
    parser: CaptionParser, suffix: str, kept_floor: int, rejected_floor: int
) -> None:
    positives = counting(f"counting_captions{suffix}.txt")
    negatives = _lines(f"noncount_captions{suffix}.txt")
    assert len(positives) >= 40 and len(negatives) >= 40
    kept = [(n, t) for n, t in positives if (cc := parser.parse(t)[0]) and cc.count == n]
    parsed = [parser.parse(t) for t in negatives]
    rejected = [reason for cc, reason in parsed if cc is None]
    assert len(kept) >= kept_floor, sorted(set(positives) - set(kept))
    assert len(rejected) >= rejected_floor, [
        t for t, (cc, _) in zip(negatives, parsed, strict=True) if cc
    ]
    assert set(rejected) <= set(REJECT_REASONS)  # every rejection still says why
    # the naive first-match regex keeps everything: the parser's precision is what it adds
    assert all(NAIVE.search(t) for _, t in positives) and all(NAIVE.search(t) for t in negatives)


def test_the_dev_set_has_every_kind_the_issue_names() -> None:
    texts = {t for _, t in counting("counting_captions.txt")}
    for needle in (
        "four pack",
        "drawer",
        "light bulbs",
        "3-seater",
        "one facing left",
        "The four founders",
        "three kittens mug",
        "stages of baking",
        "colour options",
    ):
        assert any(needle in t for t in texts), needle
    assert len(texts) >= 80 and len(_lines("noncount_captions.txt")) >= 80


@pytest.mark.parametrize("suffix", ["", "_heldout"], ids=["dev", "heldout"])
def test_every_counterfactual_changes_only_the_number_span(
    parser: CaptionParser, suffix: str
) -> None:
    for count, text in counting(f"counting_captions{suffix}.txt"):
        cc, _ = parser.parse(text)
        if cc is None:
            continue
        assert cc.count == count, text
        assert cc.word.lower() == NUMBER_WORDS[count], text
        for other in NUMBER_WORDS:
            cf = cc.counterfactual(other)
            tail = len(text) - cc.end
            assert cf[: cc.start] == text[: cc.start] and cf[len(cf) - tail :] == text[cc.end :]
            assert cf[cc.start : len(cf) - tail].lower() == NUMBER_WORDS[other], (text, cf)
