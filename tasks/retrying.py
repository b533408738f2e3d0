"""Retry settings: back off and retry transient failures, fail bad input at once.

Downloads and remote parquet reads fail for reasons that go away (a 500, a reset connection, a
rate limit); deterministic stages (caption parsing, λ, training on local shards) do not, so they
get no retries. Even where retries are on, a ``ValueError``/``FileNotFoundError`` (the stages'
"bad input" errors, whose messages name the file and field) is not retried: retrying a missing
column only delays the error message.
"""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from countclip.stages.base import StageBusy, is_disk_full

PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    KeyError,
    TypeError,
    StageBusy,  # another run holds the stage and this one was told not to wait
)


def _exception_of(state: Any) -> BaseException | None:
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        result = state.result(raise_on_failure=False)
    except Exception as exc:  # reading a failed result can raise the original error
        return exc
    return result if isinstance(result, BaseException) else None


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry anything but bad input and a full disk (a retry cannot
    free space; it only hides the message behind minutes of backoff)."""
    exc = _exception_of(state)
    if exc is None:
        return True
    return not (isinstance(exc, PERMANENT_ERRORS) or is_disk_full(exc))


def transient_retries(retries: int = 3, backoff: float = 2.0, jitter: float = 0.5) -> dict:
    """Keyword arguments for ``@task``: exponential backoff with jitter, bad input not retried."""
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=backoff),
        "retry_jitter_factor": jitter,
        "retry_condition_fn": retry_transient,
    }
