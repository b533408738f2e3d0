"""The metadata generator: exact LAION schema, the caption mix, captions that match images
(but for the noisy share, which only the ground truth knows), opaque URLs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from countclip.config import WorldConfig
from countclip.synthetic import (
    LAION_SCHEMA,
    NUMBER_WORDS,
    generate_metadata,
    row_kinds,
    world_truth,
    write_ground_truth,
)
from countclip.synthetic.captions import UNRELATED_COUNT_TEMPLATES
from countclip.synthetic.laion_metadata import NOISE_KINDS, MetadataConfigError
from countclip.synthetic.world import PLURALS

BASE = "http://127.0.0.1:9"
WORLD = WorldConfig(
    rows=20_000,
    parts=3,
    seed=7,
    counting_fraction=0.1,
    distractor_fraction=0.05,
    caption_noise=0.3,
)
COUNT_WORDS = {w: n for n, w in NUMBER_WORDS.items() if n >= 2}
COUNT_RE = re.compile(r"\b(" + "|".join(COUNT_WORDS) + r")\b", re.IGNORECASE)
HIDDEN_RE = re.compile(r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|\d", re.IGNORECASE)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    out = tmp_path_factory.mktemp("meta")
    paths = generate_metadata(out, WORLD, BASE)
    assert [p.name for p in paths] == [f"part-0000{i}.parquet" for i in range(3)]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    return pa.concat_tables([pq.read_table(p) for p in paths])


def test_schema_is_exactly_laion(table: pa.Table) -> None:
    assert table.schema.names == [
        "SAMPLE_ID",
        "URL",
        "TEXT",
        "HEIGHT",
        "WIDTH",
        "LICENSE",
        "NSFW",
        "similarity",
    ]
    assert table.schema.equals(LAION_SCHEMA)
    assert table.num_rows == WORLD.rows
    ids = table.column("SAMPLE_ID").to_numpy()
    assert np.array_equal(ids, np.arange(WORLD.rows))


def test_deterministic_given_seed(tmp_path: Path, table: pa.Table) -> None:
    again = pa.concat_tables([pq.read_table(p) for p in generate_metadata(tmp_path, WORLD, BASE)])
    assert again.equals(table)
    other = WORLD.model_copy(update={"seed": 8})
    changed = pq.read_table(generate_metadata(tmp_path / "o", other, BASE)[0])
    assert changed.column("TEXT") != table.column("TEXT").slice(0, changed.num_rows)


def test_caption_mix_and_captions_match_their_images(table: pa.Table) -> None:
    kinds = row_kinds(WORLD)
    truth = world_truth(WORLD)
    assert (kinds == 1).mean() == pytest.approx(WORLD.counting_fraction, abs=1e-4)
    assert (kinds == 2).mean() == pytest.approx(WORLD.distractor_fraction, abs=1e-4)
    texts = table.column("TEXT").to_pylist()
    counts = []
    for sample_id, (text, kind) in enumerate(zip(texts, kinds, strict=True)):
        scene = truth.scene(sample_id)
        low = text.lower()
        assert scene.colour in low, (text, scene)
        assert scene.shape in low or PLURALS[scene.shape] in low, (text, scene)
        words = COUNT_RE.findall(text)
        if kind == 1:  # exactly one number word: the image's count unless the row is noisy
            assert len(words) == 1, text
            stated = COUNT_WORDS[words[0].lower()]
            assert stated == truth.caption_count[sample_id], text
            assert (stated == scene.count) == (truth.noise[sample_id] == 0), (text, scene)
            counts.append(stated)
        elif kind == 2:  # a number word that is not a count, over a non-counting image
            assert HIDDEN_RE.search(text), text
            assert scene.count in (0, 1)
        else:
            assert not HIDDEN_RE.search(text) and scene.count in (0, 1), text
    share = np.bincount(counts, minlength=11) / len(counts)
    assert share[2] == pytest.approx(0.65, abs=0.05)
    assert share[3] == pytest.approx(0.20, abs=0.04)
    assert share[2] > share[3] > share[4] > share[6]
    assert any(w.isupper() for t in texts for w in COUNT_RE.findall(t))  # "THREE"
    assert any(w.istitle() for t in texts for w in COUNT_RE.findall(t))  # "Three"
    assert len({t for t, k in zip(texts, kinds, strict=True) if k == 1}) > 500  # varied


def test_caption_noise_kinds_and_shares(table: pa.Table, tmp_path: Path) -> None:
    """Exactly ``caption_noise`` of the counting rows are noisy, of every kind, each the way its
    kind says; the other rows are the same world as without noise."""
    truth = world_truth(WORLD)
    counting = truth.caption_kind == 1
    noisy = truth.noise != 0
    assert not (noisy & ~counting).any()
    assert noisy.sum() == round(counting.sum() * WORLD.caption_noise)
    kinds = {NOISE_KINDS[k]: (truth.noise == k) for k in range(1, len(NOISE_KINDS))}
    assert all(mask.sum() > 0.1 * noisy.sum() for mask in kinds.values())
    stated, shown = truth.caption_count.astype(int), truth.count.astype(int)
    assert (np.abs(stated - shown)[kinds["off_by_one"]] == 1).all()
    assert (np.abs(stated - shown)[kinds["off_by_two"]] == 2).all()
    assert (shown[kinds["pack"]] == 1).all() and (stated[kinds["pack"]] >= 2).all()
    assert ((shown != stated) & (shown >= 1))[kinds["unrelated"]].all()
    texts = table.column("TEXT").to_pylist()
    for i in np.flatnonzero(kinds["pack"])[:50]:
        assert re.search(r"\b(pack|set) of\b", texts[i], re.IGNORECASE), texts[i]
    heads = {t.split("{n}")[1].split()[0] for t in UNRELATED_COUNT_TEMPLATES}
    for i in np.flatnonzero(kinds["unrelated"])[:50]:
        number = COUNT_RE.search(texts[i])
        assert texts[i][number.end() :].split()[0].lower() in heads, texts[i]
    quiet = WORLD.model_copy(update={"caption_noise": 0.0})
    clean = pa.concat_tables(pq.read_table(p) for p in generate_metadata(tmp_path, quiet, BASE))
    same = ~noisy
    assert np.array_equal(
        np.array(clean.column("TEXT").to_pylist(), dtype=object)[same],
        np.array(texts, dtype=object)[same],
    )


def test_ground_truth_file_is_the_truth_and_stays_out_of_the_metadata(tmp_path: Path) -> None:
    path = write_ground_truth(tmp_path / "ground_truth.parquet", WORLD)
    gt = pq.read_table(path)
    assert gt.num_rows == WORLD.rows
    assert gt.column_names == [
        "SAMPLE_ID",
        "caption_kind",
        "caption_count",
        "true_count",
        "shape",
        "colour",
        "noise",
    ]
    truth = world_truth(WORLD)
    assert np.array_equal(gt.column("true_count").to_numpy(), truth.count)
    counting = np.array(gt.column("caption_kind").to_pylist()) == "counting"
    assert gt.column("caption_count").null_count == (~counting).sum()
    assert not [p for p in tmp_path.iterdir() if p.name != "ground_truth.parquet"]


def test_urls_are_opaque_and_some_rows_fail_quality_filters(table: pa.Table) -> None:
    rows = table.to_pydict()
    http = [u for u in rows["URL"] if u.startswith("http://")]
    assert 0 < len(rows["URL"]) - len(http) < 0.02 * WORLD.rows  # a few ftp:// and file://
    for sample_id, url in zip(rows["SAMPLE_ID"], rows["URL"], strict=True):
        assert url.endswith(f"/img/{sample_id}.jpg"), url  # nothing about the scene
    height, width = np.array(rows["HEIGHT"]), np.array(rows["WIDTH"])
    nsfw, sim = np.array(rows["NSFW"]), np.array(rows["similarity"])
    small = (height < 64) | (width < 64)
    assert 0.01 < small.mean() < 0.06
    assert set(nsfw) == {"UNLIKELY", "UNSURE", "NSFW"} and (nsfw == "UNLIKELY").mean() > 0.9
    assert 0.03 < (sim < 0.28).mean() < 0.12
    assert ((sim >= 0.28) & (sim <= 0.4)).mean() > 0.85
    assert (np.array(rows["LICENSE"]) == "?").mean() > 0.8
    good = ~small & (nsfw == "UNLIKELY") & (sim >= 0.28)
    assert 0.8 < good.mean() < 0.95


def test_bad_world_is_a_clear_error(tmp_path: Path) -> None:
    bad = WORLD.model_copy(update={"counting_fraction": 0.7, "distractor_fraction": 0.5})
    with pytest.raises(MetadataConfigError, match="counting_fraction"):
        generate_metadata(tmp_path, bad, BASE)
    bad = WORLD.model_copy(update={"count_distribution": {11: 1.0}})
    with pytest.raises(MetadataConfigError, match="count_distribution"):
        generate_metadata(tmp_path, bad, BASE)
    assert not list(tmp_path.iterdir())
