"""Caption templates of the synthetic LAION world (training metadata and CountBench).

Placeholders: ``{n}`` number word, ``{c}`` colour, ``{s}`` shape, ``{p}`` shape plural.
Non-counting and distractor templates carry the scene they describe: 0 = a dense pattern (no
count), 1 = a single object. CountBench templates are never used in the training metadata
(a test checks it), as real CountBench captions differ from LAION's. Noisy counting captions
(:data:`UNRELATED_COUNT_TEMPLATES`, :data:`PACK_TEMPLATES`) state a count their image does not
show, as a share of LAION's do.
"""

from __future__ import annotations

COUNTING_TEMPLATES: tuple[str, ...] = (
    "Set of {n} {c} {p} vector icon",
    "{n} {c} {p} isolated",
    "{n} {c} {p} on textured background, stock photo",
    "Illustration with {n} {c} {p} - Royalty Free Vector",
    "pack of {n} {c} {p} stickers",
    "{n} little {c} {p} | stock vector",
    "cute cartoon {n} {c} {p} clip art",
    "Vintage poster with {n} {c} {p}",
    "collection of {n} {c} {p} icons, flat design",
    "{c} {p} - set of {n}",
    "Group of {n} {c} {p}",
    "counting worksheet for kids: {n} {c} {p}",
    "Abstract composition of {n} {c} {p}",
    "{c} {p} x {n} (digital print)",
    "wall decals {n} {c} {p}",
    "My {n} favourite {c} {p}",
)

NON_COUNTING_TEMPLATES: tuple[tuple[str, int], ...] = (
    ("{c} {s} pattern", 0),
    ("seamless {c} {s} background", 0),
    ("{c} {p} wallpaper", 0),
    ("lots of {c} {p}", 0),
    ("many small {c} {p}", 0),
    ("{c} {p} texture for fabric", 0),
    ("{c} {s} icon", 1),
    ("{c} {s} icon on textured background", 1),
    ("{c} {s} logo design", 1),
    ("big {c} {s} sticker", 1),
    ("{c} {s} vector illustration", 1),
    ("flat {c} {s} symbol", 1),
    ("hand drawn {c} {s}", 1),
    ("{c} {s} clip art", 1),
    ("a single {c} {s}", 1),
    ("{c} {s} emoji", 1),
)

DISTRACTOR_TEMPLATES: tuple[tuple[str, int], ...] = (
    ("{c} {s} sign, open 24 hours", 1),
    ("Back in two hours - {c} {s} door sign", 1),
    ("{c} {s} birthday card for a ten years old", 1),
    ("{c} {s} t-shirt for a nine year old boy", 1),
    ("Ten years of {c} {s} design", 1),
    ("{c} {s} drawing tutorial in 5 minutes", 1),
    ("how to draw the {c} {s} in three minutes", 1),
    ("one of the best {c} {s} logos", 1),
    ("Ocean's Eleven {c} {s} poster", 1),
    ("Seven Seas {c} {s} emblem", 1),
    ("The Three Musketeers {c} {s} badge", 1),
    ("Fantastic Four {c} {s} logo", 1),
    ("Take Five: {c} {s} album cover", 1),
    ("{c} {s} pattern, often used in textile", 0),
    ("{c} {s} wallpaper in a soft tone", 0),
    ("two-tone {c} {s} icon", 1),
    ("heavy weight {c} {s} paperweight", 1),
    ("Attention: {c} {s} warning sign", 1),
    ("social network {c} {s} icon", 1),
    ("someone's favourite {c} {s}", 1),
    ("{c} {s} clock, it is five o'clock somewhere", 1),
    ("Top ten {c} {s} designs of the year", 1),
    ("{c} {p} seamless pattern, 24/7 shop", 0),
    ("freight company {c} {s} logo", 1),
)

UNRELATED_COUNT_TEMPLATES: tuple[str, ...] = (
    "{c} {p} party garland for {n} kids",
    "{c} {p} gift wrap for {n} friends",
    "{c} {p} napkins for a table of {n} guests",
    "{c} {p} quilt made by {n} sisters",
    "{c} {p} stickers from {n} artists",
    "{c} {p} printable game for {n} players",
    "{c} {p} birthday banner for {n} brothers",
    "{c} {p} cake toppers for {n} guests",
)
"""Caption noise: the number counts something the image does not show (the kids, the guests);
the drawn objects are another count. Written only for noisy rows (``world.caption_noise``)."""

PACK_TEMPLATES: tuple[int, ...] = tuple(
    i for i, t in enumerate(COUNTING_TEMPLATES) if "pack of" in t.lower() or "set of" in t.lower()
)
"""Counting templates that name a pack or set: the "pack of six, one item pictured" noise."""

COUNTBENCH_TEMPLATES: tuple[str, ...] = (
    "There are {n} {c} {p} on the table.",
    "A picture showing {n} {c} {p}.",
    "In this image we can see {n} {c} {p} scattered around.",
    "{n} {c} {p} arranged on a patterned surface.",
    "A close-up photo of {n} {c} {p}.",
    "The drawing contains exactly {n} {c} {p}.",
    "A child's painting with {n} {c} {p} in it.",
    "We counted {n} {c} {p} in this picture.",
    "Here you can find {n} {c} {p} next to each other.",
    "An artwork made of {n} {c} {p}.",
)

CASINGS: tuple[str, ...] = ("asis", "capitalize", "title", "upper")
CASING_WEIGHTS: tuple[float, ...] = (0.6, 0.2, 0.13, 0.07)


def apply_casing(text: str, casing: str) -> str:
    if casing == "capitalize":
        return text[:1].upper() + text[1:]
    if casing == "title":
        return " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
    if casing == "upper":
        return text.upper()
    return text


def fill(template: str, shape: str, colour: str, number: str = "") -> str:
    from countclip.synthetic.world import PLURALS

    return template.format(n=number, c=colour, s=shape, p=PLURALS[shape])
