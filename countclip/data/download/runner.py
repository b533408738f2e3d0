"""Running one img2dataset pass in a child process group (why a child: see
:mod:`countclip.data.download.passes`), watched until it ends, and never waited on blindly.

- **It dies with its parent.** The child asks the kernel for ``PR_SET_PDEATHSIG`` (SIGTERM)
  and answers it by killing its whole process group (img2dataset's pool workers are in it),
  so a ``kill -9`` of the orchestrating process leaves no worker writing shards; a thread
  watching ``getppid()`` is the fallback. The signal comes when the *thread* that started
  the child exits, so :func:`run_img2dataset` starts the child and waits for it in one thread.
- **Watched** (:mod:`countclip.data.download.watch`): the shards it finishes go to the
  pass's ledger (only those are trusted on resume), a child that makes no progress for
  ``DownloadConfig.stall_timeout`` seconds is killed (:class:`DownloadStalled`), and a full
  disk is a :class:`~countclip.atomic.DiskFullError` at once, which no retry repeats.
- **Stop on request.** :func:`request_stop` (a signal handler, a cancelled flow) makes every
  pass of this process kill its child group within :data:`POLL_SECONDS` and raise
  :class:`DownloadStopped`; what is left on disk is what a rerun resumes from.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from countclip.atomic import atomic_write_json
from countclip.config import DownloadConfig
from countclip.data.download.engines import CLUSTER_EXIT, ClusterUnreachable
from countclip.data.download.watch import DownloadError, DownloadStalled, PassJob, PassWatch
from countclip.offline import OFFLINE_ENV
from countclip.progress import Progress

__all__ = [
    "DownloadError",
    "DownloadStalled",
    "DownloadStopped",
    "PassJob",
    "clear_stop",
    "img2dataset_kwargs",
    "request_stop",
    "run_img2dataset",
    "stop_requested",
]

POLL_SECONDS = 0.1
"""How often a pass looks at its child, its files and the stop request."""


class DownloadStopped(KeyboardInterrupt):
    """The pass was stopped on request (:func:`request_stop`): an interruption, not a failure,
    so it is a ``KeyboardInterrupt`` (no ``except Exception`` swallows it, no retry repeats it)."""


_stop_reason: str | None = None
"""Set by :func:`request_stop`: a plain assignment, so safe from signal handlers and threads."""


def request_stop(reason: str) -> None:
    """Ask every img2dataset pass of this process to stop now (the first reason is kept)."""
    global _stop_reason
    _stop_reason = _stop_reason or reason


def stop_requested() -> str | None:
    """Why passes were asked to stop, or None."""
    return _stop_reason


def clear_stop() -> None:
    """Let passes run again (a process that goes on after a stop, such as a test session)."""
    global _stop_reason
    _stop_reason = None


def img2dataset_kwargs(
    url_list: Path,
    out: Path,
    cfg: DownloadConfig,
    url_col: str,
    caption_col: str | None,
    additional: Sequence[str],
) -> dict[str, Any]:
    """img2dataset.download keyword arguments (the raw benchmark uses the same ones)."""
    return {
        "url_list": str(url_list),
        "output_folder": str(out),
        "input_format": "parquet",
        "output_format": "webdataset",
        "url_col": url_col,
        "caption_col": caption_col,
        "save_additional_columns": list(additional) or None,
        "image_size": cfg.image_size,
        "resize_mode": cfg.resize_mode,
        "encode_format": cfg.encode_format,
        "encode_quality": cfg.encode_quality,
        "processes_count": cfg.processes_count,
        "thread_count": cfg.thread_count,
        "number_sample_per_shard": cfg.number_sample_per_shard,
        "timeout": cfg.timeout,
        "retries": cfg.retries,
        "distributor": cfg.distributor,
        "incremental_mode": "incremental",
        "user_agent_token": cfg.user_agent_token,
        "disallowed_header_directives": list(cfg.disallowed_header_directives),
        "enable_wandb": False,
    }


CHILD = Path(__file__).with_name("img2dataset_child.py")
"""The img2dataset child, run by path (:mod:`countclip.data.download.img2dataset_child` says
why): nothing but img2dataset (and the engine it runs on) is imported, because start-up is part
of every pass."""


def run_img2dataset(
    job: PassJob,
    progress: Progress | None = None,
    span: tuple[float, float] = (0.0, 1.0),
    engine: Mapping[str, Any] | None = None,
) -> float:
    """Run one img2dataset pass in a child process group; returns its wall seconds.

    ``engine`` (:func:`~countclip.data.download.engines.engine_setup`) says which cluster the
    child starts or joins; None runs ``job.kwargs["distributor"]`` with nothing to set up.
    Raises :class:`DownloadStopped`, :class:`DownloadStalled`, ``DiskFullError``,
    ``ClusterUnreachable`` or :class:`DownloadError`; in every case the child's whole group
    is dead first.
    """
    if reason := stop_requested():
        raise DownloadStopped(f"img2dataset {job.name} not started: {reason}")
    job.log_dir.mkdir(parents=True, exist_ok=True)
    args_path = job.log_dir / f"{job.name}.args.json"
    atomic_write_json(args_path, job.kwargs)
    watch = PassWatch(job)
    start = time.perf_counter()
    engine = dict(engine or {"distributor": job.kwargs["distributor"]})
    # defaults only: albumentations' update check in every worker, wandb, the engine's own
    env = {**OFFLINE_ENV, **engine.pop("env", {}), **os.environ}
    # The pass's own temp folder, removed when it ends: img2dataset's pool workers import
    # wandb, whose import makes temp folders that only an atexit hook removes, and pool
    # workers leave with os._exit (without this, every build left ~4 in $TMPDIR). Not for
    # Ray, which keeps (and cleans) its own session folder there, with socket paths that
    # must stay under 108 bytes.
    scratch = job.log_dir / f"{job.name}.tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    if engine.get("distributor", "multiprocessing") == "multiprocessing":
        scratch.mkdir()
        env["TMPDIR"] = str(scratch)
    try:
        return _run(job, watch, args_path, engine, env, progress, span, start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(
    job: PassJob,
    watch: PassWatch,
    args_path: Path,
    engine: dict[str, Any],
    env: dict[str, str],
    progress: Progress | None,
    span: tuple[float, float],
    start: float,
) -> float:
    with open(watch.log_path, "ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"\n===== countclip: {job.name} started {stamp} =====\n".encode())
        log.flush()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-P",
                str(CHILD),
                str(args_path),
                str(os.getpid()),
                json.dumps(engine),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
            env=env,
        )
        watch.group = proc.pid  # process_group=0: the child leads its own group
        try:
            (job.log_dir / f"{job.name}.pid").write_text(str(proc.pid))
            last_report, started = 0.0, time.monotonic()
            while proc.poll() is None:
                time.sleep(POLL_SECONDS)
                if reason := stop_requested():
                    raise DownloadStopped(
                        f"img2dataset {job.name} stopped ({reason}); finished shards under "
                        f"{job.out} are kept: rerun to resume"
                    )
                watch.tick()
                if progress and job.total_shards and time.monotonic() - last_report > 2:
                    last_report = time.monotonic()
                    done = len(watch.trusted)
                    frac = span[0] + (span[1] - span[0]) * min(done / job.total_shards, 1.0)
                    urls = min(done * job.kwargs["number_sample_per_shard"], job.rows)
                    rate = urls / max(time.monotonic() - started, 1e-9)
                    progress(
                        frac,
                        f"{job.name}: {done}/{job.total_shards} shards, ~{urls}/{job.rows} URLs "
                        f"({rate:.0f}/s)",
                    )
        except BaseException:
            _kill_group(proc)
            raise
    _kill_group(proc)  # the pool's workers share the child's group: none may outlive the pass
    if proc.returncode == CLUSTER_EXIT and (why := _cluster_error(watch.log_path, watch.log_start)):
        raise ClusterUnreachable(f"img2dataset {job.name}: {why} (log {watch.log_path})")
    watch.finish(proc.returncode)
    return time.perf_counter() - start


def _cluster_error(log_path: Path, start: int = 0) -> str | None:
    """The child's last word when it could not start or join its cluster, or None (only what
    this attempt wrote, from ``start``, is read)."""
    with contextlib.suppress(OSError), open(log_path, "rb") as log:
        log.seek(max(start, log.seek(0, os.SEEK_END) - 64_000))
        lines = log.read().decode(errors="replace").splitlines()
        marked = [ln for ln in lines if ln.startswith("COUNTCLIP_CLUSTER_ERROR ")]
        if not marked:
            return None
        why = marked[-1].removeprefix("COUNTCLIP_CLUSTER_ERROR ")
        if any("InvalidAuthToken" in ln for ln in lines):
            why += "; the cluster wants Ray's token: RAY_AUTH_TOKEN or ~/.ray/auth_token"
        return why
    return None


GROUP_EXIT_SECONDS = 30.0
"""How long a killed pass waits for the rest of its group (the pool's workers) to be gone."""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child's group and return once no member of it runs any more.

    Waiting for the leader is not enough: the pool's workers die when the kernel gets to them,
    which on a loaded machine can be after the leader is reaped (measured: a CI run saw a
    member alive right after the stalled pass raised). A caller that then resumes, or a test
    that lists the group, must find it gone.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + GROUP_EXIT_SECONDS
    while _group_running(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _group_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` is still running (zombies are dead: they only
    wait for a parent to reap them). Linux /proc; elsewhere False (nothing to wait on)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state not in ("Z", "X"):
            return True
    return False
