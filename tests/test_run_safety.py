"""Runs that cannot hang, collide or leave orphans: a full disk is fatal at once and not
retried, SIGTERM ends a build within seconds (and a rerun completes it, every sample once),
and ``kill -9`` leaves no process of the run behind (img2dataset, its pool, Prefect's server).

The stalled-child test lives with the download tests (tests/test_download.py).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from countclip.config import DownloadConfig, WorldConfig
from countclip.data.download.runner import stop_requested
from countclip.synthetic import ImageServer, Scene, scene_url
from countclip_flows.interrupts import GRACE_SECONDS, Interrupted, stop_on_signals

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("countclip")
BUILD = [
    "build",
    "--config",
    str(REPO / "configs" / "synthetic-small.yaml"),
    "--set",
    "world.rows=400",
    "--set",
    "download.retry_failed_passes=0",
    "--set",
    "download.number_sample_per_shard=10",
    "--set",
    "download.thread_count=2",
]


# --------------------------------------------------------------------------- signals, in-process


def test_sigterm_raises_in_the_main_thread_and_stops_downloads() -> None:
    with pytest.raises(Interrupted) as info, stop_on_signals(grace=60) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises in here
    assert info.value.exit_code == stop.exit_code == 128 + signal.SIGTERM
    assert stop_requested() is None  # cleared when the block ends


def test_sigterm_stops_downloads_while_another_handler_owns_it() -> None:
    """Prefect's flow engine swaps in its own SIGTERM handler for the flow; the downloads in
    its worker threads must still hear of the signal."""

    class Bridge(BaseException):
        pass

    def prefect_like(signum: int, frame: object) -> None:
        raise Bridge

    with stop_on_signals(grace=60) as stop:
        assert stop_requested() is None
        own = signal.signal(signal.SIGTERM, prefect_like)
        try:
            with pytest.raises(Bridge):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        finally:
            signal.signal(signal.SIGTERM, own)
        deadline = time.monotonic() + 5
        while stop_requested() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop_requested() == "SIGTERM received"
        assert stop.signum == signal.SIGTERM
    assert stop_requested() is None


# --------------------------------------------------------------------------- a full disk


def _star_urls(path: Path, base_url: str, ids: range) -> Path:
    """A URL list (SAMPLE_ID, URL, TEXT) of red stars, 2..5 of them, served by ``base_url``."""
    urls = [scene_url(base_url, Scene(i, 2 + i % 4, "star", "red")) for i in ids]
    pq.write_table(
        pa.table({"SAMPLE_ID": list(ids), "URL": urls, "TEXT": ["two"] * len(ids)}), path
    )
    return path


def _unshare_works(tmp_path: Path) -> str | None:
    """None if a user+mount namespace with a tmpfs can be made here, else why not."""
    mnt = tmp_path / "probe"
    mnt.mkdir()
    cmd = f"mount -t tmpfs -o size=64k tmpfs {mnt} && true"
    try:
        proc = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", cmd],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except FileNotFoundError:
        return "no unshare(1) on this machine"
    return None if proc.returncode == 0 else f"unshare failed: {proc.stderr.strip()}"


_ENOSPC_RUN = """
import json, sys
from countclip.atomic import DiskFullError
from countclip.config import DownloadConfig
from countclip.stages.download import run_download_stage
from countclip_tasks.retrying import retry_transient
from prefect.states import Failed
source, data_root, cfg = sys.argv[1], sys.argv[2], DownloadConfig.model_validate_json(sys.argv[3])
report = {"raised": None}
try:
    run_download_stage({"fingerprint": "s", "outputs": {"counting": source}}, "counting", cfg,
                       data_root)
except BaseException as exc:
    report = {"raised": type(exc).__name__, "message": str(exc),
              "disk_full": isinstance(exc, DiskFullError),
              "retried": retry_transient(None, None, Failed(data=exc))}
pid_files = __import__("glob").glob(data_root + "/download-counting/*/shards/logs/pass-0.pid")
report["child"] = int(open(pid_files[0]).read()) if pid_files else None
print(json.dumps(report))
"""


@pytest.mark.slow
def test_a_full_disk_is_fatal_names_the_path_and_is_not_retried(tmp_path: Path) -> None:
    """A real ENOSPC: the data root is a 1.2 MB tmpfs (in a private mount namespace), enough
    for a few shards of 300 images. The stage must fail fast (not after stall_timeout) with a
    DiskFullError naming the pass folder, the free space and the space still needed, and the
    retry condition must refuse it."""
    if why := _unshare_works(tmp_path):
        pytest.skip(why)
    data = tmp_path / "data"
    data.mkdir()
    stall = 120.0
    cfg = DownloadConfig(
        timeout=10.0,
        processes_count=1,
        thread_count=4,
        number_sample_per_shard=50,
        retry_failed_passes=0,
        stall_timeout=stall,
    )
    with ImageServer(WorldConfig(misbehave_fraction=0.0)) as srv:
        urllib.request.urlopen(f"{srv.base_url}/img/1.jpg", timeout=30).read()  # warm
        source = _star_urls(tmp_path / "in.parquet", srv.base_url, range(90_000, 90_300))
        script = tmp_path / "run.py"
        script.write_text(_ENOSPC_RUN)
        run = shlex.join(
            [sys.executable, str(script), str(source), str(data), cfg.model_dump_json()]
        )
        started = time.monotonic()
        proc = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
             f"mount -t tmpfs -o size=1200k tmpfs {shlex.quote(str(data))} && exec {run}"],
            capture_output=True, text=True, timeout=300, cwd=REPO,
        )  # fmt: skip
        seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["raised"] == "DiskFullError" and report["disk_full"], report
    message = report["message"]
    assert f"{data}/download-counting/" in message and "/shards/pass-0" in message, message
    assert "no space left on device" in message and "MB free" in message, message
    assert "needs about" in message, message  # shards finished before: the rest is estimated
    assert report["retried"] is False
    assert seconds < stall, f"took {seconds:.0f} s: found by the stall limit, not as ENOSPC"
    assert report["child"] is not None and not _group_alive(report["child"])


def _group_alive(pgid: int) -> bool:
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return False


# --------------------------------------------------------------------------- the CLI, killed


def _start_build(data: Path, log: Path) -> subprocess.Popen[bytes]:
    """``countclip build`` in its own session (so its processes can be found afterwards)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [str(CLI), *BUILD, "--data-root", str(data)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
        )


def _wait_for_a_finished_shard(cli: subprocess.Popen[bytes], data: Path, log: Path) -> None:
    deadline = time.monotonic() + 400
    while not list(data.glob("download-*/*/shards/pass-0/*_stats.json")):
        assert cli.poll() is None, f"the build ended first:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no shard finished in time"
        time.sleep(0.05)
    assert list(data.glob("download-*/*/shards/logs/pass-0.pid"))


def _survivors(session: int, known: list[psutil.Process], grace: float) -> list[str]:
    """Processes of the run still alive after ``grace`` seconds: in its session, or among the
    descendants seen before it was signalled (a child could have left the session)."""
    deadline = time.monotonic() + grace
    while True:
        alive: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) == session:
                    alive[proc.pid] = proc
            except (ProcessLookupError, PermissionError):
                continue
        alive.update({p.pid: p for p in known if p.is_running()})
        described = []
        for proc in alive.values():
            try:
                if proc.status() != psutil.STATUS_ZOMBIE:
                    described.append(f"{proc.pid}: {' '.join(proc.cmdline())[:100]}")
            except psutil.NoSuchProcess:
                continue
        if not described or time.monotonic() > deadline:
            return described
        time.sleep(0.2)


def _descendants(pid: int) -> list[psutil.Process]:
    children = psutil.Process(pid).children(recursive=True)
    cmdlines = [" ".join(c.cmdline()) for c in children]
    assert any("uvicorn" in c for c in cmdlines), cmdlines  # Prefect's temporary server
    assert any("img2dataset_child.py" in c for c in cmdlines), cmdlines
    return children


def _samples_in(tars: list[str]) -> list[int]:
    ids = []
    for tar in tars:
        with tarfile.open(tar) as archive:
            for member in archive.getmembers():
                if member.name.endswith(".json"):
                    ids.append(json.loads(archive.extractfile(member).read())["SAMPLE_ID"])
    return ids


@pytest.mark.slow
@pytest.mark.parametrize("to", ["group", pytest.param("process", marks=pytest.mark.long)])
def test_sigterm_ends_a_build_within_seconds_and_a_rerun_gets_every_sample_once(
    tmp_path: Path, to: str
) -> None:
    """SIGTERM to the process, or to its whole process group (what ``timeout``, SLURM and
    Kubernetes send): either way the run ends within seconds with 143, says why, leaves no
    process behind, and a rerun completes it."""
    data, log = tmp_path / "data", tmp_path / "first.log"
    cli = _start_build(data, log)
    _wait_for_a_finished_shard(cli, data, log)
    known = _descendants(cli.pid)
    if to == "group":
        os.killpg(cli.pid, signal.SIGTERM)  # the CLI leads its own session and group
    else:
        os.kill(cli.pid, signal.SIGTERM)
    sent = time.monotonic()
    try:
        code = cli.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(cli.pid, signal.SIGKILL)
        pytest.fail("the build ignored SIGTERM for a minute")
    seconds = time.monotonic() - sent
    output = log.read_text()
    assert code == 128 + signal.SIGTERM, output[-3000:]
    assert seconds < GRACE_SECONDS, f"{seconds:.1f} s to end after SIGTERM"
    assert "stopped by SIGTERM" in output and "exiting now" not in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert _survivors(cli.pid, known, grace=3) == []

    rerun = subprocess.run(
        [str(CLI), *BUILD, "--data-root", str(data), "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    result = _json_tail(rerun.stdout)
    for table in ("counting", "common"):
        manifest = result[table]
        results = pq.read_table(manifest["outputs"]["results"]).to_pylist()
        n = manifest["stats"]["input_rows"]
        assert [r["row"] for r in results] == list(range(n)), table
        assert len({r["SAMPLE_ID"] for r in results}) == n, table
        ok = sorted(r["SAMPLE_ID"] for r in results if r["status"] == "success")
        assert ok and sorted(_samples_in(manifest["outputs"]["shards"])) == ok, table


@pytest.mark.slow
@pytest.mark.long
def test_kill_9_of_a_build_leaves_no_process_of_the_run(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "build.log"
    cli = _start_build(data, log)
    _wait_for_a_finished_shard(cli, data, log)
    known = _descendants(cli.pid)
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait(timeout=30)
    assert _survivors(cli.pid, known, grace=5) == []


@pytest.mark.slow
@pytest.mark.long
def test_two_concurrent_builds_on_one_data_root_end_with_the_same_data(tmp_path: Path) -> None:
    """The second build waits for the first at each stage's lock, then takes its cache hits:
    one writer per stage directory, one world (shared by identity, not port), the same data."""
    data = tmp_path / "data"
    runs = []
    # The first downloads with one process and one thread (speed settings: the same stages),
    # so that its download stage holds its lock a while.
    slow = ["--set", "download.processes_count=1", "--set", "download.thread_count=1"]
    for name in ("first", "second"):
        out, log = tmp_path / f"{name}.json", tmp_path / f"{name}.log"
        extra = slow if name == "first" else []
        with open(out, "wb") as stdout, open(log, "wb") as stderr:
            runs.append(
                subprocess.Popen(
                    [str(CLI), *BUILD, *extra, "--data-root", str(data), "--json"],
                    stdout=stdout,
                    stderr=stderr,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    cwd=REPO,
                )
            )
    # Both start at once (each first starts its temporary Prefect server, ~10 s): whichever
    # reaches a stage second waits at its lock. Starting the second after the first's first
    # shard raced: the small build had finished before the second's server was up.
    codes = [run.wait(timeout=900) for run in runs]
    logs = [(tmp_path / f"{n}.log").read_text() for n in ("first", "second")]
    assert codes == [0, 0], logs[1][-3000:] + logs[0][-3000:]
    assert "waiting for another run" in logs[0] + logs[1], logs[1][-3000:] + logs[0][-3000:]
    first, second = (_json_tail((tmp_path / f"{n}.json").read_text()) for n in ("first", "second"))
    for table in ("counting", "common"):
        assert second[table]["fingerprint"] == first[table]["fingerprint"], table
        assert second[table]["run_id"] == first[table]["run_id"], f"{table} was rebuilt"
        assert second[table]["outputs"] == first[table]["outputs"], table
    # one directory per stage: nothing written twice beside it
    for stage in ("download-counting", "download-common"):
        assert len([p for p in (data / stage).iterdir() if not p.name.startswith(".")]) == 1


def _json_tail(output: str) -> dict:
    """The ``--json`` result the CLI prints after its log lines."""
    return json.loads(output[output.index("{") :])


@pytest.mark.slow
def test_a_rerun_after_a_full_disk_was_freed_succeeds(tmp_path: Path) -> None:
    """The pass log keeps every attempt: an earlier attempt's "No space left on device" (the
    disk was full then) must not fail the rerun after the space was freed."""
    from countclip.data.download.passes import download_urls

    out = tmp_path / "shards"
    (out / "logs").mkdir(parents=True)
    (out / "logs" / "pass-0.log").write_text(
        "OSError: [Errno 28] No space left on device: '/data/shards/pass-0/_tmp/3.feather'\n"
    )
    cfg = DownloadConfig(processes_count=1, thread_count=8, number_sample_per_shard=10,
                         retry_failed_passes=0, timeout=10.0)  # fmt: skip
    with ImageServer(WorldConfig(misbehave_fraction=0.0)) as srv:
        source = _star_urls(tmp_path / "in.parquet", srv.base_url, range(91_000, 91_020))
        summary = download_urls(source, out, cfg, additional_columns=["SAMPLE_ID"])
    assert summary["successes"] == 20
    log = (out / "logs" / "pass-0.log").read_text()
    assert "No space left" in log and "===== countclip: pass-0 started" in log


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_every_download_failing_is_an_error_and_never_cached(tmp_path: Path) -> None:
    """Every URL refused: the stage fails naming download.min_success and the failure class,
    writes no manifest, and a rerun once the server answers downloads them."""
    from countclip.data.download.passes import TooFewDownloads
    from countclip.stages.download import plan_download_stage, run_download_stage

    port = _free_port()
    world = WorldConfig(misbehave_fraction=0.0, port=port)
    base = f"http://127.0.0.1:{port}"
    table = _star_urls(tmp_path / "counting.parquet", base, range(92_000, 92_020))
    source = {"fingerprint": "src", "run_id": "src", "outputs": {"counting": str(table)}}
    cfg = DownloadConfig(processes_count=1, thread_count=8, number_sample_per_shard=10,
                         retry_failed_passes=0, timeout=5.0)  # fmt: skip
    root = str(tmp_path / "data")
    with pytest.raises(TooFewDownloads, match=r"download.min_success: 0 of 20 counting URLs"):
        run_download_stage(source, "counting", cfg, root)
    assert plan_download_stage(source, "counting", cfg, root).completed() is None
    with ImageServer(world):
        manifest = run_download_stage(source, "counting", cfg, root)
    assert manifest["stats"]["successes"] == 20


@pytest.mark.slow
def test_a_download_leaves_nothing_in_the_temp_folder(tmp_path: Path, monkeypatch) -> None:
    """img2dataset's pool workers import wandb, whose import makes temp folders that only an
    atexit hook removes; the workers leave without it. A pass gets its own temp folder, gone
    when the pass ends."""
    from countclip.data.download.passes import download_urls

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    cfg = DownloadConfig(processes_count=2, thread_count=4, number_sample_per_shard=10,
                         retry_failed_passes=0, timeout=10.0)  # fmt: skip
    with ImageServer(WorldConfig(misbehave_fraction=0.0)) as srv:
        source = _star_urls(tmp_path / "in.parquet", srv.base_url, range(93_000, 93_020))
        assert download_urls(source, tmp_path / "out", cfg)["successes"] == 20
    assert [p.name for p in temp.iterdir() if "wandb" in p.name] == []
