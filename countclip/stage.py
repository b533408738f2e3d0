"""Stage directories, fingerprints and manifests: the contract every pipeline stage follows.

Each stage writes its outputs under ``<data_root>/<stage>/<fingerprint>/`` and writes a small
``manifest.json`` *last*. A directory with a manifest is complete; one without is garbage from a
crash and is safe to delete or resume. Because the fingerprint covers the inputs' content
fingerprints and the stage config, a Prefect cache hit and "the manifest already exists" always
agree: both mean "the same inputs, the same config, already done".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

MANIFEST_NAME = "manifest.json"


def _canonical(obj: Any) -> Any:
    """Make ``obj`` JSON-serialisable in a stable way (pydantic models, paths, sets, tuples)."""
    if isinstance(obj, BaseModel):
        return _canonical(obj.model_dump(mode="json"))
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted(_canonical(v) for v in obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def fingerprint(*parts: Any, length: int = 16) -> str:
    """A short, stable hex digest of any mix of config models, manifests, dicts and strings."""
    payload = json.dumps([_canonical(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def file_fingerprint(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Content hash of a file (sha256, first 16 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]


def stage_dir(data_root: str | os.PathLike[str], stage: str, fp: str) -> Path:
    """``<data_root>/<stage>/<fp>`` (not created)."""
    return Path(data_root) / stage / fp


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temp file next to ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(_canonical(obj), indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a writer that needs a filename (DuckDB COPY,
    pyarrow, matplotlib); rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp directory beside ``path``; on success it replaces ``path`` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_manifest(directory: str | os.PathLike[str], manifest: Mapping[str, Any]) -> dict:
    """Write ``manifest.json`` (atomically, last) and return the manifest as written."""
    body = dict(_canonical(dict(manifest)))
    body.setdefault("written_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    body.setdefault("directory", str(Path(directory)))
    atomic_write_json(Path(directory) / MANIFEST_NAME, body)
    return body


def read_manifest(directory: str | os.PathLike[str]) -> dict | None:
    """The manifest of a finished stage directory, or None if the stage never finished."""
    path = Path(directory) / MANIFEST_NAME
    if not path.exists():
        return None
    return json.loads(path.read_text())


class Timer:
    """``with Timer() as t: ...; t.seconds`` — wall time for manifests."""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = round(time.perf_counter() - self.start, 3)
