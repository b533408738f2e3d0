"""Stage 1 over HTTP: LAION-schema parts served by a loopback server with Range support
(countclip.synthetic.file_server), read by DuckDB through a registered fsspec filesystem: no httpfs
extension, ranges only, clear errors naming the URL, transient failures retried by the task."""

from __future__ import annotations

import os
import time

import pyarrow.parquet as pq
import pytest

from countclip.config import MetadataConfig, WorldConfig
from countclip.data.metadata_query import (
    MetadataError,
    MetadataSourceNotFound,
    RemoteSourceError,
    check_source,
    column_map,
    connect,
    remote_files,
    source_files,
)
from countclip.stages.metadata import run_metadata_stage
from countclip.synthetic.file_server import FileServer, Rule
from countclip.synthetic.laion_metadata import generate_metadata

PARTS = "part-{00000..00001}.parquet"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Two LAION-schema parts of 120k rows (about 3 MB each: DuckDB fetches a file under 2 MiB
    whole, so smaller parts would not show what a range reader skips)."""
    out = tmp_path_factory.mktemp("parts")
    world = WorldConfig(rows=240_000, parts=2, seed=5, counting_fraction=0.05)
    for path in generate_metadata(out, world, "http://127.0.0.1:9/"):
        # many row groups, so DuckDB's threads read one file at several offsets at once
        pq.write_table(pq.read_table(path), path, row_group_size=15_000)
    return out


@pytest.fixture
def server(parts):
    with FileServer(parts) as srv:
        yield srv


def _cfg(source, **kw) -> MetadataConfig:
    return MetadataConfig(source=source, common_ratio=1.0, **{"threads": 4, **kw})


def _candidates(manifest) -> list[int]:
    return pq.read_table(manifest["outputs"]["candidates"]).column("SAMPLE_ID").to_pylist()


def test_remote_stage_equals_local_and_reads_by_ranges(server, parts, tmp_path):
    """A brace range of URLs gives the same manifest stats and outputs as the local files; every
    GET is a Range request; an exclusion list is read over HTTP too."""
    urls = pq.read_table(parts / "part-00000.parquet", columns=["URL"]).column("URL").to_pylist()
    (parts / "block.txt").write_text(next(u for u in urls if u.startswith("http")) + "\n")
    local = run_metadata_stage(
        _cfg(str(parts / PARTS), exclude=[str(parts / "block.txt")]), str(tmp_path / "local")
    )
    remote = run_metadata_stage(
        _cfg(f"{server.url}/{PARTS}", exclude=[f"{server.url}/block.txt"]),
        str(tmp_path / "remote"),
    )
    for key in ("rows_read", "kept", "dropped", "common_rows", "source_files"):
        assert remote["stats"][key] == local["stats"][key], key
    assert remote["stats"]["dropped"]["excluded"] == 1
    assert _candidates(remote) == _candidates(local)
    gets = [h for h in server.log if h.method == "GET" and h.path.endswith(".parquet")]
    assert gets and all(h.range and h.status == 206 for h in gets)


def test_only_needed_bytes_are_fetched(server, parts):
    """The schema check reads the footer alone; a query on one column fetches well under half
    of the part."""
    cfg = _cfg(f"{server.url}/part-00000.parquet")
    size = os.path.getsize(parts / "part-00000.parquet")
    remote = remote_files(cfg)
    files = source_files(cfg, remote)
    con = connect(cfg, remote)
    server.log.clear()
    check_source(con, files, column_map(cfg))
    assert 0 < sum(h.sent for h in server.log) < 0.05 * size
    server.log.clear()
    (n, avg), = con.execute(
        "SELECT count(*), avg(similarity) FROM laion_rows($s)", {"s": files}
    ).fetchall()  # fmt: skip
    con.close()
    assert n == 120_000 and 0.2 < avg < 0.5
    assert all(h.range for h in server.log)
    assert 0 < sum(h.sent for h in server.log) < 0.5 * size


def test_http_glob_is_refused_with_a_way_out(server, tmp_path):
    with pytest.raises(MetadataError, match=r"cannot list a directory.*brace range"):
        run_metadata_stage(_cfg(f"{server.url}/*.parquet"), str(tmp_path / "r"))


def test_slow_part_completes_within_the_timeout(server, tmp_path):
    """Every answer about part 1 comes 0.4 s late: the stage completes with the default timeout;
    with metadata.timeout below the delay it fails, transiently, naming the URL."""
    server.rules["part-00001.parquet"] = Rule(delay=0.4)
    t0 = time.perf_counter()
    m = run_metadata_stage(_cfg(f"{server.url}/{PARTS}"), str(tmp_path / "slow"))
    assert m["stats"]["rows_read"] == 240_000 and time.perf_counter() - t0 >= 0.4
    with pytest.raises(RemoteSourceError, match=r"part-00001\.parquet.*did not answer within 0\.1"):
        run_metadata_stage(_cfg(f"{server.url}/{PARTS}", timeout=0.1), str(tmp_path / "fast"))
    assert not (tmp_path / "fast" / "metadata").exists() or not any(
        (tmp_path / "fast" / "metadata").rglob("manifest.json")
    )


def test_a_500_during_the_scan_is_transient_and_named(server, tmp_path):
    """A 500 on a range read inside DuckDB's scan comes out as one RemoteSourceError naming the
    URL and status (not DuckDB's wrapped traceback); the next attempt succeeds."""
    server.rules["part-00001.parquet"] = Rule(fail_first=1, only_ranges=True)
    with pytest.raises(RemoteSourceError) as info:
        run_metadata_stage(_cfg(f"{server.url}/{PARTS}"), str(tmp_path / "r"))
    message = str(info.value)
    assert "part-00001.parquet" in message and "HTTP 500" in message
    assert "Traceback" not in message and "\n" not in message
    m = run_metadata_stage(_cfg(f"{server.url}/{PARTS}"), str(tmp_path / "r"))
    assert m["stats"]["rows_read"] == 240_000


def test_missing_and_unreachable_sources(server, tmp_path):
    missing = f"{server.url}/part-00007.parquet"
    with pytest.raises(MetadataSourceNotFound, match=r"part-00007\.parquet.*HTTP 404"):
        run_metadata_stage(_cfg(missing), str(tmp_path / "r"))
    assert len(server.hits("part-00007.parquet")) == 1  # asked once, nothing downloaded
    with FileServer(server.root) as gone:
        dead = f"{gone.url}/part-00000.parquet"
    t0 = time.perf_counter()
    with pytest.raises(RemoteSourceError) as info:
        run_metadata_stage(_cfg(dead), str(tmp_path / "r"))
    assert time.perf_counter() - t0 < 10
    assert str(info.value).startswith(f"cannot read {dead}: ")
    assert "\n" not in str(info.value)


def test_hf_source_offline_is_a_clear_error(tmp_path, monkeypatch):
    """hf:// goes through huggingface_hub's HfFileSystem; with the hub offline the stage says
    so at once (no extension download, no 35 s wait)."""
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = "hf://datasets/laion/relaion2B-en-research-safe/part-00000.parquet"
    t0 = time.perf_counter()
    with pytest.raises(MetadataError, match=r"relaion2B.*HF_HUB_OFFLINE"):
        run_metadata_stage(_cfg(source), str(tmp_path / "r"))
    assert time.perf_counter() - t0 < 10


def test_the_task_retries_a_500_and_not_a_404(prefect_harness, server, tmp_path):
    """Through Prefect: the first two answers about part 1 are 500s; the remote task backs off,
    retries and completes. A 404 fails on its first attempt."""
    from prefect import flow

    from countclip_tasks.metadata import metadata_for

    server.rules["part-00001.parquet"] = Rule(fail_first=2)
    root = str(tmp_path / "root")
    cfg = _cfg(f"{server.url}/{PARTS}")
    task = metadata_for(cfg).with_options(retry_delay_seconds=0.1, retry_jitter_factor=None)

    @flow(name="remote-metadata-retry")
    def run(c: MetadataConfig) -> dict:
        return task(c, root)

    manifest = run(cfg)
    assert manifest["stats"]["rows_read"] == 240_000
    assert [h.status for h in server.hits("part-00001.parquet")][:2] == [500, 500]

    missing = cfg.model_copy(update={"source": f"{server.url}/part-00009.parquet"})
    state = run(missing, return_state=True)
    assert state.is_failed()
    with pytest.raises(MetadataSourceNotFound, match=r"part-00009\.parquet"):
        state.result()
    assert len(server.hits("part-00009.parquet")) == 1


def test_one_handle_read_by_many_threads(server, parts):
    """DuckDB's threads share one file handle and seek, then read, in two calls: each thread
    must get the bytes at its own offset (a race here corrupted parquet pages)."""
    import random
    import threading

    from countclip.data.remote_parquet import RemoteFiles

    data = (parts / "part-00000.parquet").read_bytes()
    fs = RemoteFiles({"http"}, timeout=30).fs("http://x")
    handle = fs.open(f"{server.url}/part-00000.parquet", "rb")
    bad: list[int] = []

    def reader(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(150):
            offset, n = rnd.randrange(len(data) - 5000), rnd.randrange(1, 5000)
            handle.seek(offset)
            if handle.read(n) != data[offset : offset + n]:
                bad.append(offset)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handle.close()
    assert not bad
