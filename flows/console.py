"""What a person at the terminal sees: one line per failure, the tracebacks in a log file.

A failed stage used to print 126-432 lines of traceback (Prefect's task log, its flow log and
Python's own), with the message somewhere in the middle. Here every log record still reaches
``<data_root>/logs/<command>-<time>.log`` in full, while the console keeps Prefect's progress
lines and gets, for an error, the first line of its message only; the CLI then prints one line
naming the stage, the cause and the log file (:func:`failure_line`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

LOGGERS = ("prefect", "countclip", "countclip_flows", "countclip_tasks")


def log_path(data_root: str, command: str) -> Path:
    """``<data_root>/logs/<command>-<YYYYmmdd-HHMMSS>-<pid>.log``, or the same name in the
    temp directory when the data root cannot be written (the error is reported anyway)."""
    name = f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    folder = Path(data_root).expanduser() / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()
        return folder / name
    except OSError:
        return Path(tempfile.gettempdir()) / f"countclip-{name}"


class _ShortFormatter(logging.Formatter):
    """Formats with the handler's own formatter, less tracebacks: an error record shows the
    first line of its message (the traceback is in the log file)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not (record.exc_info or record.exc_text or record.stack_info):
            return self.inner.format(record)
        short = copy.copy(record)
        short.exc_info = short.exc_text = short.stack_info = None
        short.msg, short.args = record.getMessage().splitlines()[0], None
        return self.inner.format(short)


@contextlib.contextmanager
def tracebacks_to(path: Path) -> Iterator[Path]:
    """For the block: every record of :data:`LOGGERS` (tracebacks included) goes to ``path``;
    console handlers of those loggers print no traceback."""
    from prefect.logging.configuration import setup_logging

    setup_logging()  # Prefect's handlers exist from here on (later calls only adjust levels)
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler.setLevel(logging.DEBUG)
    touched: list[tuple[logging.Handler, logging.Formatter | None]] = []
    loggers = [logging.getLogger(name) for name in LOGGERS]
    every = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in [x for x in every if isinstance(x, logging.Logger)]:
        for handler in logger.handlers:
            console = isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            )
            if console and not isinstance(handler.formatter, _ShortFormatter):
                touched.append((handler, handler.formatter))
                handler.setFormatter(_ShortFormatter(handler.formatter))
    for logger in loggers:
        logger.addHandler(file_handler)
    try:
        yield path
    finally:
        for logger in loggers:
            logger.removeHandler(file_handler)
        file_handler.close()
        for handler, formatter in touched:
            handler.setFormatter(formatter)


def failure_line(command: str, exc: BaseException, log: Path) -> str:
    """``countclip build: stage metadata failed (settings: metadata.*): MetadataError: <first
    line of the message, which names the file or field>`` and where the traceback is."""
    stage = getattr(exc, "countclip_stage", None)
    section = (stage or "").split("-")[0]
    where = f"stage {stage} failed (settings: {section}.*)" if stage else "failed"
    message = (str(exc).strip().splitlines() or [""])[0]
    return f"countclip {command}: {where}: {type(exc).__name__}: {message}\n  full traceback: {log}"


def write_traceback(exc: BaseException, log: Path) -> None:
    """Append ``exc``'s traceback to ``log`` (the console got one line)."""
    import traceback

    with contextlib.suppress(OSError), open(log, "a", encoding="utf-8") as handle:
        handle.write("".join(traceback.format_exception(exc)))
