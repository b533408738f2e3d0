"""The download stage with real img2dataset against the real loopback image server.

img2dataset needs ~8 s (more on a loaded machine) to start each pass, so the tests share as few
runs as they can: one stage run (two passes) checks accounting, the retry-failed pass, the
shards' content, the λ stage on top, and resume; the kill -9 test (slow) needs two more.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from countclip.config import DownloadConfig, LambdaConfig, WorldConfig
from countclip.data.download.ledger import completed_shards, read_ledger, repair_pass, write_ledger
from countclip.data.download.passes import (
    DownloadStalled,
    DownloadStopped,
    classify_error,
    download_urls,
    read_results,
    shard_paths,
)
from countclip.data.download.runner import (
    CHILD,
    PassJob,
    clear_stop,
    request_stop,
    run_img2dataset,
)
from countclip.data.download.watch import PassWatch
from countclip.data.lambdas import class_frequencies
from countclip.stages.download import run_download_stage
from countclip.stages.lambdas import run_lambda_stage
from countclip.synthetic import ImageServer, Scene, scene_url

REPO = Path(__file__).resolve().parents[1]

# forced misbehaviour -> final failure class (None = ends as a success)
EXPECTED = {
    None: None,
    "404": "http_404",
    "500": "http_5xx",
    "slow": "timeout",
    "truncated": "truncated",
    "not_image": "decode_error",
    "noai": "opt_out",
    "flaky": None,  # 500 first, then fine: the retry-failed pass gets it
}
RETRIED = {"500", "slow", "truncated", "flaky"}  # transient: asked twice; others once


def _warm(srv: ImageServer) -> None:
    """The first render builds textures; concurrent cold requests can exceed a short timeout."""
    urllib.request.urlopen(f"{srv.base_url}/img/1.jpg", timeout=30).read()


def _counting_parquet(path: Path, base_url: str, kinds: list[str | None], first_id: int) -> Path:
    ids, urls, texts, counts = [], [], [], []
    for i, kind in enumerate(kinds):
        sid, count = first_id + i, 2 + i % 4
        url = scene_url(base_url, Scene(sid, count, "star", "red"))
        ids.append(sid)
        urls.append(url + (f"&fail={kind}" if kind else ""))
        texts.append(f"Set of {['two', 'three', 'four', 'five'][count - 2]} red stars")
        counts.append(count)
    words = [t.split()[2] for t in texts]
    pq.write_table(
        pa.table(
            {
                "SAMPLE_ID": pa.array(ids, pa.int64()),
                "URL": urls,
                "TEXT": texts,
                "count": pa.array(counts, pa.int64()),
                "number_start": pa.array([7] * len(ids), pa.int32()),
                "number_end": pa.array([7 + len(w) for w in words], pa.int32()),
                "number_word": words,
            }
        ),
        path,
    )
    return path


def _shard_samples(tars: list[str]) -> list[dict]:
    """Every sample in the tars: its json (img2dataset meta + additional columns) and txt."""
    samples: dict[str, dict] = {}
    for tar in tars:
        with tarfile.open(tar) as tf:
            for member in tf.getmembers():
                stem, ext = member.name.rsplit(".", 1)
                entry = samples.setdefault(f"{tar}/{stem}", {})
                entry[ext] = tf.extractfile(member).read()
    out = []
    for entry in samples.values():
        assert set(entry) == {"jpg", "txt", "json"}, entry.keys()
        meta = json.loads(entry["json"])
        meta["txt"] = entry["txt"].decode()
        out.append(meta)
    return out


def test_classify_error_messages_seen_from_img2dataset():
    assert classify_error("success", None) is None
    assert classify_error("failed_to_download", "HTTP Error 404: Not Found") == "http_404"
    assert classify_error("failed_to_download", "HTTP Error 403: Forbidden") == "http_4xx"
    assert classify_error("failed_to_download", "HTTP Error 503: Unavailable") == "http_5xx"
    assert classify_error("failed_to_download", "timed out") == "timeout"
    msg = "IncompleteRead(5943 bytes read, 10040 more expected)"
    assert classify_error("failed_to_download", msg) == "truncated"
    assert classify_error("failed_to_resize", "Image decoding error") == "decode_error"
    msg = "Use of image disallowed by X-Robots-Tag directive"
    assert classify_error("failed_to_download", msg) == "opt_out"
    msg = "<urlopen error [Errno 111] Connection refused>"
    assert classify_error("failed_to_download", msg) == "connection"
    assert classify_error("missing", None) == "shard_failed"
    assert classify_error("failed_to_download", "something new") == "other"


def test_bad_input_and_config_raise_before_downloading(tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"URL": ["http://127.0.0.1:9/x.jpg"], "TEXT": ["two"]}), src)
    cfg = DownloadConfig()
    with pytest.raises(ValueError, match=r"in\.parquet.*'SAMPLE_ID'"):
        download_urls(src, tmp_path / "o", cfg, additional_columns=["SAMPLE_ID"])
    with pytest.raises(ValueError, match=r"in\.parquet.*'url_link'"):
        download_urls(src, tmp_path / "o", cfg, url_col="url_link")
    with pytest.raises(ValueError, match="opt-outs"):
        download_urls(src, tmp_path / "o", DownloadConfig(disallowed_header_directives=[]))
    with pytest.raises(ValueError, match="opt_out cannot be retried"):
        download_urls(src, tmp_path / "o", DownloadConfig(retry_error_classes=["opt_out"]))
    with pytest.raises(FileNotFoundError, match=r"missing\.parquet"):
        download_urls(tmp_path / "missing.parquet", tmp_path / "o", cfg)
    with pytest.raises(ValueError, match="outputs\\['counting'\\]"):
        run_download_stage({"fingerprint": "x", "outputs": {}}, "counting", cfg, str(tmp_path))


def test_stage_accounts_for_every_url_retries_transient_failures_and_resumes(tmp_path):
    kinds: list[str | None] = [None] * 12
    for kind in EXPECTED:
        if kind is not None:
            kinds += [kind, kind]
    cfg = DownloadConfig(
        timeout=3.0,
        thread_count=8,
        processes_count=2,
        number_sample_per_shard=8,
        retry_failed_passes=1,
    )
    world = WorldConfig(misbehave_fraction=0.0, slow_seconds=6.0)
    with ImageServer(world) as srv:
        _warm(srv)
        src = _counting_parquet(tmp_path / "counting.parquet", srv.base_url, kinds, 10_000)
        source = {"fingerprint": "src-fp", "outputs": {"counting": str(src)}}
        seen: list[tuple[float, str]] = []
        t0 = time.perf_counter()
        manifest = run_download_stage(
            source,
            "counting",
            cfg,
            str(tmp_path / "data"),
            progress=lambda f, m: seen.append((f, m)),
        )
        first_run = time.perf_counter() - t0
        requests = {10_000 + i: srv.request_count(10_000 + i) for i in range(len(kinds))}

    # accounting: every URL is a success or a classified failure
    n = len(kinds)
    expected_failures = Counter(c for k in kinds if (c := EXPECTED[k]) is not None)
    assert manifest["stats"]["input_rows"] == n
    assert (
        manifest["stats"]["successes"] + sum(manifest["stats"]["failures_by_error"].values()) == n
    )
    assert manifest["stats"]["failures_by_error"] == dict(expected_failures)
    assert manifest["stage"] == "download-counting"
    assert manifest["stats"]["images_per_s"] > 0
    assert [p["pass"] for p in manifest["stats"]["passes"]] == [0, 1]
    assert manifest["stats"]["passes"][1]["rows"] >= 2 * len(RETRIED)  # only transient failures
    assert seen and seen[-1][0] == 1.0

    results = pq.read_table(manifest["outputs"]["results"]).to_pylist()
    assert [r["SAMPLE_ID"] for r in results] == [10_000 + i for i in range(n)]
    for row, kind in zip(results, kinds, strict=True):
        assert row["error_class"] == EXPECTED[kind], (kind, row)
        assert (row["status"] == "success") == (EXPECTED[kind] is None)
        # deterministic failures are not retried; transient ones are, once (a good image
        # may time out on a loaded machine and come in the retry pass: either is right)
        if kind is not None:
            assert requests[row["SAMPLE_ID"]] == (2 if kind in RETRIED else 1), (kind, row)
            assert row["pass"] == (1 if kind in RETRIED else 0)
    shards_dir = Path(manifest["directory"]) / "shards"
    assert read_results(shards_dir).num_rows == n

    # the shards hold exactly the successes, once each, with caption and extra columns
    samples = _shard_samples(manifest["outputs"]["shards"])
    ok = {r["SAMPLE_ID"]: r for r in results if r["status"] == "success"}
    assert sorted(s["SAMPLE_ID"] for s in samples) == sorted(ok)
    for s in samples:
        src_row = ok[s["SAMPLE_ID"]]
        assert s["txt"] == src_row["caption"]
        assert (s["count"], s["number_word"]) == (src_row["count"], src_row["number_word"])
        assert s["number_end"] - s["number_start"] == len(s["number_word"])
    assert manifest["outputs"]["shards"] == shard_paths(shards_dir)

    # λ on top: frequencies of what was really downloaded
    freqs = class_frequencies(manifest)
    assert sum(freqs.values()) == len(ok)
    assert freqs == {c: sum(1 for r in ok.values() if r["count"] == c) for c in range(2, 11)}
    lam = run_lambda_stage(manifest, LambdaConfig(scheme="log"), str(tmp_path / "data"))
    assert Path(lam["outputs"]["plot"]).exists()

    # resume: the stage is done (same manifest); download_urls skips finished passes
    t0 = time.perf_counter()
    assert run_download_stage(source, "counting", cfg, str(tmp_path / "data")) == manifest
    extra = ["SAMPLE_ID", "count", "number_start", "number_end", "number_word"]
    again = download_urls(src, shards_dir, cfg, additional_columns=extra)
    assert all(p["skipped"] for p in again["passes"])
    assert again["successes"] == manifest["stats"]["successes"]
    assert time.perf_counter() - t0 < first_run / 2
    # asking for fewer passes drops the later ones: flaky samples fall back to their pass-0 500
    fewer = download_urls(
        src,
        shards_dir,
        cfg.model_copy(update={"retry_failed_passes": 0}),
        additional_columns=extra,
    )
    assert [p["pass"] for p in fewer["passes"]] == [0]
    assert fewer["successes"] + fewer["failures"] == n
    got_in_pass_1 = sum(1 for r in results if r["status"] == "success" and r["pass"] == 1)
    assert fewer["successes"] == manifest["stats"]["successes"] - got_in_pass_1
    now = read_results(shards_dir).to_pylist()
    assert all(r["pass"] == 0 for r in now)
    assert all(r["status"] != "success" for r, k in zip(now, kinds, strict=True) if k == "flaky")
    with pytest.raises(ValueError, match="number_sample_per_shard"):
        download_urls(
            src,
            shards_dir,
            cfg.model_copy(update={"number_sample_per_shard": 5}),
            additional_columns=extra,
        )


_RUNNER = """
import sys
from countclip.config import DownloadConfig
from countclip.data.download.passes import download_urls
cfg = DownloadConfig.model_validate_json(sys.argv[3])
download_urls(sys.argv[1], sys.argv[2], cfg, additional_columns=["SAMPLE_ID"])
"""


def _group_alive(pgid: int) -> bool:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


@pytest.mark.slow
@pytest.mark.long
def test_kill_9_mid_download_then_rerun_gives_every_sample_exactly_once(tmp_path):
    n = 160
    cfg = DownloadConfig(
        timeout=10.0,
        thread_count=2,
        processes_count=2,
        number_sample_per_shard=8,
    )
    out = tmp_path / "shards"
    world = WorldConfig(misbehave_fraction=0.0, slow_seconds=0.25)
    with ImageServer(world) as srv:
        _warm(srv)
        src = _counting_parquet(tmp_path / "in.parquet", srv.base_url, ["slow"] * n, 50_000)
        runner = subprocess.Popen(
            [sys.executable, "-c", _RUNNER, str(src), str(out), cfg.model_dump_json()],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while len(list(out.glob("pass-0/*_stats.json"))) < 3:
            assert runner.poll() is None, "the download finished before it could be killed"
            assert time.monotonic() < deadline, "no shard finished in time"
            time.sleep(0.1)
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
        # the img2dataset child group notices its parent died and takes itself down
        child = int((out / "logs" / "pass-0.pid").read_text())
        deadline = time.monotonic() + 15
        while _group_alive(child):
            assert time.monotonic() < deadline, "img2dataset workers outlived the killed caller"
            time.sleep(0.2)
        finished = {p.name: p.stat().st_mtime_ns for p in out.glob("pass-0/*_stats.json")}
        assert 3 <= len(finished) < n // 8, "kill must land mid-download"
        # the ledger: what the caller saw finished before it died (the only shards kept)
        ledgered = {f"{sid:05d}_stats.json" for sid in read_ledger(out / "pass-0")}
        assert ledgered <= set(finished) and len(ledgered) >= 2, (ledgered, finished)

        summary = download_urls(src, out, cfg, additional_columns=["SAMPLE_ID"])
        requests = {50_000 + i: srv.request_count(50_000 + i) for i in range(n)}

    assert summary["successes"] == n and summary["failures"] == 0
    ids = [s["SAMPLE_ID"] for s in _shard_samples(shard_paths(out))]
    assert len(ids) == len(set(ids)) == n  # no duplicates, nothing lost
    assert set(ids) == {50_000 + i for i in range(n)}
    results = read_results(out)
    assert results.column("status").to_pylist() == ["success"] * n
    # resumed, not restarted: ledgered shards were kept and not re-fetched; a shard that
    # finished unseen (between the caller's last look and its death) was redone
    for name, mtime in finished.items():
        same = (out / "pass-0" / name).stat().st_mtime_ns == mtime
        assert same == (name in ledgered), name
    shard_of = {r["SAMPLE_ID"]: r["shard"] for r in results.to_pylist()}
    kept = {f"pass-0/{name.replace('_stats.json', '.tar')}" for name in ledgered}
    assert all(requests[sid] == 1 for sid, shard in shard_of.items() if shard in kept)


def _fake_shard(pass_dir: Path, sid: int, end_time: float) -> None:
    """What img2dataset leaves for a finished shard: tar, parquet, then the stats file."""
    pass_dir.mkdir(parents=True, exist_ok=True)
    (pass_dir / f"{sid:05d}.tar").write_bytes(b"")
    pq.write_table(pa.table({"key": [f"{sid:05d}0000"]}), pass_dir / f"{sid:05d}.parquet")
    stats = {"count": 1, "successes": 1, "start_time": end_time - 1, "end_time": end_time}
    (pass_dir / f"{sid:05d}_stats.json").write_text(json.dumps(stats))


def test_only_ledgered_shards_count_and_the_others_are_redone(tmp_path):
    pass_dir = tmp_path / "pass-0"
    for sid in range(4):
        _fake_shard(pass_dir, sid, 1000.0 + sid)
    (pass_dir / "00004_stats.json").write_text('{"count": 1, "succ')  # cut by a crash
    # seen finished by the living parent: 0 and 1; 2 was rewritten since (another end time);
    # 3 finished after the parent died
    write_ledger(pass_dir, {0: 1000.0, 1: 1001.0, 2: 999.0})
    assert sorted(completed_shards(pass_dir)) == [0, 1]
    assert repair_pass(pass_dir) == ["00002", "00003", "00004"]
    assert sorted(p.name for p in pass_dir.iterdir()) == [
        f"0000{sid}{suffix}" for sid in (0, 1) for suffix in (".parquet", ".tar", "_stats.json")
    ]
    assert sorted(completed_shards(pass_dir)) == [0, 1]
    # no ledger at all (a pass killed before its first shard was seen): nothing is trusted
    other = tmp_path / "pass-1"
    _fake_shard(other, 0, 5.0)
    assert completed_shards(other) == {}
    assert repair_pass(other) == ["00000"]
    # the rerun: the watch ledgers what img2dataset writes in place of shard 2, even though
    # the stale entry for 2 is still in the ledger file
    job = PassJob("pass-0", {"output_folder": str(pass_dir)}, 40, 4, tmp_path / "logs", 60.0)
    watch = PassWatch(job)
    _fake_shard(pass_dir, 2, 2002.0)
    _fake_shard(pass_dir, 3, 2003.0)
    watch.finish(returncode=0)
    assert read_ledger(pass_dir) == {0: 1000.0, 1: 1001.0, 2: 2002.0, 3: 2003.0}
    assert sorted(completed_shards(pass_dir)) == [0, 1, 2, 3]


def test_the_child_keeps_torch_out_and_img2dataset_still_imports():
    """What every process of a pass runs first (the child file's top level, re-run by spawn as
    ``__mp_main__``) keeps torch out, and img2dataset (through webdataset) still imports."""
    probe = (
        "import runpy, sys\n"
        f"runpy.run_path({str(CHILD)!r}, run_name='__mp_main__')\n"
        "from img2dataset import download\n"
        "from webdataset import TarWriter\n"
        "assert sys.modules['torch'] is None, sys.modules['torch']\n"
    )
    done = subprocess.run([sys.executable, "-P", "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_requested_stop_starts_no_child(tmp_path):
    job = PassJob(
        name="pass-0",
        kwargs={"output_folder": str(tmp_path / "pass-0")},
        rows=1,
        total_shards=1,
        log_dir=tmp_path / "logs",
        stall_timeout=5.0,
    )
    request_stop("test")
    try:
        with pytest.raises(DownloadStopped, match="pass-0 not started: test"):
            run_img2dataset(job)
    finally:
        clear_stop()
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_a_stalled_child_is_stopped_within_stall_timeout(tmp_path):
    """SIGSTOP the img2dataset group mid-pass: the pass must fail with DownloadStalled about
    ``stall_timeout`` later (not hang), naming the pass, its folder and the setting, and leave
    no process of the group behind."""
    stall = 4.0
    cfg = DownloadConfig(
        timeout=10.0,
        thread_count=2,
        processes_count=2,
        number_sample_per_shard=8,
        retry_failed_passes=0,
        stall_timeout=stall,
    )
    out = tmp_path / "shards"
    outcome: list[BaseException | None] = []

    def download(src: Path) -> None:
        try:
            download_urls(src, out, cfg, additional_columns=["SAMPLE_ID"])
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with ImageServer(WorldConfig(misbehave_fraction=0.0, slow_seconds=0.25)) as srv:
        _warm(srv)
        src = _counting_parquet(tmp_path / "in.parquet", srv.base_url, ["slow"] * 200, 70_000)
        worker = threading.Thread(target=download, args=(src,), daemon=True)
        worker.start()
        deadline = time.monotonic() + 120
        while not list(out.glob("pass-0/*_stats.json")):  # the pass is really working
            assert worker.is_alive(), f"the download ended first: {outcome}"
            assert time.monotonic() < deadline, "no shard finished in time"
            time.sleep(0.05)
        group = int((out / "logs" / "pass-0.pid").read_text())
        os.killpg(group, signal.SIGSTOP)
        stopped_at = time.monotonic()
        worker.join(timeout=stall + 30)
        waited = time.monotonic() - stopped_at

    assert not worker.is_alive(), "the stalled pass was never stopped"
    assert waited < stall + 5, f"stopped {waited:.1f} s after the stall began (limit {stall} s)"
    (error,) = outcome
    assert isinstance(error, DownloadStalled), repr(error)
    for part in ("pass-0", str(out / "pass-0"), "stall_timeout", f"{stall:g} s"):
        assert part in str(error), (part, str(error))
    assert not _group_alive(group), "processes of the stalled img2dataset group survived"
