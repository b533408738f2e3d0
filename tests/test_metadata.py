"""Stage 1: real DuckDB over small LAION-schema parquet written here with pyarrow."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from countclip.config import CaptionConfig, MetadataConfig
from countclip.data.captions.stage import run_caption_stage
from countclip.data.metadata import (
    LAION_COLUMNS,
    MetadataError,
    MetadataSourceNotFound,
    load_sql,
    run_metadata_stage,
)

CAPTIONS = [
    "Set of three red stars vector icon",  # candidate
    "Two cats sleeping on a sofa",  # candidate
    "open 24 hours",  # no number word
    "a red bicycle leaning on a wall",  # no number word
    "often the tone of voice matters",  # no number word (inside other words)
    "ten years of marriage",  # candidate for the prefilter; spaCy rejects it later
]


def _rows(n: int, start: int = 0) -> dict:
    ids = list(range(start, start + n))
    return {
        "SAMPLE_ID": pa.array(ids, pa.int64()),
        "URL": [("ftp://x/" if i % 17 == 0 else "http://127.0.0.1/img/") + f"{i}.jpg" for i in ids],
        "TEXT": [None if i % 23 == 0 else CAPTIONS[i % len(CAPTIONS)] for i in ids],
        "HEIGHT": pa.array([32 if i % 13 == 0 else 256 for i in ids], pa.int32()),
        "WIDTH": pa.array([256] * n, pa.int32()),
        "LICENSE": ["?"] * n,
        "NSFW": ["NSFW" if i % 11 == 0 else ("UNLIKELY" if i % 7 else None) for i in ids],
        "similarity": [0.2 if i % 5 == 0 else 0.31 for i in ids],
    }


@pytest.fixture
def laion(tmp_path):
    src = tmp_path / "laion"
    src.mkdir()
    pq.write_table(pa.table(_rows(600)), src / "part-00000.parquet")
    pq.write_table(pa.table(_rows(400, start=600)), src / "part-00001.parquet")
    return src


def _expected(n_rows: int = 1000) -> dict:
    """The same filters in plain Python, for the counts."""
    t = _rows(n_rows)
    words = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    out = {"url": 0, "nsfw": 0, "similarity": 0, "size": 0, "empty_text": 0, "no_number": 0}
    kept = 0
    for i in range(n_rows):
        text = t["TEXT"][i]
        if not t["URL"][i].startswith("http"):
            out["url"] += 1
        elif t["NSFW"][i] != "UNLIKELY":
            out["nsfw"] += 1
        elif t["similarity"][i] < 0.28:
            out["similarity"] += 1
        elif t["HEIGHT"][i].as_py() < 64:
            out["size"] += 1
        elif not text:
            out["empty_text"] += 1
        elif not any(w in text.lower().split() for w in words):
            out["no_number"] += 1
        else:
            kept += 1
    return {"kept": kept, "dropped": out}


def test_sql_files_bind_parameters():
    for name in ("candidates.sql", "common_sample.sql", "filter_stats.sql"):
        sql = load_sql(name)
        assert "$source" in sql and "$pattern" in sql
        assert "{" not in sql  # no str.format placeholders


def test_metadata_stage_counts_outputs_and_resume(laion, tmp_path):
    cfg = MetadataConfig(source=str(laion / "*.parquet"), common_ratio=0.5, seed=3)
    m = run_metadata_stage(cfg, str(tmp_path / "root"))
    exp = _expected()
    assert m["stats"]["rows_read"] == 1000
    assert m["stats"]["kept"] == exp["kept"]
    assert m["stats"]["dropped"] == exp["dropped"]
    assert m["stats"]["rows_read"] == m["stats"]["kept"] + sum(m["stats"]["dropped"].values())
    cand = pq.read_table(m["outputs"]["candidates"])
    common = pq.read_table(m["outputs"]["common"])
    assert cand.column_names == list(LAION_COLUMNS)
    assert cand.num_rows == m["stats"]["kept"]
    assert common.num_rows == m["stats"]["common_rows"] == -(-m["stats"]["kept"] // 2)
    texts = set(cand.column("TEXT").to_pylist())
    assert texts <= {CAPTIONS[0], CAPTIONS[1], CAPTIONS[5]}
    assert not set(common.column("TEXT").to_pylist()) & texts
    assert all(u.startswith("http") for u in common.column("URL").to_pylist())
    # the same seed gives the same sample; resume returns the finished manifest
    again = run_metadata_stage(cfg, str(tmp_path / "root"))
    assert again == m
    other = run_metadata_stage(cfg.model_copy(update={"seed": 4}), str(tmp_path / "root2"))
    ids = set(pq.read_table(other["outputs"]["common"]).column("SAMPLE_ID").to_pylist())
    assert ids != set(common.column("SAMPLE_ID").to_pylist())
    repeat = run_metadata_stage(cfg, str(tmp_path / "root3"))
    assert pq.read_table(repeat["outputs"]["common"]).equals(common)
    # stage 2 reads stage 1's manifest directly
    cap = run_caption_stage(m, CaptionConfig(), str(tmp_path / "root"))
    assert cap["stats"]["kept"] + cap["stats"]["rejected"] == m["stats"]["kept"]
    assert cap["stats"]["rejected_by_reason"] == {
        "time": sum(t == CAPTIONS[5] for t in texts_of(cand))
    }
    assert cap["outputs"]["common"] == m["outputs"]["common"]


def texts_of(table: pa.Table) -> list[str]:
    return table.column("TEXT").to_pylist()


def test_digits_prefilter(laion, tmp_path):
    cfg = MetadataConfig(source=str(laion / "*.parquet"), include_digits=True)
    m = run_metadata_stage(cfg, str(tmp_path / "root"))
    assert "open 24 hours" not in texts_of(pq.read_table(m["outputs"]["candidates"]))


def _no_outputs(root) -> bool:
    return not root.exists() or not [
        p for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts
    ]


def test_missing_file(tmp_path):
    cfg = MetadataConfig(source=str(tmp_path / "nothing-*.parquet"))
    with pytest.raises(MetadataSourceNotFound, match="nothing-"):
        run_metadata_stage(cfg, str(tmp_path / "root"))
    with pytest.raises(FileNotFoundError):
        run_metadata_stage(cfg, str(tmp_path / "root"))
    with pytest.raises(MetadataError, match="empty"):
        run_metadata_stage(MetadataConfig(source=""), str(tmp_path / "root"))
    assert _no_outputs(tmp_path / "root")


def test_missing_columns_named(laion, tmp_path):
    rows = _rows(10)
    del rows["similarity"], rows["NSFW"]
    pq.write_table(pa.table(rows), laion / "part-00002.parquet")
    cfg = MetadataConfig(source=str(laion / "*.parquet"))
    with pytest.raises(MetadataError, match=r"part-00002\.parquet.*NSFW, similarity"):
        run_metadata_stage(cfg, str(tmp_path / "root"))
    assert _no_outputs(tmp_path / "root")


def test_empty_result(laion, tmp_path):
    cfg = MetadataConfig(source=str(laion / "*.parquet"), min_similarity=0.9)
    with pytest.raises(MetadataError, match="no row passes"):
        run_metadata_stage(cfg, str(tmp_path / "root"))
    assert _no_outputs(tmp_path / "root")
