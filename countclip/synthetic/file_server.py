"""The offline world's loopback file server: a folder (parquet parts, say) served over HTTP with
Range support and scripted misbehaviour, so the remote-metadata path (fsspec's HTTP filesystem
under DuckDB) runs against a real server with no network: the remote-metadata tests, the
metadata benchmark's ``--remote`` run, and a rehearsal of the real path use it. Python's
``http.server`` answers no Range requests, and a remote parquet reader that cannot range-read
would have to download every byte.

Every request is logged (method, path, Range header, status, bytes sent), so a caller can check
that ranges were used and how much of a file was fetched. Per-path rules make a file slow, fail
its first N requests with a status (500: transient) or vanish (404).

    with FileServer(Path("parts")) as server:
        source = f"{server.url}/part-0.parquet"
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Rule:
    """How the server misbehaves for one file."""

    delay: float = 0.0
    fail_status: int = 500
    fail_first: int = 0  # requests answered with fail_status before the file is served
    only_ranges: bool = False  # count (and fail) only ranged GETs, not HEAD


@dataclass(frozen=True)
class Hit:
    """One request as the server answered it."""

    method: str
    path: str
    range: str | None
    status: int
    sent: int


@dataclass
class FileServer:
    """Serves the files under ``root`` on 127.0.0.1 (a free port) while in its ``with`` block."""

    root: Path
    rules: dict[str, Rule] = field(default_factory=dict)
    log: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                server._answer(self, body=False)

            def do_GET(self) -> None:
                server._answer(self, body=True)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def hits(self, name: str) -> list[Hit]:
        return [h for h in self.log if h.path == f"/{name}"]

    def _record(self, hit: Hit) -> None:
        with self._lock:
            self.log.append(hit)

    def _failing(self, rule: Rule | None, ranged: bool) -> bool:
        if rule is None or rule.fail_first <= 0 or (rule.only_ranges and not ranged):
            return False
        with self._lock:
            rule.fail_first -= 1
        return True

    def _answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        name = h.path.lstrip("/").split("?", 1)[0]
        rule = self.rules.get(name)
        rng = h.headers.get("Range")
        if rule is not None and rule.delay:
            time.sleep(rule.delay)
        path = self.root / name
        status = 404 if not path.is_file() else None
        if status is None and self._failing(rule, ranged=body and rng is not None):
            status = rule.fail_status  # type: ignore[union-attr]
        if status is not None:
            h.send_response(status)
            h.send_header("Content-Length", "0")
            h.end_headers()
            self._record(Hit(h.command, h.path, rng, status, 0))
            return
        data = path.read_bytes()
        start, end = 0, len(data) - 1
        if rng:
            first, last = re.fullmatch(r"bytes=(\d*)-(\d*)", rng).groups()  # type: ignore[union-attr]
            if first:
                start, end = int(first), min(int(last) if last else end, end)
            else:
                start = len(data) - int(last)
        chunk = data[start : end + 1]
        h.send_response(206 if rng else 200)
        if rng:
            h.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        h.send_header("Content-Length", str(len(chunk)))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("Last-Modified", email.utils.formatdate(path.stat().st_mtime, usegmt=True))
        h.end_headers()
        # logged before the body goes out: the client may act on the bytes before this thread
        # runs again, and a test reading the log then must already see them (bytes "sent" are
        # those the server wrote or tried to write)
        self._record(Hit(h.command, h.path, rng, 206 if rng else 200, len(chunk) if body else 0))
        if body:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                h.wfile.write(chunk)
