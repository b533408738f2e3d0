"""Remote parquet for DuckDB with no extension download: fsspec filesystems registered on the
connection (``con.register_filesystem``).

DuckDB reads ``http(s)://`` through its httpfs extension, which it downloads at run time: offline
(or on an air-gapped cluster) the first remote query fails after a long wait. Instead, every
remote protocol a source names gets an fsspec filesystem registered on the connection, and
DuckDB reads through it, ranges and all:

* ``http://``, ``https://`` — fsspec's HTTP filesystem (aiohttp), adapted for DuckDB by
  :class:`HTTPFileSystemForDuckDB`: existence by ``HEAD`` (fsspec's own check ``GET``\\ s the
  whole file), sizes cached per connection, ``modified()`` (which DuckDB asks for), a timeout
  on every request, and failures classified (404 → not found, 401/403 → access denied,
  5xx/429/connection/timeout → transient) and recorded with their URL;
* ``hf://`` — ``huggingface_hub.HfFileSystem`` (the ``hf`` extra; a gated dataset such as
  Re-LAION needs ``HF_TOKEN``);
* any other fsspec protocol (``s3://`` with s3fs, ``gs://`` with gcsfs, ...) — its fsspec
  implementation when installed (not exercised by the tests).

HTTP cannot list a directory, so a source names its files: a list, or a brace range
(``part-{00000..00031}.parquet``, expanded by :func:`expand`). Globs work for local paths and
for protocols that can list (``hf://``, ``s3://``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import glob as globlib
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
import fsspec
from braceexpand import braceexpand
from fsspec.asyn import sync
from fsspec.implementations.http import HTTPFile, HTTPFileSystem

REMOTE_PREFIXES = (
    "http://",
    "https://",
    "s3://",
    "s3a://",
    "gs://",
    "gcs://",
    "hf://",
    "r2://",
    "az://",
    "abfss://",
)
HTTP_PROTOCOLS = ("http", "https")
_EPOCH = dt.datetime.fromtimestamp(0, dt.UTC)


class RemoteSourceError(ConnectionError):
    """A remote read failed for a reason that may go away (5xx, 429, a refused or reset
    connection, a timeout): the orchestration layer retries it. The message names the URL."""


class RemoteNotFound(FileNotFoundError):
    """The server says the file does not exist (404/410): retrying cannot help."""


class RemoteAccessDenied(PermissionError):
    """401/403, a gated dataset without a token, or an offline hub: retrying cannot help."""


def is_remote(source: str | Sequence[str]) -> bool:
    """Whether ``source`` (a path/URL or a list of them) names anything remote."""
    if isinstance(source, str):
        return source.lower().startswith(REMOTE_PREFIXES)
    return any(is_remote(s) for s in source)


def protocol_of(url: str) -> str:
    return url.split("://", 1)[0].lower()


def has_magic(path: str) -> bool:
    """Glob characters in ``path``; for http(s) only ``*`` and ``[`` (a ``?`` starts a query)."""
    chars = "*[" if protocol_of(path) in HTTP_PROTOCOLS and "://" in path else "*?["
    return any(c in path for c in chars)


def entries(source: str | Sequence[str]) -> list[str]:
    """``source`` as a list of brace-expanded entries (globs not yet expanded): what a stage's
    identity is computed from, without touching the network."""
    items = [source] if isinstance(source, str) else list(source)
    out: list[str] = []
    for item in items:
        out += braceexpand(item if is_remote(item) else os.path.expanduser(item))
    return out


class HTTPFileSystemForDuckDB(HTTPFileSystem):
    """fsspec's HTTP filesystem with what DuckDB needs of a registered filesystem.

    One instance per DuckDB connection (``skip_instance_cache``), so its cache of file sizes
    lives as long as the query plan that relies on them. Reads fetch exactly the ranges DuckDB
    asks for (``cache_type="none"``): DuckDB asks for whole column chunks and caches what it
    read itself, so fsspec's read-ahead blocks would only fetch bytes no query needs.
    """

    protocol = HTTP_PROTOCOLS

    def __init__(self, timeout: float = 60.0, **kwargs: Any) -> None:
        client_kwargs = {
            "timeout": aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        }
        super().__init__(cache_type="none", client_kwargs=client_kwargs, **kwargs)
        self.timeout = timeout
        self._infos: dict[str, dict] = {}
        self.failures: list[BaseException] = []

    def _fail(self, url: str, exc: BaseException) -> BaseException:
        """``exc`` as one of this module's errors, naming ``url``; remembered, so that the
        caller can report it instead of DuckDB's wrapped traceback."""
        err = classify(url, exc, self.timeout)
        self.failures.append(err)
        return err

    async def _info(self, url: str, **kwargs: Any) -> dict:
        if url in self._infos:
            return self._infos[url]
        session = await self.set_session()
        try:
            async with session.head(
                self.encode_url(url), allow_redirects=True, headers={"Accept-Encoding": "identity"}
            ) as r:
                r.raise_for_status()
                headers = r.headers
        except Exception as exc:
            raise self._fail(url, exc) from exc
        if "Content-Length" not in headers:
            # deterministic: the file cannot be read by ranges (a ValueError is not retried)
            raise self._fail(url, ValueError(f"{url}: the server sends no Content-Length"))
        info = {
            "name": url,
            "type": "file",
            "size": int(headers["Content-Length"]),
            "Last-Modified": headers.get("Last-Modified"),
            "ETag": headers.get("ETag"),
        }
        self._infos[url] = info
        return info

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        try:
            await self._info(path)
        except RemoteNotFound:
            return False
        return True

    async def _isfile(self, path: str, **kwargs: Any) -> bool:
        return await self._exists(path)

    async def _glob(self, path: str, maxdepth: int | None = None, **kwargs: Any):
        if has_magic(path):
            raise self._fail(path, ValueError(f"{path}: {_NO_LISTING}"))
        found = await self._exists(path)
        if kwargs.get("detail"):
            return {path: await self._info(path)} if found else {}
        return [path] if found else []

    def modified(self, path: str) -> dt.datetime:
        """DuckDB asks for it (its parquet metadata cache); the epoch when the server sends no
        Last-Modified (the file is then assumed unchanged, as fsspec assumes for HTTP)."""
        stamp = self.info(path).get("Last-Modified")
        return email.utils.parsedate_to_datetime(stamp) if stamp else _EPOCH

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, **kwargs: Any):
        if mode != "rb":
            raise NotImplementedError(f"{path}: read-only")
        return SharedReader(
            _RecordingHTTPFile(
                self,
                path,
                session=sync(self.loop, self.set_session),
                block_size=block_size or self.block_size,
                mode=mode,
                size=self.info(path)["size"],
                cache_type=kwargs.get("cache_type") or self.cache_type,
                cache_options=kwargs.get("cache_options") or self.cache_options,
                loop=self.loop,
                **self.kwargs,
            )
        )


class SharedReader:
    """A read-only file that DuckDB's threads can share.

    DuckDB's Python filesystem reads at an offset in two calls, ``seek`` then ``read``, each
    holding the GIL on its own; threads sharing one handle (one parquet file, several row
    groups) would read at each other's offsets and hand the parquet reader garbage. Here each
    thread keeps its own position, and the seek-and-read on the inner file runs under a lock.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._local = threading.local()

    def tell(self) -> int:
        return getattr(self._local, "pos", 0)

    def seek(self, loc: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.tell(), 2: self._inner.size}[whence]
        self._local.pos = base + loc
        return self._local.pos

    def read(self, length: int = -1) -> bytes:
        with self._lock:
            self._inner.seek(self.tell())
            data = self._inner.read(length)
        self._local.pos = self.tell() + len(data)
        return data

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> SharedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _shared_reads(cls: type) -> type:
    """``cls`` (an fsspec filesystem) whose opened files are shared readers."""

    def _open(self: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cache_type", "none")  # as for HTTP: DuckDB asks for what it needs
        return SharedReader(cls._open(self, *args, **kwargs))

    return type(f"DuckDB{cls.__name__}", (cls,), {"_open": _open})


class _RecordingHTTPFile(HTTPFile):
    """Range reads whose failures are recorded on the filesystem with their URL."""

    def _fetch_range(self, start: int, end: int) -> bytes:
        try:
            return super()._fetch_range(start, end)
        except Exception as exc:
            raise self.fs._fail(self.url, exc) from exc


_NO_LISTING = (
    "an HTTP server cannot list a directory, so a glob cannot be expanded: give "
    "metadata.source as a list of URLs or a brace range (part-{00000..00031}.parquet)"
)


def classify(url: str, exc: BaseException, timeout: float | None = None) -> BaseException:
    """``exc`` (from aiohttp, fsspec or huggingface_hub) as :class:`RemoteNotFound`,
    :class:`RemoteAccessDenied`, :class:`RemoteSourceError` or a ``ValueError``, naming
    ``url``."""
    if isinstance(exc, RemoteSourceError | RemoteNotFound | RemoteAccessDenied):
        return exc
    if isinstance(exc, ValueError):  # a deterministic problem (no listing, no range support)
        return exc if str(exc).startswith(url) else ValueError(f"{url}: {exc}")
    status = getattr(exc, "status", None) or getattr(
        getattr(exc, "response", None), "status_code", None
    )
    name = type(exc).__name__
    if name == "OfflineModeIsEnabled":
        return RemoteAccessDenied(f"{url}: HF_HUB_OFFLINE=1 is set; unset it to read the Hub")
    if name == "GatedRepoError" or status in (401, 403):
        return RemoteAccessDenied(
            f"{url}: access denied (HTTP {status or 403}); for a gated Hugging Face dataset "
            "accept its terms on huggingface.co and set HF_TOKEN"
        )
    if (
        status in (404, 410)
        or isinstance(exc, FileNotFoundError)
        or name
        in (
            "RepositoryNotFoundError",
            "RemoteEntryNotFoundError",
            "EntryNotFoundError",
        )
    ):
        return RemoteNotFound(f"{url}: not found on the server (HTTP {status or 404})")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        limit = f" within {timeout:g} s (metadata.timeout)" if timeout else ""
        return RemoteSourceError(f"{url}: the server did not answer{limit}")
    if status is not None:
        return RemoteSourceError(f"{url}: HTTP {status} ({getattr(exc, 'message', exc)})")
    return RemoteSourceError(f"cannot read {url}: {name}: {exc}")


class RemoteFiles:
    """The fsspec filesystems of one DuckDB connection, one per protocol the source uses."""

    def __init__(self, protocols: Iterable[str], timeout: float) -> None:
        self.timeout = timeout
        self.filesystems: dict[str, fsspec.AbstractFileSystem] = {}
        for protocol in sorted(set(protocols)):
            if protocol in HTTP_PROTOCOLS:
                fs = self.filesystems.get("http") or HTTPFileSystemForDuckDB(
                    timeout=timeout, skip_instance_cache=True
                )
            else:
                fs = _other_filesystem(protocol)
            self.filesystems[protocol] = fs

    def register(self, con: Any) -> None:
        for fs in {id(fs): fs for fs in self.filesystems.values()}.values():
            con.register_filesystem(fs)

    def fs(self, url: str) -> fsspec.AbstractFileSystem:
        return self.filesystems[protocol_of(url)]

    def probe(self, url: str) -> int:
        """The size of ``url`` in bytes; raises this module's errors, naming the URL."""
        try:
            return int(self.fs(url).info(url)["size"])
        except Exception as exc:
            raise classify(url, exc, self.timeout) from exc

    def glob(self, pattern: str) -> list[str]:
        """The URLs a remote glob matches (``hf://``, ``s3://``; never http)."""
        fs = self.fs(pattern)
        if protocol_of(pattern) in HTTP_PROTOCOLS:
            raise ValueError(f"{pattern}: {_NO_LISTING}")
        try:
            found = fs.glob(pattern)
        except Exception as exc:
            raise classify(pattern, exc, self.timeout) from exc
        prefix = f"{protocol_of(pattern)}://"
        return sorted(p if p.startswith(prefix) else prefix + p for p in found)

    def failure(self) -> BaseException | None:
        """The first read failure an HTTP filesystem recorded (with its URL), if any."""
        for fs in self.filesystems.values():
            if getattr(fs, "failures", None):
                return fs.failures[0]
        return None


def _other_filesystem(protocol: str) -> fsspec.AbstractFileSystem:
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        hint = " (pip install 'countclip[hf]')" if protocol == "hf" else ""
        raise ValueError(f"{protocol}:// needs an fsspec filesystem{hint}: {exc}") from exc
    return _shared_reads(cls)(skip_instance_cache=True)


def expand(source: str | Sequence[str], remote: RemoteFiles | None) -> list[str]:
    """The files ``source`` names, in order: brace ranges expanded, local globs matched (sorted;
    one that matches nothing raises ``FileNotFoundError``), remote globs listed where the
    protocol can list. Remote URLs are not checked here (see :meth:`RemoteFiles.probe`)."""
    files: list[str] = []
    for entry in entries(source):
        if is_remote(entry):
            if has_magic(entry):
                if remote is None:
                    raise ValueError(f"{entry}: a remote glob needs a connection")
                matched = remote.glob(entry)
                if not matched:
                    raise RemoteNotFound(f"no file matches {entry!r}")
                files += matched
            else:
                files.append(entry)
        elif has_magic(entry):
            matched = sorted(globlib.glob(entry, recursive=True))
            if not matched:
                raise FileNotFoundError(f"no parquet file matches {entry!r}")
            files += matched
        else:
            files.append(entry)
    return files
