"""An experiment's worker pool stops with its run: a SIGTERM to the run's process (what a user
sends to stop a long confirmatory run) ends its running jobs at once, not when they finish."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time

import psutil

RUN = """
import signal, sys, time
from countclip_experiments.experiment import parallel
signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
print("started", flush=True)
for _ in parallel(time.sleep, [600, 600, 600], 2):
    pass
"""


def test_sigterm_to_a_run_terminates_its_running_workers():
    run = subprocess.Popen([sys.executable, "-c", RUN], stdout=subprocess.PIPE, text=True)
    workers: list[psutil.Process] = []
    try:
        assert run.stdout.readline().strip() == "started"
        parent = psutil.Process(run.pid)
        deadline = time.monotonic() + 60
        while True:  # two spawned workers, both running a job
            workers = [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]
            if len(workers) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(workers) == 2, parent.children()
        time.sleep(1.0)  # let both pick up a job
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=30) == 128 + signal.SIGTERM
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers outlived the run: {alive}"
    finally:
        for process in [*workers, psutil.Process(run.pid)] if run.poll() is None else workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
