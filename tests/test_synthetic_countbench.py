"""The synthetic CountBench: real format, 60 per count, held-out ids and caption templates."""

from __future__ import annotations

import io
import json
import re
import urllib.request
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from countclip.config import WorldConfig
from countclip.synthetic import (
    COUNTBENCH_ID_BASE,
    NUMBER_WORDS,
    ImageServer,
    generate_metadata,
    parse_scene_url,
    write_countbench,
)
from countclip.synthetic.bench_scenes import (
    CONFIRMATORY_ID_BASE,
    DEV2_ID_BASE,
    countbench_scenes,
)
from countclip.synthetic.captions import (
    COUNTBENCH_TEMPLATES,
    COUNTING_TEMPLATES,
    DISTRACTOR_TEMPLATES,
    NON_COUNTING_TEMPLATES,
)
from countclip.synthetic.laion_metadata import caption_table
from countclip.synthetic.world import PLURALS

BASE = "http://127.0.0.1:9"


def _skeleton(template: str) -> str:
    return re.sub(r"\{\w\}", "_", template).lower().strip(" .")


def test_countbench_format_and_ground_truth(tmp_path: Path) -> None:
    world = WorldConfig(seed=1)
    path = write_countbench(tmp_path / "CountBench.json", world, BASE)
    rows = json.loads(path.read_text())
    assert len(rows) == 540
    assert all(set(r) == {"image_url", "text", "number"} for r in rows)
    assert Counter(r["number"] for r in rows) == {n: 60 for n in range(2, 11)}
    for row in rows:
        scene = parse_scene_url(row["image_url"])
        assert isinstance(row["number"], int) and scene.count == row["number"]
        text = row["text"].lower()
        assert re.search(rf"\b{NUMBER_WORDS[row['number']]}\b", text), row
        assert scene.colour in text and PLURALS[scene.shape] in text, row
    assert len({r["text"] for r in rows}) > 300
    assert write_countbench(tmp_path / "again.json", world, BASE).read_text() == path.read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_countbench_is_held_out_from_training(tmp_path: Path) -> None:
    world = WorldConfig(seed=1, rows=5000, countbench_per_count=5)
    parts = generate_metadata(tmp_path / "meta", world, BASE)
    train_ids = set(pq.read_table(parts[0]).column("SAMPLE_ID").to_pylist())
    rows = json.loads(write_countbench(tmp_path / "cb.json", world, BASE).read_text())
    bench_ids = {parse_scene_url(r["image_url"]).sample_id for r in rows}
    assert len(bench_ids) == 45 and min(bench_ids) >= COUNTBENCH_ID_BASE
    assert not bench_ids & train_ids
    assert max(train_ids) < COUNTBENCH_ID_BASE
    # Templates never used in the training metadata, nor any caption it can write.
    training = {_skeleton(t) for t in COUNTING_TEMPLATES}
    training |= {_skeleton(t) for t, _ in (*DISTRACTOR_TEMPLATES, *NON_COUNTING_TEMPLATES)}
    assert not {_skeleton(t) for t in COUNTBENCH_TEMPLATES} & training
    all_training_texts = {t.lower() for t in caption_table()[0].to_pylist()}
    assert not {r["text"].lower().strip(".") for r in rows} & all_training_texts


def test_countbench_images_come_from_the_server(tmp_path: Path) -> None:
    world = WorldConfig(seed=2, countbench_per_count=2, misbehave_fraction=0.0, image_size=64)
    with ImageServer(world) as srv:
        rows = json.loads(write_countbench(tmp_path / "cb.json", world, srv.base_url).read_text())
        for row in rows[::4]:
            with urllib.request.urlopen(row["image_url"], timeout=5) as resp:
                img = Image.open(io.BytesIO(resp.read()))
            assert img.size == (64, 64)


def test_dev_dev2_and_confirmatory_countbenches_are_disjoint(tmp_path: Path) -> None:
    """Same format and counts, disjoint ids (and kinds drawn from other seeds); a new
    ``confirmatory_seed`` gives fresh scenes, and the dev file is what it always was."""
    world = WorldConfig(seed=1, countbench_per_count=20)
    dev = json.loads(write_countbench(tmp_path / "dev.json", world, BASE).read_text())
    ids = {"dev": {parse_scene_url(r["image_url"]).sample_id for r in dev}}
    for split, base in (("dev2", DEV2_ID_BASE), ("confirmatory", CONFIRMATORY_ID_BASE)):
        path = write_countbench(tmp_path / f"{split}.json", world, BASE, split=split)
        rows = json.loads(path.read_text())
        assert Counter(r["number"] for r in rows) == Counter(r["number"] for r in dev)
        assert all(set(r) == {"image_url", "text", "number"} for r in rows)
        scenes = [parse_scene_url(r["image_url"]) for r in rows]
        assert min(s.sample_id for s in scenes) >= base
        assert [s.count for s in scenes] == [r["number"] for r in rows]
        ids[split] = {s.sample_id for s in scenes}
    assert not ids["dev"] & ids["dev2"] and not ids["dev"] & ids["confirmatory"]
    assert not ids["dev2"] & ids["confirmatory"]
    assert (
        write_countbench(tmp_path / "again.json", world, BASE, split="dev").read_text()
        == (tmp_path / "dev.json").read_text()
    )
    fresh = countbench_scenes(world.model_copy(update={"confirmatory_seed": 2}), "confirmatory")
    assert not {s.sample_id for s, _ in fresh} & ids["confirmatory"]
    with pytest.raises(ValueError, match="split"):
        countbench_scenes(world, "test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="confirmatory_seed"):
        WorldConfig(confirmatory_seed=-1)
    with pytest.raises(ValueError, match="dev2_seed"):
        WorldConfig(dev2_seed=100_000)


def test_dev2_is_the_former_confirmatory_countbench_unchanged() -> None:
    """dev2 is drawn exactly as the confirmatory CountBench was before issue 32 (its ids from
    1.1e12 + seed x 1e6, its rng seeded by (seed, 0xC0B2)), so the committed results relabelled
    dev2 describe these very scenes; the fresh confirmatory CountBench shares no id, and no rng
    stream, with any earlier CountBench."""
    import numpy as np

    from countclip.synthetic.bench_scenes import _draw_scenes

    world = WorldConfig()
    assert world.dev2_seed == 1 and world.confirmatory_seed == 32
    former = _draw_scenes(
        COUNTBENCH_ID_BASE + 100_000_000_000 + world.dev2_seed * 1_000_000,
        world.countbench_per_count,
        np.random.default_rng([world.dev2_seed, 0xC0B2]),
    )
    assert countbench_scenes(world, "dev2") == former
    dev2_ids = {s.sample_id for s, _ in former}
    conf = countbench_scenes(world, "confirmatory")
    assert not {s.sample_id for s, _ in conf} & dev2_ids
    assert min(s.sample_id for s, _ in conf) >= CONFIRMATORY_ID_BASE > max(dev2_ids)
