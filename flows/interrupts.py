"""A run stops within seconds of SIGTERM or SIGINT, leaving only what a rerun resumes.

Three things stood in the way; :func:`stop_on_signals` answers each:

1. **Prefect owns SIGTERM during a flow** (``capture_sigterm``: its handler raises
   ``TerminationSignal`` in the main thread) and, on the way out, joins the task runner's
   worker threads, where the downloads run and where no signal is ever delivered. So a
   watcher thread learns of every SIGTERM/SIGINT through :func:`signal.set_wakeup_fd`
   (written by the interpreter's C-level handler, whichever Python handler is installed)
   and calls :func:`~countclip.data.download.runner.request_stop`: each img2dataset pass
   kills its child group within 0.1 s and raises ``DownloadStopped``, and the join returns.
2. **Outside a flow** (loading the config, starting the API server) this module's own
   handler raises :class:`Interrupted` in the main thread. After a flow ended by
   ``TerminationSignal``, Prefect re-sends the signal to the handler it had replaced (this
   one), so the process still unwinds in order rather than dying of SIGTERM's default action.
3. **A task that does not watch the stop request** (training in a worker thread) would keep
   the process alive in that join: ``grace`` seconds after the signal the watcher ends the
   process with :func:`os._exit`. Nothing is lost that a rerun needs: every stage writes
   atomically or resumes (the pipeline survives ``kill -9``), and the children die with the
   process (``PR_SET_PDEATHSIG``: the img2dataset groups, Prefect's API server).

The CLI does all this for every command. A deployment run (a Prefect worker cancels a flow
run with SIGTERM) gets the stop of its downloads and the bounded shutdown if the flow body
runs under ``stop_on_signals(own_handlers=False)``: inside a flow, Prefect's handler must stay
(it turns a cancellation into a Cancelled state), and the wakeup pipe hears the signal anyway.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from countclip.data.download.runner import clear_stop, request_stop

GRACE_SECONDS = 10.0
"""How long after SIGTERM/SIGINT an orderly shutdown may take before the process exits hard."""
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; ``exit_code`` is the shell's 128 + signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class StopState:
    """The first stop signal received (``signum``), and whether :class:`Interrupted` was raised."""

    grace: float
    signum: int | None = None
    raised: bool = False
    timer: threading.Timer | None = field(default=None, repr=False)
    # reentrant: the main thread's handler may interrupt the main thread inside ``note``
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def note(self, signum: int) -> None:
        """Record a signal: stop every download now, and bound the shutdown (once)."""
        request_stop(f"{signal.Signals(signum).name} received")
        with self._lock:
            if self.signum is not None:
                return
            self.signum = signum
            self.timer = threading.Timer(self.grace, _exit_now, args=(signum, self.grace))
            self.timer.daemon = True
            self.timer.start()

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum


def _exit_now(signum: int, grace: float) -> None:
    name = signal.Signals(signum).name
    with contextlib.suppress(Exception):
        sys.stderr.write(
            f"countclip: still shutting down {grace:g} s after {name}; exiting now. Finished "
            "stages and shards are kept: rerun the same command to resume\n"
        )
        sys.stderr.flush()
    os._exit(128 + signum)


@contextlib.contextmanager
def stop_on_signals(grace: float = GRACE_SECONDS, own_handlers: bool = True) -> Iterator[StopState]:
    """For the block (main thread only): SIGTERM/SIGINT stop every download at once, raise
    :class:`Interrupted` in the main thread (with ``own_handlers``; else the handlers already
    installed, such as Prefect's, do what they do), and end the process after ``grace``
    seconds at the latest. Yields the :class:`StopState` (which signal came, if any)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("stop_on_signals() must run in the main thread (signal handlers)")
    state = StopState(grace)

    def handler(signum: int, _frame: object) -> None:
        state.note(signum)
        if not state.raised:  # once: a second signal must not break the unwinding
            state.raised = True
            raise Interrupted(signum)

    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS} if own_handlers else {}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(read_fd, state, done), name="countclip-signal-watch", daemon=True
    )
    watcher.start()
    try:
        yield state
    finally:
        signal.set_wakeup_fd(previous_fd)
        for sig, old in previous.items():
            signal.signal(sig, old)
        done.set()
        with contextlib.suppress(OSError):  # a full pipe already wakes it
            os.write(write_fd, b"\0")  # wake the watcher: it sees ``done`` and returns
        watcher.join(timeout=5)
        os.close(write_fd)
        os.close(read_fd)
        if state.timer is not None:
            state.timer.cancel()
        clear_stop()


def _watch(read_fd: int, state: StopState, done: threading.Event) -> None:
    """Every signal that reaches a Python handler writes its number to the wakeup pipe."""
    wanted = {int(sig) for sig in SIGNALS}
    while not done.is_set():
        for signum in os.read(read_fd, 512):
            if signum in wanted:
                state.note(signum)
