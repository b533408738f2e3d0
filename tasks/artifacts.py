"""Artifacts for the Prefect UI: tables, markdown, progress bars and links to plots.

Keys must be lowercase letters, digits and dashes, or the UI leaves the artifact off its
Artifacts page; :func:`artifact_key` enforces that so a stage or run name can be part of a key.
Artifact calls never fail a stage: a lost progress update is not worth a failed download.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

log = logging.getLogger(__name__)


def artifact_key(*parts: str) -> str:
    """``artifact_key("Download", "counting")`` -> ``"download-counting"``."""
    joined = "-".join(str(p) for p in parts if p)
    key = re.sub(r"[^a-z0-9]+", "-", joined.lower()).strip("-")
    return key or "countclip"


def _safe(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # the UI is a convenience; never fail the stage for it
        log.warning("artifact %s failed: %s", getattr(call, "__name__", call), exc)
        return None


def table(key: str, rows: list[dict[str, Any]], description: str | None = None) -> Any:
    """A table artifact from a list of row dicts."""
    return _safe(create_table_artifact, table=rows, key=artifact_key(key), description=description)


def mapping_table(
    key: str, mapping: Mapping[Any, Any], columns: tuple[str, str], description: str | None = None
) -> Any:
    """A two-column table artifact from a mapping (e.g. rejected rows by reason)."""
    rows = [{columns[0]: str(k), columns[1]: v} for k, v in mapping.items()]
    return table(key, rows, description)


def markdown(key: str, text: str, description: str | None = None) -> Any:
    return _safe(
        create_markdown_artifact, markdown=text, key=artifact_key(key), description=description
    )


def link(
    key: str, path_or_url: str | Path, text: str | None = None, description: str | None = None
) -> Any:
    """A link artifact; local paths become ``file://`` URIs (plots on the worker's disk)."""
    target = str(path_or_url)
    if "://" not in target:
        target = Path(target).resolve().as_uri()
    return _safe(
        create_link_artifact,
        link=target,
        link_text=text or Path(str(path_or_url)).name,
        key=artifact_key(key),
        description=description,
    )


def links(prefix: str, outputs: Mapping[str, Any], suffixes: tuple[str, ...] = (".png",)) -> None:
    """A link artifact for every output whose path ends in one of ``suffixes``."""
    for name, path in outputs.items():
        if isinstance(path, str) and path.lower().endswith(suffixes):
            link(artifact_key(prefix, name), path, description=f"{prefix}: {name}")


LOG_EVERY = 30.0
"""Seconds between progress log lines when the console is no terminal (CI, a batch job)."""


class ProgressReporter:
    """A ``progress(fraction, message)`` callback that drives a progress artifact in the UI and
    the console: a bar on a terminal, a log line every :data:`LOG_EVERY` seconds otherwise
    (with the elapsed time and an estimate of what is left).

    Artifact updates are throttled to one per ``min_interval`` seconds (plus the final 100 %),
    because a stage may report thousands of times and each update is an API call.
    """

    def __init__(self, key: str, description: str, min_interval: float = 2.0) -> None:
        self.key = artifact_key(key)
        self.description = description
        self.min_interval = min_interval
        self.updates = 0
        self._last = 0.0
        self._last_pct = -1.0
        self._started = self._logged = time.monotonic()
        self._bar: Any = None
        self._terminal = sys.stderr.isatty()
        self._id = _safe(
            create_progress_artifact, progress=0.0, key=self.key, description=description
        )

    def __call__(self, fraction: float, message: str = "") -> None:
        pct = round(max(0.0, min(1.0, float(fraction))) * 100.0, 1)
        now = time.monotonic()
        self._console(pct, message, now)
        if self._id is None or pct == self._last_pct:
            return
        if pct < 100.0 and now - self._last < self.min_interval:
            return
        self._last, self._last_pct = now, pct
        self.updates += 1
        text = f"{self.description}: {message}" if message else self.description
        _safe(update_progress_artifact, artifact_id=self._id, progress=pct, description=text)

    def _console(self, pct: float, message: str, now: float) -> None:
        if self._terminal:
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=100, desc=self.description, unit="%", leave=False)
            self._bar.n = pct
            self._bar.set_postfix_str(message[:60], refresh=True)
            if pct >= 100.0:
                self._bar.close()
            return
        if pct < 100.0 and now - self._logged < LOG_EVERY:
            return
        self._logged = now
        elapsed = now - self._started
        left = f", about {_duration(elapsed * (100 - pct) / pct)} left" if 0 < pct < 100 else ""
        _safe(_run_logger().info, "%s: %.0f%% %s (%s%s)", self.description, pct, message,
              _duration(elapsed), left)  # fmt: skip

    def done(self, message: str = "done") -> None:
        self(1.0, message)


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    from prefect import get_run_logger

    try:
        return get_run_logger()
    except Exception:  # outside a run: the module's own logger
        return log


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def manifest_markdown(title: str, manifest: Mapping[str, Any]) -> str:
    """A short markdown summary of a stage manifest (stats, inputs, outputs)."""
    lines = [
        f"# {title}",
        "",
        f"- stage: `{manifest.get('stage')}`",
        f"- fingerprint: `{manifest.get('fingerprint')}`",
        f"- directory: `{manifest.get('directory')}`",
        f"- code version: `{manifest.get('code_version')}`",
        f"- seconds: {manifest.get('seconds')}",
        "",
    ]
    stats = manifest.get("stats") or {}
    if stats:
        lines += ["## Stats", "", "| stat | value |", "| --- | --- |"]
        lines += [f"| {k} | {_short(v)} |" for k, v in sorted(stats.items())]
        lines.append("")
    if manifest.get("inputs"):
        lines += ["## Inputs", ""]
        lines += [f"- {k}: `{v}`" for k, v in sorted(manifest["inputs"].items())]
        lines.append("")
    if manifest.get("outputs"):
        lines += ["## Outputs", ""]
        lines += [f"- {k}: `{v}`" for k, v in sorted(manifest["outputs"].items())]
    return "\n".join(lines) + "\n"


def _short(value: Any, limit: int = 200) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
