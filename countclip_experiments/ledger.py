"""The confirmatory ledger: every run on a confirmatory CountBench registers itself, in a
committed file, before it reads anything.

``results/ledger.json`` is a list of entries, one per confirmatory run ever started: the
experiment, the recipe family, which CountBench (a digest of its scenes, so a renamed split or
another world with the same scenes is the same CountBench), the commit, the config and arms
hashes, the seeds, the command, when it started, and its status (``started``, then
``finished`` or ``aborted``). The guard (:func:`register`):

- refuses a tree with any modified **or untracked** file (``git status --porcelain``; ignored
  build outputs such as ``data/`` and ``.venv/`` are not the recipe), so what ran is a commit;
- refuses a second entry for the same CountBench and recipe family, whatever the experiment's
  ``--name``. The entries it compares against are the union of the ledger in this tree and in
  every branch head, every worktree's HEAD and every ``refs/countclip-ledger/*`` ref of the
  repository: a worktree (or a branch) started before an entry was made still sees it;
- writes the entry and commits that one file (``git commit -- results/ledger.json``), and
  points ``refs/countclip-ledger/<id>`` at the commit, before the run starts; a run that
  cannot commit its entry does not start;
- updates the entry's status when the run ends (``finished``; ``aborted`` with the error,
  interrupts included) and commits that too. A run killed outright stays ``started``: it
  still counts, so an aborted run can never be repeated under a new entry.

An unfinished entry can be **resumed** (:func:`resume`), which is not a second entry: only from
the tree that registered it, whose code is still the recipe's commit (``git diff`` from it
names the ledger alone), with the same experiment, config, config and arms hashes and seeds,
and with nothing uncommitted but the run's own rows. Every stage is cached under the data root
and deterministic, so a resumed run computes what the uninterrupted one would have: nothing
about the recipe can change between the two, which is what the guard protects. A 5-seed run
that needs more CPU hours than one sitting has is made this way; each resumption is recorded
in the entry (when, where, and how the previous attempt ended).

The recipe family names the question a confirmatory run answers (:data:`FAMILIES`); a new
family is a code change, reviewed like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LEDGER = Path("results") / "ledger.json"
"""Where the ledger lives, relative to the repository root."""
REF_PREFIX = "refs/countclip-ledger/"
FAMILIES: dict[str, str] = {
    "counting": "a CountCLIP recipe against the strong L_CLIP-only control: does it teach "
    "counting (the naive-filtered ablation beside it)?",
    "noise": "naive vs verified counting sets at another share of wrong captions (a "
    "descriptive ablation of one committed recipe)",
}
"""Recipe families: one confirmatory read per CountBench and family."""
STATUSES = ("started", "finished", "aborted")


class LedgerRefused(SystemExit):
    """The guard refused the run (the message says why); exits non-zero like SystemExit."""


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=check
    )  # fmt: skip


def toplevel(path: Path) -> Path:
    """The root of the git working tree holding ``path`` (refuses outside one)."""
    try:
        out = _git(path, "rev-parse", "--show-toplevel").stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise LedgerRefused(f"{path}: not a git working tree ({exc}); commit the recipe") from exc
    return Path(out)


def git_status(repo: Path) -> list[tuple[str, str]]:
    """``(code, path)`` of every modified, staged, deleted **and untracked** file (``git status
    --porcelain``: ``"??"`` is untracked); ignored files are not listed."""
    out = _git(repo, "status", "--porcelain", "--untracked-files=all").stdout
    return [(line[:2], line[3:]) for line in out.splitlines() if line.strip()]


def countbench_digest(scenes: Any) -> str:
    """What identifies a CountBench: every scene's id, count, kind and caption, hashed."""
    rows = [[s.sample_id, s.count, s.shape, s.colour, text] for s, text in scenes]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def _read(text: str | None, where: str) -> list[dict[str, Any]]:
    if not text:
        return []
    entries = json.loads(text)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise LedgerRefused(f"{where}: the ledger must be a JSON list of entries")
    return entries


def _refs(repo: Path) -> list[str]:
    """Every commit whose ledger counts: branch heads, ledger refs, each worktree's HEAD."""
    out = _git(repo, "for-each-ref", "--format=%(objectname)", "refs/heads", REF_PREFIX).stdout
    commits = set(out.split())
    worktrees = _git(repo, "worktree", "list", "--porcelain").stdout
    commits |= {line.split()[1] for line in worktrees.splitlines() if line.startswith("HEAD ")}
    head = _git(repo, "rev-parse", "--verify", "-q", "HEAD", check=False).stdout.strip()
    return sorted(commits | ({head} if head else set()))


def known_entries(repo: Path) -> list[dict[str, Any]]:
    """Every entry of the ledger as this tree, every branch, worktree and ledger ref hold it
    (deduplicated by id; the latest status of an entry wins: finished/aborted over started)."""
    found: dict[str, dict[str, Any]] = {}
    sources = [(None, repo / LEDGER)] + [(commit, None) for commit in _refs(repo)]
    for commit, path in sources:
        if path is not None:
            text = _text(path)
            where = str(path)
        else:
            shown = _git(repo, "show", f"{commit}:{LEDGER.as_posix()}", check=False)
            text, where = (shown.stdout if shown.returncode == 0 else None), f"{commit}:{LEDGER}"
        for entry in _read(text, where):
            key = entry.get("id") or json.dumps(entry, sort_keys=True)
            if key not in found or found[key].get("status") == "started":
                found[key] = entry
    return list(found.values())


def conflicts(
    entries: list[dict[str, Any]], countbench: Mapping[str, Any], family: str
) -> list[dict[str, Any]]:
    """The entries that used this CountBench for this recipe family."""
    return [
        e
        for e in entries
        if e.get("family") == family
        and (e.get("countbench") or {}).get("digest") == countbench["digest"]
    ]


def _commit(repo: Path, message: str) -> str:
    """Commit the ledger file alone (whatever else is staged stays staged); the new commit."""
    path = LEDGER.as_posix()
    _git(repo, "add", "--", path)
    done = _git(repo, "commit", "-q", "-m", message, "--", path, check=False)
    if done.returncode != 0:
        raise LedgerRefused(
            f"could not commit {path} (git commit: {done.stderr.strip() or done.stdout.strip()}); "
            "the run does not start unregistered"
        )
    return _git(repo, "rev-parse", "HEAD").stdout.strip()


def _write(repo: Path, entries: list[dict[str, Any]]) -> None:
    path = repo / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _set_status(
    repo: Path, entry_id: str, verb: str | None = None, **fields: Any
) -> dict[str, Any]:
    """Update one entry of this tree's ledger, commit it (``ledger: <experiment> <verb>``, the
    new status by default), move its ref to the new commit."""
    entries = _read(_text(repo / LEDGER), "ledger")
    mine = next((e for e in entries if e.get("id") == entry_id), None)
    if mine is None:  # edited by hand while the run ran: say so, never invent it back
        raise LedgerRefused(f"{repo / LEDGER}: entry {entry_id} is gone from the ledger")
    mine.update(fields)
    _write(repo, entries)
    commit = _commit(
        repo, f"ledger: {mine['experiment']} {verb or fields.get('status', 'updated')}"
    )
    _git(repo, "update-ref", REF_PREFIX + entry_id, commit)
    return mine


RECIPE_FIELDS = ("experiment", "config", "config_hash", "arms_file_sha256", "seeds",
                 "seeds_by_arm")  # fmt: skip
"""What a resumed run must share with its entry: the recipe and what it runs."""


@dataclass
class Registration:
    """A registered confirmatory run: its entry and the commit that registered it."""

    repo: Path
    entry: dict[str, Any]
    commit: str

    def finish(self, **fields: Any) -> dict[str, Any]:
        self.entry = _set_status(
            self.repo, self.entry["id"], status="finished", finished_at=_now(), **fields
        )
        return self.entry

    def abort(self, reason: str) -> dict[str, Any]:
        self.entry = _set_status(
            self.repo, self.entry["id"], status="aborted", finished_at=_now(), reason=reason
        )
        return self.entry


STAMP = "%Y-%m-%dT%H:%M:%S%z"
"""How the ledger writes a time (local time with its UTC offset)."""


def _now() -> str:
    return time.strftime(STAMP)


def register(
    where: Path,
    *,
    experiment: str,
    family: str,
    countbench: Mapping[str, Any],
    config: str,
    config_hash: str,
    arms_file_sha256: str,
    seeds: list[int],
    seeds_by_arm: Mapping[str, list[int]],
    command: list[str] | str,
) -> Registration:
    """Check the tree and the ledger, then write and commit this run's entry (status
    ``started``). Raises :class:`LedgerRefused` instead of registering when the tree has any
    modified or untracked file, when the family is unknown, or when an entry for this
    CountBench and family exists anywhere in the repository."""
    repo = toplevel(Path(where))
    if family not in FAMILIES:
        raise LedgerRefused(f"recipe family {family!r}: expected one of {sorted(FAMILIES)}")
    dirty = [path for _, path in git_status(repo)]
    if dirty:
        shown = ", ".join(dirty[:8]) + (f" and {len(dirty) - 8} more" if len(dirty) > 8 else "")
        raise LedgerRefused(
            f"confirmatory CountBench: the tree has uncommitted or untracked files ({shown}); "
            "commit the recipe (config, countclip_experiments/arms.yaml, code) first, so the "
            "numbers trace to a commit"
        )
    used = conflicts(known_entries(repo), countbench, family)
    if used:
        seen = "; ".join(
            f"{e.get('experiment')} ({e.get('status')}, {e.get('started_at')}, commit "
            f"{str(e.get('commit'))[:12]})"
            for e in used
        )
        raise LedgerRefused(
            f"the {countbench.get('split')} CountBench {countbench['digest']} was already "
            f"used for recipe family {family!r}: {seen}. A confirmatory CountBench answers "
            "one family once; a new question needs a fresh CountBench (world.confirmatory_seed)"
        )
    head = _git(repo, "rev-parse", "HEAD").stdout.strip()
    entry = {
        "id": uuid.uuid4().hex[:12],
        "experiment": experiment,
        "family": family,
        "countbench": dict(countbench),
        "commit": head,
        "config": config,
        "config_hash": config_hash,
        "arms_file_sha256": arms_file_sha256,
        "seeds": list(seeds),
        "seeds_by_arm": {k: list(v) for k, v in seeds_by_arm.items()},
        "command": command if isinstance(command, str) else shlex.join(command),
        "worktree": str(repo),
        "host": socket.gethostname(),
        "started_at": _now(),
        "status": "started",
    }
    entries = _read(_text(repo / LEDGER), "ledger")
    _write(repo, [*entries, entry])
    try:
        commit = _commit(
            repo,
            f"ledger: register {experiment} on the {countbench.get('split')} CountBench "
            f"{countbench['digest']} (family {family})",
        )
    except LedgerRefused:
        _write(repo, entries) if entries else (repo / LEDGER).unlink(missing_ok=True)
        raise
    _git(repo, "update-ref", REF_PREFIX + entry["id"], commit)
    return Registration(repo, entry, commit)


def resume(
    where: Path,
    *,
    family: str,
    countbench: Mapping[str, Any],
    own_rows: str,
    command: list[str] | str,
    **recipe: Any,
) -> Registration:
    """Take up this tree's unfinished entry for this CountBench and family again (status
    ``started`` once more, the resumption recorded and committed).

    Refuses (:class:`LedgerRefused`) when there is no such entry in this tree's ledger, when it
    finished, when any of :data:`RECIPE_FIELDS` differs from ``recipe``, when the code differs
    from the entry's commit (anything but the ledger changed since), or when a file other than
    the run's own rows (untracked files under ``own_rows``) is uncommitted."""
    repo = toplevel(Path(where))
    mine = conflicts(_read(_text(repo / LEDGER), str(repo / LEDGER)), countbench, family)
    if not mine:
        elsewhere = conflicts(known_entries(repo), countbench, family)
        raise LedgerRefused(
            f"nothing to resume in {repo / LEDGER} for the {countbench.get('split')} CountBench "
            f"{countbench['digest']} (family {family!r})"
            + ("; its entry was made in another tree: resume from there" if elsewhere else "")
        )
    entry = mine[-1]
    if entry.get("status") == "finished":
        raise LedgerRefused(
            f"entry {entry['id']} ({entry['experiment']}) finished: nothing to resume"
        )
    differs = [k for k in RECIPE_FIELDS if entry.get(k) != recipe.get(k)]
    if differs:
        shown = "; ".join(f"{k}: entry {entry.get(k)!r}, now {recipe.get(k)!r}" for k in differs)
        raise LedgerRefused(f"entry {entry['id']} was registered for another run ({shown})")
    changed = _git(repo, "diff", "--name-only", entry["commit"], "HEAD").stdout.split()
    code = [path for path in changed if path != LEDGER.as_posix()]
    if code:
        raise LedgerRefused(
            f"entry {entry['id']} ran commit {entry['commit'][:12]}; since then "
            f"{', '.join(code[:8])} changed: a resumed run is the registered recipe or nothing"
        )
    prefix = own_rows.rstrip("/") + "/"
    dirty = [
        path
        for code, path in git_status(repo)
        if not (code == "??" and path.startswith(prefix))  # the run's own rows, untracked
    ]
    if dirty:
        raise LedgerRefused(
            f"resume: uncommitted files other than the run's own rows ({', '.join(dirty[:8])})"
        )
    attempt = {
        "at": _now(),
        "host": socket.gethostname(),
        "command": command if isinstance(command, str) else shlex.join(command),
        "previous_status": entry.get("status"),
        "previous_reason": entry.get("reason"),
        "previous_end": entry.get("finished_at"),
    }
    resumed = _set_status(
        repo, entry["id"], "resumed", status="started", reason=None, finished_at=None,
        resumed=[*(entry.get("resumed") or []), attempt],
    )  # fmt: skip
    head = _git(repo, "rev-parse", "HEAD").stdout.strip()
    return Registration(repo, resumed, head)


def _text(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


@contextmanager
def registered(
    where: Path, *, resume_from: str | None = None, **fields: Any
) -> Iterator[Registration]:
    """:func:`register` (or with ``resume_from``, the run's rows folder, :func:`resume`), then
    the block; the entry becomes ``finished`` when the block ends (unless it called
    :meth:`Registration.finish` itself, with its own fields) and ``aborted`` (with the error)
    when it raises, interrupts and SIGTERM included."""
    if resume_from is None:
        registration = register(where, **fields)
    else:
        registration = resume(where, own_rows=resume_from, **fields)
    previous = _raise_on_sigterm()
    try:
        yield registration
    except BaseException as exc:
        registration.abort(f"{type(exc).__name__}: {exc}"[:500])
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if registration.entry.get("status") == "started":
        registration.finish()


def _raise_on_sigterm() -> Any:
    """Make SIGTERM an exception (so the entry says ``aborted``); the previous handler, or
    None off the main thread (where signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)
