"""The one stage helper: identity, done-check, lock, atomic directory and manifest.

Every pipeline stage writes under ``<data_root>/<stage>/<fingerprint>/`` and writes a small
``manifest.json`` *last*. The fingerprint is what the output is a function of
(:mod:`countclip.fingerprints`): the semantic config, the upstream fingerprints and the stage's
code version. The orchestration layer's cache key *is* this fingerprint, and a cache hit is
only taken when :meth:`StagePlan.completed` agrees, so Prefect's cache and the disk never
disagree:

* **done** means the manifest exists, names this fingerprint, every output it lists still
  exists, and the upstream manifests it was built from are the ones passed in now (a stage
  whose upstream was recomputed, because its directory was deleted, say, is stale);
* **one writer**: a file lock per fingerprint (:mod:`filelock`) is held from the done-check to
  the manifest, so a second run on the same data root waits for the first and then finds the
  stage done (or fails at once when ``COUNTCLIP_LOCK_TIMEOUT=0``);
* **nothing half-written**: an ordinary stage builds in a temp directory that replaces the
  stage directory when complete; a *resumable* stage (downloads, training) builds in place and
  resumes from what a killed run left, and only the manifest marks it done.

Manifests have the same keys everywhere (:data:`MANIFEST_KEYS`); stage-specific numbers live
under ``stats``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from countclip.atomic import (
    DiskFullError,
    atomic_dir,
    atomic_write_json,
    disk_full,
    is_disk_full,
)
from countclip.fingerprints import canonical, code_version, fingerprint
from countclip.integrity import file_sum, files_of, intact
from countclip.progress import Progress, report_to, sub_progress

log = logging.getLogger(__name__)
__all__ = [
    "MANIFEST_NAME",
    "STAGE_ATTRIBUTE",
    "Progress",
    "Stage",
    "StageBusy",
    "StageOutput",
    "StagePlan",
    "Timer",
    "is_disk_full",
    "read_manifest",
    "report_to",
    "sub_progress",
    "write_manifest",
]

LAYOUT_VERSION = "2"
"""Bump when the stage directory layout or manifest format changes: every fingerprint moves."""
MANIFEST_NAME = "manifest.json"
STAGE_ATTRIBUTE = "countclip_stage"
"""Set on an exception raised while a stage built: which stage failed (the CLI says so)."""
LOCK_TIMEOUT_ENV = "COUNTCLIP_LOCK_TIMEOUT"
LOCKS_DIRNAME = ".locks"
MANIFEST_KEYS: tuple[str, ...] = (
    "stage",
    "fingerprint",
    "code_version",
    "run_id",
    "directory",
    "outputs",
    "inputs",
    "upstream_runs",
    "upstream_content",
    "content",
    "files",
    "config",
    "stats",
    "seconds",
    "written_at",
)


class StageBusy(TimeoutError):
    """Another run holds the stage directory's lock and the wait was not allowed (or ran out)."""


class Timer:
    """``with Timer() as t: ...; t.seconds`` — wall time for manifests."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(time.perf_counter() - self.start, 3)


@dataclass
class StageOutput:
    """What a stage's build function returns: output paths (inside its work directory, or
    absolute paths elsewhere) and small stats for the manifest."""

    outputs: Mapping[str, str | os.PathLike[str] | list[str] | None]
    stats: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A pipeline stage: its directory name and the module whose code it runs."""

    name: str
    module: str
    resumable: bool = False

    @property
    def code_version(self) -> str:
        return code_version(self.module)

    def plan(
        self,
        data_root: str | os.PathLike[str],
        *,
        config: Any = None,
        upstream: Mapping[str, Mapping[str, Any] | None] | None = None,
        identity: Any = None,
    ) -> StagePlan:
        """The stage's identity for these inputs. ``identity`` is anything else the output
        depends on (a source file's size and mtime, a model's weights hash)."""
        upstream = dict(upstream or {})
        semantic = canonical(config)
        fp = fingerprint(
            LAYOUT_VERSION,
            self.name,
            self.code_version,
            semantic,
            {k: (m or {}).get("fingerprint") for k, m in sorted(upstream.items())},
            identity,
        )
        return StagePlan(self, str(data_root), fp, semantic, upstream)


@dataclass(frozen=True)
class StagePlan:
    """One stage run-to-be: where it writes and how to tell it is already done."""

    stage: Stage
    data_root: str
    fingerprint: str
    config: Any
    upstream: Mapping[str, Mapping[str, Any] | None]

    @property
    def directory(self) -> Path:
        return Path(self.data_root).expanduser().resolve() / self.stage.name / self.fingerprint

    @property
    def lock_path(self) -> Path:
        """``<data_root>/.locks/<stage>-<fingerprint>.lock``: beside, not inside, the stage
        directory (which an atomic build replaces whole)."""
        root = Path(self.data_root).expanduser().resolve()
        return root / LOCKS_DIRNAME / f"{self.stage.name}-{self.fingerprint}.lock"

    def _upstream_runs(self) -> dict[str, str | None]:
        return {k: (m or {}).get("run_id") for k, m in sorted(self.upstream.items())}

    def _upstream_content(self) -> dict[str, str | None]:
        """What each upstream stage's outputs *are* (their content digest): a recomputed
        upstream whose outputs came out byte-identical leaves this stage valid."""
        return {
            k: (m or {}).get("content") or (m or {}).get("run_id")
            for k, m in sorted(self.upstream.items())
        }

    def completed(self) -> dict | None:
        """The manifest, if this stage is done and still valid on disk; else None."""
        manifest = read_manifest(self.directory)
        if manifest is None:
            return None
        problem = self._invalid(manifest)
        if problem:
            log.info("%s %s: not reusable (%s)", self.stage.name, self.fingerprint, problem)
            return None
        return manifest

    def _invalid(self, manifest: Mapping[str, Any]) -> str | None:
        if manifest.get("fingerprint") != self.fingerprint:
            return "the manifest names another fingerprint"
        if dict(manifest.get("upstream_content") or {}) != self._upstream_content():
            return "an upstream stage's outputs changed since"
        for name, paths in (manifest.get("outputs") or {}).items():
            for path in paths if isinstance(paths, list) else [paths]:
                if path is not None and not Path(path).exists():
                    return f"output {name!r} is gone: {path}"
        for name, recorded in (manifest.get("files") or {}).items():
            path = self.directory / name
            if not intact(path, recorded):
                return f"output file {path} is not as it was written (size or checksum)"
        return None

    def run(self, build: Callable[[Path], StageOutput], progress: Progress | None = None) -> dict:
        """The manifest of the finished stage: reused when :meth:`completed`, else built by
        ``build(work_dir)`` under the stage lock and written last."""
        done = self.completed()
        if done is not None:
            return done
        try:
            with self._locked():
                done = self.completed()  # another run may have finished it while we waited
                if done is not None:
                    return done
                try:
                    return self._build(build, progress)
                except OSError as exc:
                    if is_disk_full(exc) and not isinstance(exc, DiskFullError):
                        raise disk_full(self.directory, exc) from exc
                    raise
        except Exception as exc:
            if getattr(exc, STAGE_ATTRIBUTE, None) is None:
                setattr(exc, STAGE_ATTRIBUTE, self.stage.name)  # for the one-line report
            raise

    def _build(self, build: Callable[[Path], StageOutput], progress: Progress | None) -> dict:
        final = self.directory
        stale = read_manifest(final) is not None  # a manifest that is no longer valid
        with Timer() as timer:
            if self.stage.resumable:
                replaced = self._set_aside(final) if stale else None
                final.mkdir(parents=True, exist_ok=True)
                result = build(final)
                manifest = self._manifest(result, final, final, timer)
                written = write_manifest(final, manifest)
                if replaced is not None:  # only now that what replaces it has finished
                    shutil.rmtree(replaced, ignore_errors=True)
            else:
                with atomic_dir(final) as work:
                    result = build(work)
                    manifest = self._manifest(result, work, final, timer)
                    written = write_manifest(work, manifest)
        report_to(progress)(1.0, f"{self.stage.name} done")
        return written

    def _set_aside(self, final: Path) -> Path | None:
        """Move a finished but stale stage directory out of the way (kept until its
        replacement has finished: a failed rebuild must not leave nothing behind). A damaged
        resumable stage instead keeps its intact files in place and rebuilds only the rest."""
        manifest = read_manifest(final) or {}
        damaged = [
            final / name
            for name, recorded in (manifest.get("files") or {}).items()
            if not intact(final / name, recorded)
        ]
        upstream_same = dict(manifest.get("upstream_content") or {}) == self._upstream_content()
        if upstream_same and manifest.get("fingerprint") == self.fingerprint:
            for path in damaged:  # the stage redoes what is missing (a download: its shards)
                log.warning("%s is damaged: rebuilding it", path)
                path.unlink(missing_ok=True)
            (final / MANIFEST_NAME).unlink(missing_ok=True)
            return None
        aside = final.with_name(f"{final.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
        log.warning("%s: upstream changed; kept at %s until its rebuild finishes", final, aside)
        final.rename(aside)
        return aside

    def _manifest(self, result: StageOutput, work: Path, final: Path, timer: Timer) -> dict:
        def place(path: Any) -> Any:
            if path is None:
                return None
            if isinstance(path, list):
                return [place(p) for p in path]
            path = Path(path).resolve()
            if path.is_relative_to(work.resolve()):
                path = final / path.relative_to(work.resolve())
            return str(path)

        return {
            "stage": self.stage.name,
            "fingerprint": self.fingerprint,
            "code_version": self.stage.code_version,
            "run_id": uuid.uuid4().hex,
            "directory": str(final),
            "outputs": {k: place(v) for k, v in result.outputs.items()},
            "inputs": {k: (m or {}).get("fingerprint") for k, m in sorted(self.upstream.items())},
            "upstream_runs": self._upstream_runs(),
            "upstream_content": self._upstream_content(),
            **_content(result.outputs, work),
            "config": self.config,
            "stats": dict(result.stats),
            "seconds": round(time.perf_counter() - timer.start, 3),
        }

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        timeout = lock_timeout()
        lock = FileLock(str(self.lock_path), timeout=-1 if timeout is None else timeout)
        owner = self.lock_path.with_suffix(".owner")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = _read_owner(owner)
            if timeout == 0:
                raise StageBusy(
                    f"{self.directory}: another run ({holder}) is writing this stage and "
                    f"{LOCK_TIMEOUT_ENV}=0 (lock_timeout: 0) says not to wait; let it finish, "
                    "or use another data_root"
                ) from None
            log.warning("%s: waiting for another run (%s) to finish it", self.directory, holder)
            try:
                lock.acquire()
            except Timeout:
                raise StageBusy(
                    f"{self.directory}: another run ({holder}) held this stage for more than "
                    f"lock_timeout={timeout} s"
                ) from None
        try:
            owner.write_text(f"pid {os.getpid()} on {socket.gethostname()}")
            yield
        finally:
            with contextlib.suppress(OSError):
                owner.unlink()
            lock.release()


def _content(outputs: Mapping[str, Any], work: Path) -> dict[str, Any]:
    """``files``: every output file's ``[size, sha256]`` as written, by its path relative to
    the stage directory (files of other stages that an output names are theirs to record);
    ``content``: their digest, what downstream stages compare to decide they are still valid."""
    paths = [
        Path(p)
        for value in outputs.values()
        for p in (value if isinstance(value, list) else [value])
        if p is not None
    ]
    work = work.resolve()
    files = {
        str(f.resolve().relative_to(work)): file_sum(f)
        for f in files_of([p if p.is_absolute() else work / p for p in paths])
        if f.resolve().is_relative_to(work) and f.name != MANIFEST_NAME
    }
    return {"files": files, "content": fingerprint(sorted(files.items()), length=32)}


def _read_owner(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def lock_timeout() -> float | None:
    """Seconds to wait for a stage lock: ``COUNTCLIP_LOCK_TIMEOUT`` (unset = no limit)."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{LOCK_TIMEOUT_ENV}={raw!r}: not a number of seconds") from None
    return None if value < 0 else value


def write_manifest(directory: str | os.PathLike[str], manifest: Mapping[str, Any]) -> dict:
    """Write ``manifest.json`` (atomically) and return the manifest as written."""
    body = dict(canonical(dict(manifest)))
    body.setdefault("written_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    body.setdefault("directory", str(Path(directory)))
    atomic_write_json(Path(directory) / MANIFEST_NAME, body)
    return body


def read_manifest(directory: str | os.PathLike[str]) -> dict | None:
    """The manifest in ``directory``, or None if there is none (or it is unreadable)."""
    path = Path(directory) / MANIFEST_NAME
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable manifest (%s); the stage will be recomputed", path, exc)
        return None
