"""Stage 2: the filter on real-looking LAION captions (vetoes, the classifier, the rules it
reads as features), counterfactuals, the synthetic world's captions, the stage.

These captions were written for the tests; they check behaviour, not quality (the quality is
measured on real labelled captions: tests/test_caption_classifier.py, docs/captions.md)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from countclip.config import CaptionConfig
from countclip.data.captions.parser import (
    NUMBER_WORDS,
    REJECT_REASONS,
    CaptionError,
    CaptionParser,
    CountCaption,
    find_number,
    parse_caption,
    parse_captions,
)
from countclip.stages.captions import run_caption_stage

# (caption, expected count) — captions in the style of LAION-400M alt texts
ACCEPTED = [
    ("Two women sitting on a bench in the park", 2),
    ("Set of three red stars vector icon", 3),
    ("three ceramic coffee mugs on a wooden table", 3),
    ("Four Red Apples On A White Background", 4),
    ("TWO CATS SLEEPING ON A SOFA", 2),
    ("Vintage brass candle holders, set of two", 2),
    ("Group of five friends laughing together outdoors", 5),
    ("Portrait of six puppies in a basket", 6),
    ("seven colorful hot air balloons over the valley", 7),
    ("eight wine glasses lined up on a bar counter", 8),
    ("Nine ducklings following their mother across the road", 9),
    ("ten pencils isolated on white", 10),
    ("Two children playing in the snow - stock photo", 2),
    ("Three cups on a table", 3),
    ("Mother with her two daughters at the beach", 2),
    ("Stock Photo - three businessmen shaking hands", 3),
    ("two red roses. two red roses on a black background", 2),
    ("Close-up of two hands holding a heart", 2),
    ("Cute cartoon illustration of three little birds on a branch", 3),
    ("Pack of two cotton towels, white", 2),
    ("Five yellow tulips in a glass vase", 5),
    # "one of them" is one of the three sisters pictured: the count is three (this was rejected
    # as "one_of" before the labelling rule; "one of two cats" still is, below)
    ("Three sisters, one of them smiling", 3),
    # "the two of them" are pictured: missed by the first classifier, kept since feature version 2
    ("The two of them walking along the river", 2),
]

# Counts the classifier (trained on real LAION captions) scores below the operating point: kept
# here so that a better model shows up (strict xfail), not to be "fixed" by hand.
MISSED = [("The Two Of Us On The Beach", 2)]

# Non-counts the classifier scores above the operating point, for the same reason: a compound the
# rules name ("three legged stool": on the tune split an "-ed" word after a number mostly comes
# before a counted plural) and a news headline about people who are not pictured.
FALSE_KEPT = ["three legged stool in oak", "Four killed in crash"]

# (caption, expected reason): the prefilter, the vetoes (rules that are certainly right), and
# the "other count" check name their own reason
REJECTED = [
    ("a cat on a mat", "no_number"),
    ("open 24 hours", "no_number"),
    ("Often seen in the tone of the evening", "no_number"),
    ("iPhone 7 case with card holder", "no_number"),
    ("Two hours drive from the city", "time"),
    ("I waited two weeks for this parcel", "time"),
    ("we spent three full days in Rome", "time"),
    ("Meet me at seven pm", "time"),
    ("Every five minutes a train leaves", "time"),
    ("Ten years old boy with a bike", "age"),
    ("a two-year-old girl playing with blocks", "age"),
    ("Happy child aged three with balloons", "age"),
    ("My son turns five today", "age"),
    ("Wedding on the ten of May", "date"),
    ("one of two cats on the sofa", "one_of"),
    ("one of the three finalists holding a trophy", "one_of"),
    ("two cats and three dogs in the yard", "multiple_counts"),
    ("two dogs and one cat on the bed", "multiple_counts"),
    ("two cats and two dogs playing", "multiple_counts"),
    ("three chairs and twelve plates on the table", "multiple_counts"),
    ("one or two apples a day", "ambiguous"),
    ("two or three apples on a plate", "ambiguous"),
    ("between two and four people", "ambiguous"),
    ("about ten people at the party", "ambiguous"),
    ("at least three birds on the wire", "ambiguous"),
    ("dinner for two", "no_noun"),
    ("a proud mother of three", "no_noun"),
    ("two inches of snow on the car", "measure"),
    ("two cups of flour in a bowl", "measure"),
    ("costs $5 for three", "no_noun"),
    ("three out of four dentists recommend it", "multiplier"),
    ("Luxury hotel rated five stars review", "measure"),
    ("two times faster than before", "multiplier"),
    ("three-quarters of the pizza left", "multiplier"),
    ("two and a half apples left", "multiplier"),
    ("a two in one shampoo bottle", "multiplier"),
    ("twenty-two balloons at the party", "larger_number"),
    ("two hundred people in the square", "larger_number"),
    ("three dozen roses bouquet", "larger_number"),
    ("the team won three to one", "score"),
    ("Arsenal beat Chelsea two nil", "score"),
    ("Windows Ten desktop wallpaper", "model_number"),
    ("PlayStation Two console with controller", "model_number"),
    ("Season Two poster of the show", "label"),
    ("Chapter Three: the journey begins", "label"),
    ("Apollo number ten capsule", "label"),
    # idioms and names of the curated title list whose number counts nothing pictured
    ("Ocean's Eight movie poster", "title"),
    ("Seven Seas cod liver oil capsules", "title"),
    ("we visited the Seven Sisters cliffs", "title"),
    ("Nine Inch Nails concert tickets", "title"),
    ("Top Ten beaches in Europe", "title"),
    ("the Big Ten championship game", "title"),
    ("Take Five jazz record sleeve", "title"),
    ("high five from a happy child", "title"),
    ("Seven Wonders Of The World Poster", "title"),
]

# (caption, the rule that names what it sees around the number): no veto, the classifier
# weighs that rule among its features and rejects the caption (reason "classifier")
CLASSIFIED = [
    ("The Three Musketeers movie poster", "title"),
    ("Five Ways To Improve Your Sleep", "listicle"),
    ("10 things and three tips for a better garden", "listicle"),
    ("Three Reasons Why You Should Visit Iceland", "listicle"),
    ("two-tone leather jacket", "compound"),
    ("five star hotel by the sea", "compound"),
    ("four door sedan for sale", "compound"),
    ("Two Tone Heart Necklace", "compound"),
    ("two seater sofa in grey velvet", "compound"),
    ("three bedroom house for sale", "compound"),
    # a product-type compound: labelled 0 by the rule in docs/captions.md
    ("Three Piece Suit for men", None),
    ("two by four lumber stack", "compound"),  # "two" is a measure (veto), "four" a compound
]


def test_reason_set_is_closed():
    assert set(REJECT_REASONS) >= {r for _c, r in REJECTED} | {"classifier"}
    assert set(REJECT_REASONS) >= {r for _c, r in CLASSIFIED if r}
    assert list(NUMBER_WORDS) == list(range(2, 11))
    assert " ".join(NUMBER_WORDS.values()) == "two three four five six seven eight nine ten"


@pytest.mark.parametrize(("text", "count"), ACCEPTED)
def test_accepted(text, count):
    cc = parse_caption(text)
    assert cc is not None, text
    assert cc.count == count
    assert cc.word.lower() == NUMBER_WORDS[count]
    assert text[cc.start : cc.end] == cc.word


@pytest.mark.parametrize(("text", "reason"), REJECTED)
def test_rejected_with_reason(text, reason):
    [(cc, why)] = list(parse_captions([text], with_reasons=True))
    assert cc is None, text
    assert why == reason, text


@pytest.mark.parametrize(("text", "count"), MISSED)
@pytest.mark.xfail(strict=True, reason="scored below the operating point by the classifier")
def test_missed(text, count):
    cc = parse_caption(text)
    assert cc is not None and cc.count == count


@pytest.mark.parametrize("text", FALSE_KEPT)
@pytest.mark.xfail(strict=True, reason="scored above the operating point by the classifier")
def test_false_kept(text):
    assert parse_caption(text) is None


@pytest.mark.parametrize(("text", "rule"), CLASSIFIED)
def test_classifier_rejects_what_the_rules_see(text, rule):
    parser = CaptionParser()
    assert parser.parse(text) == (None, "classifier"), text
    reasons = [occ.reason for occ in parser.occurrences(parser.nlp(text)) if occ.features]
    assert rule in reasons, (text, reasons)


def test_batched_matches_single_and_keeps_order():
    texts = [t for t, _ in ACCEPTED] + [t for t, _ in REJECTED + CLASSIFIED] + [None, ""]
    batched = list(parse_captions(texts, batch_size=7))
    assert len(batched) == len(texts)
    assert batched == [parse_caption(t) if t else None for t in texts]


def test_counterfactual_changes_only_the_span_and_keeps_case():
    for text, _ in ACCEPTED:
        cc = parse_caption(text)
        for n in NUMBER_WORDS:
            cf = cc.counterfactual(n)
            new = cf[cc.start : len(cf) - (len(text) - cc.end)]
            assert cf[: cc.start] == text[: cc.start]
            assert cf[cc.start + len(new) :] == text[cc.end :]
            assert new.lower() == NUMBER_WORDS[n]
            if cc.word.isupper():
                assert new == new.upper()
            elif cc.word[0].isupper():
                assert new == NUMBER_WORDS[n].capitalize()
            else:
                assert new == NUMBER_WORDS[n]
    assert parse_caption("Three cats").counterfactual(7) == "Seven cats"
    assert parse_caption("THREE CATS").counterfactual(10) == "TEN CATS"
    assert parse_caption("a box of three eggs!").counterfactual(2) == "a box of two eggs!"
    with pytest.raises(ValueError):
        parse_caption("three cats").counterfactual(11)


def test_digits_only_when_configured():
    assert parse_caption("3 kittens in a basket") is None
    parser = CaptionParser(include_digits=True)
    cc, why = parser.parse("3 kittens in a basket")
    assert why is None and cc.count == 3 and cc.word == "3"
    assert cc.counterfactual(10) == "10 kittens in a basket"
    assert parser.parse("iPhone 7 case")[1] == "model_number"
    assert parser.parse("final score 3-2")[1] == "score"
    assert parser.parse("open 5 days a week")[1] == "time"


def test_find_number_for_given_count():
    text = "Three-year-old twins with their 2 dogs and three cats"
    cc = find_number(text, 3)
    assert cc == CountCaption(text, 3, text.index("three cats"), text.index("three cats") + 5)
    assert find_number(text, 2).word == "2"
    assert find_number("a photo of ten birds, 100 feathers", 10).start == 11
    assert find_number("the three-piece suit", 3).word == "three"  # only a glued one: take it
    assert find_number("no number here", 4) is None
    assert find_number("often and tone", 10) is None
    cc = find_number("Seven Dwarfs and SEVEN apples", 7)
    assert cc.word == "Seven" and cc.counterfactual(2).startswith("Two Dwarfs")


def _write_candidates(path, texts):
    n = len(texts)
    pq.write_table(
        pa.table(
            {
                "SAMPLE_ID": pa.array(range(n), pa.int64()),
                "URL": [f"http://127.0.0.1/img/{i}.jpg" for i in range(n)],
                "TEXT": texts,
                "HEIGHT": pa.array([256] * n, pa.int32()),
                "WIDTH": pa.array([256] * n, pa.int32()),
                "LICENSE": ["?"] * n,
                "NSFW": ["UNLIKELY"] * n,
                "similarity": [0.33] * n,
            }
        ),
        path,
    )


def _manifest(tmp_path, texts):
    cand = tmp_path / "candidates.parquet"
    _write_candidates(cand, texts)
    _write_candidates(tmp_path / "common.parquet", [])
    return {
        "fingerprint": f"meta{len(texts)}",
        "outputs": {"candidates": str(cand), "common": str(tmp_path / "common.parquet")},
    }


def test_caption_stage_streams_and_counts_add_up(tmp_path):
    texts = [t for t, _ in ACCEPTED] * 3 + [t for t, _ in REJECTED + CLASSIFIED] + [None]
    meta = _manifest(tmp_path, texts)
    cfg = CaptionConfig(rows_per_chunk=16, batch_size=5)
    m = run_caption_stage(meta, cfg, str(tmp_path / "root"))
    counting = pq.read_table(m["outputs"]["counting"])
    rejected = pq.read_table(m["outputs"]["rejected"])
    assert counting.column_names == [
        "SAMPLE_ID",
        "URL",
        "TEXT",
        "HEIGHT",
        "WIDTH",
        "count",
        "number_start",
        "number_end",
        "number_word",
    ]
    assert rejected.column_names == ["SAMPLE_ID", "TEXT", "reason"]
    assert m["stats"]["kept"] == counting.num_rows == 3 * len(ACCEPTED)
    assert m["stats"]["rows_read"] == len(texts) == counting.num_rows + rejected.num_rows
    assert sum(m["stats"]["rejected_by_reason"].values()) == rejected.num_rows
    assert m["stats"]["rejected_by_reason"]["title"] == sum(r == "title" for _, r in REJECTED)
    assert m["stats"]["rejected_by_reason"]["classifier"] == len(CLASSIFIED)
    assert m["outputs"]["common"] == meta["outputs"]["common"]
    expected = {}
    for _, c in ACCEPTED:
        expected[str(c)] = expected.get(str(c), 0) + 3
    assert m["stats"]["counts_before_download"] == expected
    for row in counting.to_pylist():
        assert row["TEXT"][row["number_start"] : row["number_end"]] == row["number_word"]
        assert NUMBER_WORDS[row["count"]] == row["number_word"].lower()
    # resume: the same inputs and config return the finished manifest
    assert run_caption_stage(meta, cfg, str(tmp_path / "root")) == m
    assert (
        json.loads(
            (tmp_path / "root" / "captions" / m["fingerprint"] / "manifest.json").read_text()
        )["stats"]["kept"]
        == m["stats"]["kept"]
    )


def test_caption_stage_bad_input_leaves_nothing(tmp_path):
    root = tmp_path / "root"
    with pytest.raises(CaptionError, match="not found"):
        run_caption_stage(
            {"fingerprint": "x", "outputs": {"candidates": str(tmp_path / "nope.parquet")}},
            CaptionConfig(),
            str(root),
        )
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"SAMPLE_ID": [1], "TEXT": ["two cats"]}), bad)
    with pytest.raises(CaptionError, match=r"bad\.parquet.*URL"):
        run_caption_stage(
            {"fingerprint": "y", "outputs": {"candidates": str(bad)}}, CaptionConfig(), str(root)
        )
    meta = _manifest(tmp_path, ["two hours", "Top Ten", "a cat"])
    with pytest.raises(CaptionError, match="none of 3"):
        run_caption_stage(meta, CaptionConfig(), str(root))
    leftovers = [p for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts]
    assert leftovers == []


def test_the_synthetic_worlds_captions_still_pass_the_filter():
    """The demo and every pipeline test run on the synthetic world's LAION-like captions: the
    filter keeps its clean counting captions and rejects its distractors (numbers that are not
    counts) and its plain captions.

    Measured on this world (its casing mix: 60% as written, 20% Capitalised, 13% Title Case,
    7% UPPER): the previous rules kept about 94% of the clean counting captions (all but the
    template "{c} {p} x {n}", read as a multiplier; 100% with this change's fix of that rule)
    and rejected 100% of the distractors. The first classifier trained on real LAION kept 91.2%
    and rejected 99.2%; it missed Title Case (on the real tune split a Title Case caption with
    a number word is a non-count two times in three, 249 of 367), so "Wall Decals Two Red
    Circles" scored about 0.45, under its operating point. The classifier of feature version 2
    (which knows that "circles", "stars", "kittens" name things a picture shows,
    countclip/data/captions/nouns.py) keeps 93.4% and rejects 98.6%: over every template,
    shape, colour and count it keeps 94% of the captions as written and 86% of their Title Case
    (the first classifier: 93% and 67%). What it still misses is the template
    "{c} {p} x {n}" (a sixteenth of the counting captions), whose "x two" no real caption of the
    tune split shows, and some Title Case "Cute Cartoon ..." and "Wall Decals ...". The
    distractors it keeps are "The Three Musketeers ..." and "Fantastic Four ..." badges (a group
    of the curated titles that real captions show pictured). The noisy captions whose number
    counts something not drawn ("... for three kids") are kept 41% of the time over all
    templates and casings (the first classifier 26%, the rules all): "kids", "guests",
    "sisters" name people a picture could show. The world counts them as counting captions, so
    they are not scored here.
    """
    import numpy as np

    from countclip.config import WorldConfig
    from countclip.synthetic.laion_metadata import (
        KIND_COUNTING,
        KIND_DISTRACTOR,
        KIND_NON_COUNTING,
        caption_table,
        draw_rows,
    )

    world = WorldConfig(
        rows=20_000, seed=3, counting_fraction=0.3, distractor_fraction=0.1, caption_noise=0.0
    )
    rows = draw_rows(world)
    texts = caption_table().texts.take(rows["caption"]).to_pylist()
    parsed = list(CaptionParser().pipe(texts))
    stated = rows["caption_count"]
    kept_right = np.array(
        [cc is not None and cc.count == n for (cc, _), n in zip(parsed, stated, strict=True)]
    )
    rejected = np.array([cc is None for cc, _ in parsed])
    counting = (rows["kind"] == KIND_COUNTING) & (stated >= 2)  # "one" is no count word
    assert counting.sum() > 4000
    assert kept_right[counting].mean() >= 0.93
    assert rejected[rows["kind"] == KIND_DISTRACTOR].mean() >= 0.98
    assert rejected[rows["kind"] == KIND_NON_COUNTING].all()
