"""Downloads on img2dataset's ray distributor: a real local Ray cluster, started by the
img2dataset child of each pass, against the real loopback image server.

Ray starts slowly on two busy cores (10-20 s a pass), so one slow test does the whole story on
Ray: the accounting, a Ray worker killed mid-shard (Ray re-executes its shard in the same
pass), then ``kill -9`` of the caller in the retry-failed pass (the local cluster goes down
with it) and a rerun that ends with every sample exactly once. The settings checks are quick
and always run.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError
from test_download import _counting_parquet, _shard_samples, _warm

from countclip.config import DownloadConfig, WorldConfig, is_speed_only, semantic_dump
from countclip.data.download import engines
from countclip.data.download.engines import ClusterUnreachable, check_cluster
from countclip.data.download.passes import download_urls, read_results, shard_paths
from countclip.stages.download import run_download_stage
from countclip.synthetic import ImageServer

REPO = Path(__file__).resolve().parents[1]
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray is not installed: pip install -e '.[ray]' (make setup installs it)",
)


def test_ray_settings_are_speed_only_and_checked(tmp_path):
    cfg = DownloadConfig(distributor="ray", ray_address="auto")
    assert is_speed_only(DownloadConfig, "ray_address")
    assert is_speed_only(DownloadConfig, "distributor")
    assert semantic_dump(cfg) == semantic_dump(DownloadConfig())  # same stage fingerprint
    bad = DownloadConfig(ray_address="auto")  # distributor is multiprocessing
    with pytest.raises(ClusterUnreachable, match=r"download\.ray_address='auto' is set"):
        download_urls(tmp_path / "in.parquet", tmp_path / "out", bad)
    assert not (tmp_path / "out").exists()
    check_cluster(DownloadConfig())  # the default needs nothing
    with pytest.raises(ValidationError, match=r"distributor\n.*'multiprocessing' or 'ray'"):
        DownloadConfig(distributor="pyspark")  # Ray is the engine this project runs and tests


def test_a_deep_tmpdir_moves_a_local_cluster_to_a_short_one(tmp_path, monkeypatch):
    """Ray's sockets live under TMPDIR: a CI checkout's deep per-run TMPDIR made them longer
    than AF_UNIX allows and the local cluster never started."""
    deep = "/check/work/main/.pytest-tmp/run-22191/tmp"
    monkeypatch.delenv("RAY_TMPDIR", raising=False)
    assert engines.local_temp_dir("/tmp") is None
    short = engines.local_temp_dir(deep)
    assert short is not None and len(short) < len("/tmp") + 30
    deep_dir = tmp_path / ("d" * 40)  # tempfile only takes a TMPDIR that exists
    deep_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(deep_dir))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    assert engine_setup_init(DownloadConfig(distributor="ray"))["_temp_dir"] == short
    assert "_temp_dir" not in engine_setup_init(
        DownloadConfig(distributor="ray", ray_address="auto")
    )
    monkeypatch.setenv("RAY_TMPDIR", deep)  # the user's choice stands
    assert "_temp_dir" not in engine_setup_init(DownloadConfig(distributor="ray"))


def engine_setup_init(cfg: DownloadConfig) -> dict:
    return engines.engine_setup(cfg)["ray_init"]


@needs_ray
def test_an_unreachable_ray_address_fails_before_anything_is_written(tmp_path):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("0.0.0.0", 0))
        port = closed.getsockname()[1]
    src = tmp_path / "in.parquet"
    _counting_parquet(src, "http://127.0.0.1:9", [None] * 4, 1)
    source = {"fingerprint": "src", "outputs": {"counting": str(src)}}
    for address, says in (
        (f"127.0.0.1:{port}", rf"no Ray cluster answers at .*:{port}"),
        ("ray://127.0.0.1:10001", "expected 'auto' or the head's 'host:port'"),
        ("no-port-here", "download.ray_address='no-port-here'"),
    ):
        cfg = DownloadConfig(distributor="ray", ray_address=address)
        with pytest.raises(ClusterUnreachable, match=r"download\.ray_address=") as info:
            download_urls(src, tmp_path / "out", cfg)
        assert info.match(says)
        with pytest.raises(ClusterUnreachable, match=r"download\.ray_address="):
            run_download_stage(source, "counting", cfg, str(tmp_path / "data"))
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "data").exists()


@needs_ray
def test_a_ray_address_that_never_answers_stops_the_child_naming_the_setting(tmp_path, monkeypatch):
    """Something accepts the connection but never speaks Ray: ray.init would retry for
    minutes; the child gives up after engines.CONNECT_SECONDS and says which setting."""
    monkeypatch.setattr(engines, "CONNECT_SECONDS", 3.0)
    src = _counting_parquet(tmp_path / "in.parquet", "http://127.0.0.1:9", [None] * 4, 1)
    with socket.socket() as silent:
        silent.bind(("0.0.0.0", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        cfg = DownloadConfig(distributor="ray", ray_address=address, retry_failed_passes=0)
        t0 = time.monotonic()
        with pytest.raises(ClusterUnreachable) as info:
            download_urls(src, tmp_path / "out", cfg)
    assert f"download.ray_address={address!r}" in str(info.value)
    assert "no Ray cluster answered within 3 s" in str(info.value)
    assert time.monotonic() - t0 < 60
    assert not list((tmp_path / "out").rglob("*.tar")), "no shard may be written"
    pid = int((tmp_path / "out" / "logs" / "pass-0.pid").read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


# --------------------------------------------------------------------------- one run on Ray

_CALLER = """
import sys
from countclip.config import DownloadConfig
from countclip.data.download.passes import download_urls
cfg = DownloadConfig.model_validate_json(sys.argv[3])
download_urls(sys.argv[1], sys.argv[2], cfg, additional_columns=["SAMPLE_ID"])
"""


def _ray_tasks(root: psutil.Process) -> list[psutil.Process]:
    """Ray workers under ``root`` that are running a shard (img2dataset's ray_download)."""
    found = []
    for proc in root.children(recursive=True):
        try:
            if proc.cmdline()[:1] and proc.cmdline()[0].startswith("ray::ray_download"):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _writing(root: psutil.Process) -> tuple[psutil.Process, Path] | None:
    """A Ray worker under ``root`` with a shard's tar open, and that tar."""
    for proc in _ray_tasks(root):
        try:
            tars = [Path(f.path) for f in proc.open_files() if f.path.endswith(".tar")]
        except psutil.Error:
            continue
        if tars:
            return proc, tars[0]
    return None


def _alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{proc.pid} {proc.name()}")
        except psutil.Error:
            continue
    return out


def _stats(out: Path) -> int:
    """Finished shards of pass 0."""
    return len(list(out.glob("pass-0/*_stats.json")))


@needs_ray
@pytest.mark.slow
@pytest.mark.long
def test_ray_download_survives_a_killed_worker_and_a_killed_caller_every_sample_once(
    tmp_path, monkeypatch
):
    # 20 shards of 10; two URLs a shard time out (3 s), so each shard takes ~3 s: pass 0 lasts
    # long enough to kill a worker in it, and pass 1 (the flaky URLs and the timeouts again,
    # 3 shards) long enough to kill the caller in it
    kinds: list[str | None] = []
    for i in range(200):
        kinds.append({3: "404", 5: "slow", 7: "noai", 9: "flaky", 15: "slow"}.get(i % 20))
    expected = {"http_404": 10, "opt_out": 10, "timeout": 20}
    n, ok = len(kinds), len(kinds) - 40
    cfg = DownloadConfig(
        distributor="ray",
        processes_count=2,
        thread_count=2,
        number_sample_per_shard=10,
        timeout=3.0,
        retry_failed_passes=1,
    )
    out = tmp_path / "shards"
    token_file = Path.home() / ".ray" / "auth_token"  # Ray's default home for its token
    had_token = token_file.exists()
    with ImageServer(WorldConfig(misbehave_fraction=0.0, slow_seconds=6.0)) as srv:
        _warm(srv)
        src = _counting_parquet(tmp_path / "in.parquet", srv.base_url, kinds, 70_000)
        # a TMPDIR as deep as a CI checkout's, where Ray's default sockets would not fit
        deep_tmp = tmp_path / "tmp"
        deep_tmp.mkdir()
        assert len(str(deep_tmp)) > 40, "deep enough for Ray's sockets not to fit under it"
        monkeypatch.setattr("tempfile.tempdir", str(deep_tmp))  # the rerun, in this process
        caller_log = tmp_path / "caller.log"  # shown when the caller ends early
        with caller_log.open("wb") as log:
            caller = subprocess.Popen(
                [sys.executable, "-c", _CALLER, str(src), str(out), cfg.model_dump_json()],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TMPDIR": str(deep_tmp)},
            )
        root = psutil.Process(caller.pid)

        def wait_for(what: str, ready, seconds: float = 240):
            deadline = time.monotonic() + seconds
            while not (found := ready()):
                if caller.poll() is not None:
                    tail = caller_log.read_text(errors="replace")[-4000:]
                    pytest.fail(f"the caller ended (rc {caller.returncode}) before {what}:\n{tail}")
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                time.sleep(0.1)
            return found

        # a worker killed while it writes a shard: Ray re-executes the shard's task, and pass 0
        # finishes every shard (img2dataset's ray distributor has no retry of its own)
        wait_for("two shards", lambda: _stats(out) >= 2)
        victim, tar = wait_for("a worker writing a shard", lambda: _writing(root))
        victim.kill()
        wait_for(f"Ray to redo {tar.name}", tar.with_name(f"{tar.stem}_stats.json").exists)
        assert not _alive([victim])
        wait_for("pass 0 to finish", lambda: _stats(out) == 20)

        # kill -9 of the caller in pass 1: the child, the local cluster and its workers go down
        wait_for("pass 1 to write", lambda: list(out.glob("pass-1/*.tar")))
        ours = root.children(recursive=True)
        names = {p.name() for p in ours if _alive([p])}
        assert {"raylet", "gcs_server"} <= names, names
        assert len(list(out.glob("pass-1/*_stats.json"))) < 3, "the caller must die mid-pass"
        caller.kill()
        caller.wait()
        deadline = time.monotonic() + 20
        while left := _alive(ours):
            assert time.monotonic() < deadline, f"outlived the killed caller: {left}"
            time.sleep(0.2)

        # the rerun keeps pass 0 and resumes the retry-failed pass, on Ray again
        summary = download_urls(src, out, cfg, additional_columns=["SAMPLE_ID"])
        leftovers = _alive(psutil.Process().children(recursive=True))

    assert summary["successes"] == ok and summary["failures"] == n - ok
    assert summary["failures_by_error"] == expected
    assert [(p["pass"], p.get("skipped", False)) for p in summary["passes"]] == [
        (0, True),
        (1, False),
    ]
    results = read_results(out).to_pylist()
    assert len(results) == n
    assert Counter(r["error_class"] for r in results if r["error_class"]) == Counter(expected)
    flaky = {70_000 + i for i, kind in enumerate(kinds) if kind == "flaky"}
    assert all(r["status"] == "success" for r in results if r["SAMPLE_ID"] in flaky)
    ids = [s["SAMPLE_ID"] for s in _shard_samples(shard_paths(out))]
    assert len(ids) == len(set(ids)) == ok  # every success once: nothing lost, no duplicate
    assert set(ids) == {r["SAMPLE_ID"] for r in results if r["status"] == "success"}
    assert not [p for p in leftovers if "ray" in p or "gcs" in p], leftovers
    assert token_file.exists() == had_token, "a pass's local cluster wrote ~/.ray/auth_token"
