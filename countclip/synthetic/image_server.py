"""The loopback image server: renders the JPEG a URL names, and misbehaves on purpose.

A metadata URL is opaque (``/img/<SAMPLE_ID>.jpg``): the server looks the scene up in its
world's ground truth (:mod:`countclip.synthetic.ground_truth`), as a web host serves whatever
image it holds whatever the caption says. A URL with a scene query (``?n=3&shape=star&colour=red``:
CountBench, tests, benchmarks) is rendered as it says.

A real ``http.server.ThreadingHTTPServer`` on 127.0.0.1 so the downloader meets real sockets,
real timeouts and real broken responses. Which ids misbehave is a pure function of
``(world.seed, sample_id)`` (:func:`misbehaviour_for`), so tests and stages can predict failures
without asking the server. ``?fail=<kind>`` forces a misbehaviour on any URL.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from countclip.config import WorldConfig
from countclip.synthetic.ground_truth import WorldTruth, scene_for_request, world_truth
from countclip.synthetic.render import render_scene, warm_up
from countclip.synthetic.world import _PATH_RE, Scene

MISBEHAVIOURS: tuple[str, ...] = ("404", "500", "slow", "truncated", "not_image", "noai", "flaky")
"""What a misbehaving id gets: 404/500 errors; "slow" sleeps ``world.slow_seconds`` before a
good image (beyond the downloader's timeout); "truncated" promises more bytes than it sends, then
closes; "not_image" is a 200 with an HTML body; "noai" is a good image with ``X-Robots-Tag:
noai``; "flaky" is a 500 on the first request for the id and a good image afterwards."""

_NOT_IMAGE = b"<!DOCTYPE html><html><head><title>Moved</title></head><body>Nope</body></html>\n"
_CONNECTION_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


def misbehaviour_for(seed: int, sample_id: int, fraction: float) -> str | None:
    """The misbehaviour of ``sample_id`` in the world with ``seed`` (None = well behaved).

    A hash of (seed, id): uniform over ids, independent of the metadata's random draws, each of
    :data:`MISBEHAVIOURS` equally likely.
    """
    if fraction <= 0:
        return None
    digest = hashlib.blake2b(f"{seed}:{sample_id}".encode(), digest_size=16).digest()
    u = int.from_bytes(digest[:8], "little") / 2**64
    if u >= fraction:
        return None
    return MISBEHAVIOURS[int.from_bytes(digest[8:], "little") % len(MISBEHAVIOURS)]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # img2dataset opens dozens of connections at once
    owner: ImageServer

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up (timeouts on "slow") are expected: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "CountCLIPSynthetic/1.0"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        try:
            self._get()
        except _CONNECTION_ERRORS:
            self.close_connection = True

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _get(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        if parts.path in ("/", "/health"):
            self._send(200, b"ok\n", "text/plain")
            return
        if parts.path == "/world":  # which world this is (a second run may share it)
            self._send(200, f"{owner.identity}\n".encode(), "text/plain")
            return
        if _PATH_RE.fullmatch(parts.path) is None:
            self._send(404, b"not found\n", "text/plain")
            return
        try:
            scene = scene_for_request(self.path, owner.truth)
        except ValueError as exc:
            self._send(400, f"{exc}\n".encode(), "text/plain")
            return
        n_requests = owner._record(scene.sample_id)
        forced = parse_qs(parts.query).get("fail", [None])[0]
        if forced is not None and forced not in MISBEHAVIOURS:
            self._send(400, f"unknown fail kind {forced!r}\n".encode(), "text/plain")
            return
        kind = forced or owner.misbehaviour(scene.sample_id)
        if kind == "404":
            self._send(404, b"not found\n", "text/plain")
            return
        if kind == "500" or (kind == "flaky" and n_requests == 1):
            self._send(500, b"internal server error\n", "text/plain")
            return
        if kind == "not_image":
            self._send(200, _NOT_IMAGE, "text/html; charset=utf-8")
            return
        if kind == "slow" and owner._stopping.wait(owner.world.slow_seconds):
            self.close_connection = True  # shutting down: drop the request at once
            return
        body = owner.jpeg(scene)
        if kind == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body) + 4096))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        extra = {"X-Robots-Tag": "noai"} if kind == "noai" else None
        self._send(200, body, "image/jpeg", extra)


class ImageServer:
    """The synthetic world's image host on 127.0.0.1.

    ``with ImageServer(world) as srv:`` starts it (a random free port unless ``world.port``);
    ``srv.base_url`` is ``http://127.0.0.1:PORT``. ``start()``/``close()`` do the same outside a
    ``with``. Closing is quick even with "slow" requests in flight (they are abandoned).
    URLs written while one server ran point at its port: keep it running (or fix
    ``world.port``) for as long as they are downloaded.
    """

    def __init__(
        self, world: WorldConfig | None = None, host: str = "127.0.0.1", identity: str = ""
    ) -> None:
        self.world = world or WorldConfig()
        self.host = host
        self.identity = identity
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._requests: Counter[int] = Counter()
        self._truth: WorldTruth | None = None

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> ImageServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        warm_up(self.world.image_size)  # the first requests must not all wait on the textures
        self._truth = world_truth(self.world)  # nor on the world's draws
        httpd = _HTTPServer((self.host, self.world.port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"countclip-image-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # queries ---------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("ImageServer is not running (use `with ImageServer(world) as srv`)")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def truth(self) -> WorldTruth:
        """The served world's ground truth (what an opaque ``/img/<id>.jpg`` shows)."""
        if self._truth is None:
            self._truth = world_truth(self.world)
        return self._truth

    def misbehaviour(self, sample_id: int) -> str | None:
        """How this server answers ``sample_id`` when no ``?fail=`` forces it (None = fine)."""
        return misbehaviour_for(self.world.seed, sample_id, self.world.misbehave_fraction)

    def request_count(self, sample_id: int) -> int:
        """Requests seen for ``sample_id`` so far (any outcome)."""
        with self._lock:
            return self._requests[sample_id]

    def jpeg(self, scene: Scene) -> bytes:
        """The JPEG bytes the server sends for ``scene`` (deterministic)."""
        buf = io.BytesIO()
        render_scene(scene, self.world.image_size).save(
            buf, "JPEG", quality=self.world.jpeg_quality
        )
        return buf.getvalue()

    def _record(self, sample_id: int) -> int:
        with self._lock:
            self._requests[sample_id] += 1
            return self._requests[sample_id]
