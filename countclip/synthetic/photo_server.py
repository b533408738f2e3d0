"""A loopback server of real photographs, for rehearsing the real path offline.

``GET /photo/<id>.jpg`` answers a JPEG cut deterministically (by ``id``) from the photographs
that scikit-image and scikit-learn ship (a cat, coffee, an astronaut, a rocket, coins, a
camera man, a Chinese temple, a flower...) or, for every fourth id, a drawn picture of a few
discs: real image content, sizes and JPEG encodings for the download and the detector. The
query string misbehaves on purpose, like LAION's links: ``?fail=404`` (or any status) answers
that status, ``?slow=S`` waits S seconds first.
"""

from __future__ import annotations

import io
import threading
import time
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image, ImageDraw

SKIMAGE_PHOTOS = (
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "coins",
    "camera",
    "hubble_deep_field",
)


@cache
def photographs() -> tuple[Image.Image, ...]:
    """The real photographs scikit-image and scikit-learn ship, as RGB images."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    arrays = [getattr(data, name)() for name in SKIMAGE_PHOTOS]
    arrays += list(load_sample_images().images)
    return tuple(Image.fromarray(np.asarray(a)).convert("RGB") for a in arrays)


def drawn(sample: int, size: int = 256) -> Image.Image:
    """A few discs on a plain background (2..6 of them, by ``sample``)."""
    rng = np.random.default_rng(sample)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(180, 256, 3)))
    draw = ImageDraw.Draw(image)
    for i in range(2 + sample % 5):
        x, y = (i % 3) * size // 3 + size // 12, (i // 3) * size // 3 + size // 12
        colour = tuple(int(v) for v in rng.integers(0, 120, 3))
        draw.ellipse((x, y, x + size // 5, y + size // 5), fill=colour)
    return image


def photo(sample: int, size: int = 320) -> bytes:
    """The JPEG for ``sample``: a seeded crop of a real photograph, or a drawn picture."""
    if sample % 4 == 3:
        image = drawn(sample)
    else:
        pool = photographs()
        source = pool[sample % len(pool)]
        rng = np.random.default_rng(sample)
        side = int(min(source.size) * rng.uniform(0.6, 1.0))
        left = int(rng.integers(0, source.width - side + 1))
        top = int(rng.integers(0, source.height - side + 1))
        image = source.crop((left, top, left + side, top + side)).resize((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if "slow" in query:
            time.sleep(float(query["slow"][0]))
        name = url.path.rsplit("/", 1)[-1]
        if "fail" in query or not url.path.startswith("/photo/") or not name.endswith(".jpg"):
            status = int(query.get("fail", ["404"])[0])
            self.send_error(status)
            return
        try:
            body = photo(int(name.removesuffix(".jpg")))
        except ValueError:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # quiet
        pass


class PhotoServer:
    """Serves :func:`photo` on 127.0.0.1 (a free port) while in its ``with`` block."""

    def __enter__(self) -> PhotoServer:
        photographs()  # load them before the first request, not inside it
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
