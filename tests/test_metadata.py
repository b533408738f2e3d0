"""Stage 1: real DuckDB over small LAION-schema parquet written here with pyarrow."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from countclip.config import CaptionConfig, MetadataConfig
from countclip.data.metadata_query import (
    LAION_COLUMNS,
    MetadataError,
    MetadataSourceNotFound,
    exclude_lists,
    load_sql,
)
from countclip.stages.captions import run_caption_stage
from countclip.stages.metadata import run_metadata_stage

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
    out = {
        "excluded": 0,
        "url": 0,
        "nsfw": 0,
        "similarity": 0,
        "size": 0,
        "empty_text": 0,
        "no_number": 0,
    }
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
    assert m["stats"]["excluded_by_list"] == {}
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


def _ids(path) -> set[int]:
    return set(pq.read_table(path).column("SAMPLE_ID").to_pylist())


def test_exclusion_lists_drop_rows_first_and_count_per_list(laion, tmp_path):
    """Three blocklists (text URLs, CSV md5 digests, parquet sha256 digests), overlapping: the
    rows they hold never reach candidates or the common sample, dropped['excluded'] counts each
    row once, excluded_by_list counts each list's rows."""
    rows = _rows(1000)
    urls = rows["URL"]
    cand_ids = [i for i in range(1000) if rows["TEXT"][i] in (CAPTIONS[0], CAPTIONS[1])]
    text_ids, md5_ids, sha_ids = cand_ids[:5], cand_ids[3:9], [7, 8, cand_ids[9]]
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "urls.txt").write_text(
        "\n".join(urls[i] for i in text_ids) + "\n\nhttp://elsewhere/x.jpg\n"
    )
    md5 = [hashlib.md5(urls[i].encode()).hexdigest().upper() for i in md5_ids]
    (lists / "md5.csv").write_text("md5,note\n" + "".join(f"{h},x\n" for h in md5))
    sha = [hashlib.sha256(urls[i].encode()).hexdigest() for i in sha_ids]
    pq.write_table(pa.table({"digest": sha}), lists / "sha.parquet")
    cfg = MetadataConfig(
        source=str(laion / "*.parquet"),
        common_ratio=2.0,
        exclude=[
            str(lists / "urls.txt"),
            {"path": str(lists / "md5.csv"), "hash": "md5"},
            {"path": str(lists / "sha.parquet"), "hash": "sha256", "column": "digest"},
        ],
    )
    m = run_metadata_stage(cfg, str(tmp_path / "root"))
    blocked = set(text_ids) | set(md5_ids) | set(sha_ids)
    assert m["stats"]["dropped"]["excluded"] == len(blocked)
    assert m["stats"]["excluded_by_list"] == {
        str(lists / "urls.txt"): 5,
        str(lists / "md5.csv"): 6,
        str(lists / "sha.parquet"): 3,
    }
    assert m["stats"]["rows_read"] == m["stats"]["kept"] + sum(m["stats"]["dropped"].values())
    plain = run_metadata_stage(MetadataConfig(source=cfg.source), str(tmp_path / "plain"))
    kept = _ids(m["outputs"]["candidates"])
    assert not kept & blocked and not _ids(m["outputs"]["common"]) & blocked
    assert kept == _ids(plain["outputs"]["candidates"]) - blocked
    # editing a list in place makes the stage stale (its identity covers the lists' files)
    (lists / "urls.txt").write_text(urls[cand_ids[20]] + "\n")
    again = run_metadata_stage(cfg, str(tmp_path / "root"))
    assert again["fingerprint"] != m["fingerprint"]
    assert cand_ids[20] not in _ids(again["outputs"]["candidates"])


def test_bad_exclusion_list_is_named(laion, tmp_path):
    csv = tmp_path / "list.csv"
    csv.write_text("link\nhttp://a/b.jpg\n")
    for entry, pattern in [
        ({"path": str(tmp_path / "missing.txt")}, r"exclude\[0\].*missing\.txt"),
        ({"path": str(csv)}, r"exclude\[0\].*list\.csv \(csv, column 'URL'\)"),
    ]:
        cfg = MetadataConfig(source=str(laion / "*.parquet"), exclude=[entry])
        with pytest.raises(MetadataError, match=pattern):
            run_metadata_stage(cfg, str(tmp_path / "root"))
    assert _no_outputs(tmp_path / "root")


RELAION_NAMES = {"URL": "url", "TEXT": "caption", "HEIGHT": "original_height"}


def test_column_mapping_reads_another_schema(laion, tmp_path):
    """A source with other column names (like Re-LAION's url/caption/original_*), no SAMPLE_ID,
    LICENSE or NSFW: metadata.columns maps it; SAMPLE_ID is derived, stable, from URL and
    TEXT; the NSFW filter is off only when asked for."""
    t = pa.table(_rows(1000))
    other = tmp_path / "other"
    other.mkdir()
    renamed = t.drop_columns(["SAMPLE_ID", "LICENSE", "NSFW"]).rename_columns(
        {k: v for k, v in {**RELAION_NAMES, "WIDTH": "original_width"}.items()}
    )
    pq.write_table(renamed.append_column("punsafe", pa.array([0.01] * 1000)), other / "p.parquet")
    columns = {
        **RELAION_NAMES,
        "WIDTH": "original_width",
        "SAMPLE_ID": None,
        "LICENSE": None,
        "NSFW": None,
    }
    cfg = MetadataConfig(source=str(other / "p.parquet"), columns=columns, allowed_nsfw=None)
    m = run_metadata_stage(cfg, str(tmp_path / "root"))
    exp = _expected()
    assert m["stats"]["dropped"]["nsfw"] == 0
    assert m["stats"]["dropped"]["url"] == exp["dropped"]["url"]
    assert m["stats"]["kept"] == exp["kept"] + exp["dropped"]["nsfw"] - _nsfw_dropped_empty()
    cand = pq.read_table(m["outputs"]["candidates"])
    laion_types = [(f.name, f.type) for f in pq.read_schema(str(laion / "part-00000.parquet"))]
    assert [(f.name, f.type) for f in cand.schema] == laion_types
    assert set(cand.column("NSFW").to_pylist()) == {None}
    ids = cand.column("SAMPLE_ID").to_pylist()
    assert len(set(ids)) == len(ids) and min(ids) >= 0
    again = run_metadata_stage(cfg, str(tmp_path / "root2"))
    assert pq.read_table(again["outputs"]["candidates"]).column("SAMPLE_ID").to_pylist() == ids
    # a mapped column the file lacks is named, with the mapping
    bad = cfg.model_copy(update={"columns": {**columns, "TEXT": "text"}})
    with pytest.raises(MetadataError, match=r"missing column\(s\) text \(for TEXT"):
        run_metadata_stage(bad, str(tmp_path / "root3"))


def _nsfw_dropped_empty() -> int:
    """Rows the NSFW filter dropped in _expected() that a later filter would drop anyway."""
    t = _rows(1000)
    words = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    n = 0
    for i in range(1000):
        if not t["URL"][i].startswith("http") or t["NSFW"][i] == "UNLIKELY":
            continue
        text = t["TEXT"][i]
        later = (
            t["similarity"][i] < 0.28
            or t["HEIGHT"][i].as_py() < 64
            or not text
            or not any(w in text.lower().split() for w in words)
        )
        n += later
    return n


def test_metadata_config_rules(tmp_path):
    """Checked when the stage starts (the config model stays small): named settings."""
    for bad, pattern in [
        ({"columns": {"NSFW": None}}, "allowed_nsfw"),
        ({"allowed_nsfw": None}, "allowed_nsfw"),
        ({"columns": {"URL": None}}, "URL must name a source column"),
    ]:
        with pytest.raises(MetadataError, match=pattern):
            run_metadata_stage(MetadataConfig(source="x.parquet", **bad), str(tmp_path / "r"))
    with pytest.raises(ValidationError):
        MetadataConfig(source="x.parquet", columns={"url": "URL"})  # not a LAION column
    cfg = MetadataConfig(
        source=["a.parquet"], exclude=["list.txt", {"path": "h.csv", "hash": "md5"}]
    )
    assert [(e.path, e.hash) for e in exclude_lists(cfg)] == [
        ("list.txt", "none"),
        ("h.csv", "md5"),
    ]


def test_list_and_brace_range_sources(laion, tmp_path):
    """metadata.source as a list or a {00000..00001} range reads the same rows as the glob."""
    glob_m = run_metadata_stage(
        MetadataConfig(source=str(laion / "*.parquet")), str(tmp_path / "a")
    )
    for source in (
        [str(laion / "part-00000.parquet"), str(laion / "part-00001.parquet")],
        str(laion / "part-{00000..00001}.parquet"),
    ):
        m = run_metadata_stage(MetadataConfig(source=source), str(tmp_path / "b"))
        assert m["stats"]["source_files"] == 2
        assert m["stats"]["rows_read"] == glob_m["stats"]["rows_read"]
        assert _ids(m["outputs"]["candidates"]) == _ids(glob_m["outputs"]["candidates"])
    with pytest.raises(MetadataSourceNotFound, match=r"part-00002\.parquet"):
        run_metadata_stage(
            MetadataConfig(source=str(laion / "part-{00000..00002}.parquet")), str(tmp_path / "c")
        )
