"""Running one img2dataset pass in a child process group (why a child: see
:mod:`countclip.data.download.stage`), with progress from the shards it finishes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from countclip.atomic import atomic_write_json
from countclip.config import DownloadConfig
from countclip.offline import OFFLINE_ENV
from countclip.stage import Progress


class DownloadError(RuntimeError):
    """img2dataset failed as a whole (not single URLs): the message names the log file."""


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


_CHILD = """
import json, os, signal, sys, threading, time
parent = os.getppid()
def watchdog():  # the caller died (kill -9): take the whole group down with it
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os.killpg(0, signal.SIGKILL)
threading.Thread(target=watchdog, daemon=True).start()
with open(sys.argv[1]) as f:
    kwargs = json.load(f)
from img2dataset import download
download(**kwargs)
"""
"""The img2dataset child: nothing but img2dataset is imported (start-up is part of every pass)."""


def run_img2dataset(
    kwargs: dict[str, Any],
    log_dir: Path,
    name: str,
    total_shards: int,
    progress: Progress | None,
    span: tuple[float, float],
) -> float:
    """Run one img2dataset pass in a child process group; returns its wall seconds."""
    log_dir.mkdir(parents=True, exist_ok=True)
    args_path = log_dir / f"{name}.args.json"
    atomic_write_json(args_path, kwargs)
    log_path = log_dir / f"{name}.log"
    out = Path(kwargs["output_folder"])
    start = time.perf_counter()
    env = {**OFFLINE_ENV, **os.environ}  # albumentations' update check in every worker, wandb
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(args_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        (log_dir / f"{name}.pid").write_text(str(proc.pid))
        try:
            last_report = 0.0
            while proc.poll() is None:
                time.sleep(0.1)
                if progress and total_shards and time.monotonic() - last_report > 2:
                    last_report = time.monotonic()
                    done = len(list(out.glob("*_stats.json")))
                    frac = span[0] + (span[1] - span[0]) * min(done / total_shards, 1.0)
                    progress(frac, f"{name}: {done}/{total_shards} shards")
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    # the pool's workers share the child's group: none may outlive the pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode != 0:
        raise DownloadError(f"img2dataset {name} exited with {proc.returncode}; see {log_path}")
    return time.perf_counter() - start
