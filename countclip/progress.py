"""Progress callbacks: how a long piece of library work reports how far it is.

``progress(fraction_done, message)``; the orchestration layer turns it into a progress bar
(a Prefect progress artifact, a terminal bar, a log line). Library code never needs to know
which.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, str], None]
"""``progress(fraction_done, message)``: the orchestration layer turns it into a progress bar."""


def report_to(progress: Progress | None) -> Progress:
    """``progress`` itself, or a callback that does nothing."""
    return progress or (lambda _fraction, _message: None)


def sub_progress(progress: Progress | None, start: float, end: float) -> Progress:
    """A callback reporting ``[0, 1]`` of a sub-step as ``[start, end]`` of ``progress``."""
    outer = report_to(progress)
    return lambda fraction, message: outer(start + (end - start) * fraction, message)
