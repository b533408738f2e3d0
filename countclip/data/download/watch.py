"""Watching a running img2dataset pass: the shards it finished (kept in the pass's ledger),
whether it still makes progress, and whether the disk under it is full.

- **Ledger.** Every shard this (living) process sees finished goes to
  ``pass-<i>.ledger.json`` (:func:`~countclip.data.download.results.write_ledger`); only those
  count, so a shard written after this process died is redone, never trusted.
- **Progress.** A file under the output folder or the log changes, or the child's process
  group is busy computing (at least :data:`BUSY_CPU_FRACTION` of a core): img2dataset's pool
  workers import for tens of seconds on a loaded machine before they write anything (measured:
  22 s of silence with two workers on two busy cores), and that is not a hang. A hung child
  (a full disk, a dead NFS mount, a stuck DNS lookup, SIGSTOP) writes nothing and idles.
- **Full disk.** ENOSPC/EDQUOT in the child's log, less than :data:`LOW_SPACE_BYTES` free, or a
  probe write failing with ENOSPC: the pass raises :func:`~countclip.atomic.disk_full` naming
  the folder, the free space and the space still needed (rows to go x bytes per written row).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from countclip.atomic import (
    DISK_FULL_ERRNOS,
    atomic_write_json,
    disk_full,
    free_bytes,
    is_disk_full,
)
from countclip.data.download.ledger import (
    completed_shards,
    finished_shards,
    ledger_key,
    read_ledger,
    read_sums,
    shard_finished,
    sums_path,
    write_ledger,
)
from countclip.integrity import file_sum

LOW_SPACE_BYTES = 1 << 20
"""Below this much free space on the output's filesystem, a failed pass is a full disk."""
_NO_SPACE = re.compile(
    rb"No space left on device|Disk quota exceeded|\[Errno (?:28|122)\]|ENOSPC|EDQUOT"
)
BUSY_CPU_FRACTION = 0.1
"""CPU time of the child's group per wall second that counts as progress (the pool's own
housekeeping, a thread waking every 0.1 s, stays far below it)."""
CPU_CHECK_SECONDS = 1.0


class DownloadError(RuntimeError):
    """img2dataset failed as a whole (not single URLs): the message names the log file."""


class DownloadStalled(DownloadError):
    """img2dataset made no progress for ``DownloadConfig.stall_timeout`` seconds; it was killed."""


@dataclass(frozen=True)
class PassJob:
    """One img2dataset pass: its name (``pass-<i>``), ``img2dataset.download`` arguments, how
    many input rows and shards it has, where its log goes, and the stall limit."""

    name: str
    kwargs: dict[str, Any]
    rows: int
    total_shards: int
    log_dir: Path
    stall_timeout: float

    @property
    def out(self) -> Path:
        return Path(self.kwargs["output_folder"])


class PassWatch:
    """What a running pass has done: the shards it finished (kept in the ledger), whether it
    still writes anything, and whether its log or its filesystem says the disk is full."""

    def __init__(self, job: PassJob) -> None:
        self.job = job
        self.group: int | None = None  # the child's process group, once it runs
        self.out = job.out
        self.log_path = job.log_dir / f"{job.name}.log"
        # the ledgered shards still on disk as ledgered (repair_pass deleted the others: a
        # stale entry must not hide the shard img2dataset writes in its place)
        on_disk = completed_shards(self.out)
        self.trusted = {sid: key for sid, key in read_ledger(self.out).items() if sid in on_disk}
        self.last_change = time.monotonic()
        self._signature: tuple[Any, ...] | None = None
        self._dir_mtime: int | None = None
        self._next_listing = 0.0
        self._in_progress: list[Path] = []
        # The log is appended to by every attempt of the pass: only what this attempt writes
        # counts (an earlier attempt's "No space left" must not fail a rerun after space was
        # freed).
        self.log_start = _size(self.log_path) or 0
        self._log_offset = self.log_start
        self._log_tail = b""
        self._no_space_line: str | None = None
        self._cpu: tuple[float, float] | None = None  # (when, group CPU seconds) last looked at

    # -- while it runs

    def tick(self) -> None:
        """Record newly finished shards; raise if the disk is full or nothing moved too long."""
        self._scan()
        self._read_log()
        if self._no_space_line:
            raise self._disk_full(f"its log says {self._no_space_line!r}")
        if time.monotonic() - self.last_change > self.job.stall_timeout:
            if evidence := self._no_space():
                raise self._disk_full(evidence)
            raise DownloadStalled(
                f"img2dataset {self.job.name} made no progress for {self.job.stall_timeout:g} s "
                f"(nothing changed under {self.out} nor in its log {self.log_path}, and its "
                "processes were idle), so it was stopped (setting: download.stall_timeout). "
                "Finished shards are kept: rerun to resume, or raise download.stall_timeout if "
                "the source is only slow"
            )

    def _scan(self) -> None:
        now = time.monotonic()
        dir_mtime = _mtime(self.out)
        if dir_mtime != self._dir_mtime and now >= self._next_listing:
            self._dir_mtime = dir_mtime
            began = time.monotonic()
            self._list()
            # a huge pass folder is listed less often: the watch must not cost the download
            self._next_listing = now + 20 * (time.monotonic() - began)
        signature = (
            dir_mtime,
            _mtime(self.out / "_tmp"),
            _size(self.log_path),
            tuple((_size(p), _mtime(p)) for p in self._in_progress),
        )
        if signature != self._signature or self._busy(now):
            self._signature = signature
            self.last_change = now

    def _busy(self, now: float) -> bool:
        """True when the child's group used at least BUSY_CPU_FRACTION of a core since the
        last look (looked at every CPU_CHECK_SECONDS: it reads /proc)."""
        if self.group is None or (self._cpu and now - self._cpu[0] < CPU_CHECK_SECONDS):
            return False
        cpu = group_cpu_seconds(self.group)
        if cpu is None:
            return False
        before, self._cpu = self._cpu, (now, cpu)
        return before is not None and cpu - before[1] >= BUSY_CPU_FRACTION * (now - before[0])

    def _list(self) -> None:
        """New finished shards go to the ledger; the others are watched for growth."""
        try:
            names = [entry.name for entry in os.scandir(self.out)]
        except FileNotFoundError:
            return
        stats_names = {n for n in names if n.endswith("_stats.json")}
        new, tars = {}, {}
        for name in stats_names:
            sid = _shard_no(name)
            if sid is None or sid in self.trusted:
                continue
            if (stats := shard_finished(self.out / name)) is not None:
                new[sid] = ledger_key(stats)
                tars[sid] = self.out / name.replace("_stats.json", ".tar")
        if new:
            self.trusted = {**self.trusted, **new}
            self._record_sums(tars)
            self._write_ledger()
        self._in_progress = [
            self.out / n
            for n in names
            if n.endswith((".tar", ".parquet")) and _shard_no(n) not in self.trusted
        ]

    def _record_sums(self, tars: dict[int, Path]) -> None:
        """Each newly finished shard's tar size and SHA-256, before it enters the ledger: what
        a later cache hit compares against."""
        sums = read_sums(self.out)
        for sid, tar in tars.items():
            with contextlib.suppress(FileNotFoundError):  # a shard of failures only: no tar
                sums[sid] = file_sum(tar)
        atomic_write_json(sums_path(self.out), {str(k): v for k, v in sorted(sums.items())})

    def _write_ledger(self) -> None:
        try:
            write_ledger(self.out, self.trusted)
        except OSError as exc:
            if is_disk_full(exc):
                raise self._disk_full(f"writing its ledger failed: {exc}") from exc
            raise

    def _read_log(self) -> None:
        if self._no_space_line or (_size(self.log_path) or 0) <= self._log_offset:
            return
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            chunk = log.read(1 << 20)
        self._log_offset += len(chunk)
        text = self._log_tail + chunk
        if match := _NO_SPACE.search(text):
            line_start = text.rfind(b"\n", 0, match.start()) + 1
            line_end = text.find(b"\n", match.end())
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            self._no_space_line = line.decode(errors="replace").strip()[:300]
        self._log_tail = text[-200:]

    # -- after it ended on its own

    def finish(self, returncode: int) -> None:
        """Ledger every shard the child finished; raise if it failed (or the disk is full)."""
        self._dir_mtime = None
        self._next_listing = 0.0
        self._scan()
        self._read_log()
        unfinished = self.job.total_shards - len(self.trusted)
        if returncode != 0 or unfinished > 0:
            evidence = (
                f"its log says {self._no_space_line!r}" if self._no_space_line else None
            ) or self._no_space()
            if evidence:
                raise self._disk_full(evidence)
        if returncode != 0:
            raise DownloadError(
                f"img2dataset {self.job.name} exited with {returncode}; see {self.log_path}"
            )

    # -- a full disk

    def _no_space(self) -> str | None:
        """Evidence that the output's filesystem is full, or None."""
        free = free_bytes(self.out)
        if free is not None and free < LOW_SPACE_BYTES:
            return f"only {free} bytes are free"
        probe_dir = self.out if self.out.is_dir() else self.job.log_dir
        probe = probe_dir / f".space-probe-{os.getpid()}"
        try:
            with open(probe, "wb") as handle:
                handle.write(b"\0" * (64 << 10))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            if exc.errno in DISK_FULL_ERRNOS:
                return f"a 64 KiB probe write failed: {exc.strerror}"
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
        return None

    def _disk_full(self, evidence: str) -> OSError:
        cause = DownloadError(f"img2dataset {self.job.name}: {evidence}; log {self.log_path}")
        return disk_full(self.out, cause, self._space_needed())

    def _space_needed(self) -> int | None:
        """Rows still to write times the mean bytes per row of the finished shards."""
        rows = written = 0
        for stats in finished_shards(self.out).values():
            rows += int(stats.get("count", 0))
            for suffix in (".tar", ".parquet", "_stats.json"):
                written += _size(self.out / f"{stats['shard']}{suffix}") or 0
        if not rows:
            return None
        return max(self.job.rows - rows, 0) * written // rows or None


def _shard_no(name: str) -> int | None:
    head = name.split("_")[0].split(".")[0]
    return int(head) if head.isdigit() else None


def _mtime(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _size(path: Path) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def group_cpu_seconds(pgid: int) -> float | None:
    """CPU seconds used by the live processes of process group ``pgid`` and the children
    they reaped (Linux ``/proc``; None elsewhere)."""
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                data = handle.read()
        except OSError:  # gone meanwhile
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid:  # utime, stime, cutime, cstime
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")
