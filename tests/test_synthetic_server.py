"""The loopback image server, over real HTTP: good images and every misbehaviour."""

from __future__ import annotations

import collections
import http.client
import io
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest
from PIL import Image, UnidentifiedImageError

from countclip.config import WorldConfig
from countclip.synthetic import (
    MISBEHAVIOURS,
    ImageServer,
    Scene,
    generate_metadata,
    misbehaviour_for,
    render_scene,
    scene_for_id,
    scene_url,
    world_truth,
)

WORLD = WorldConfig(
    seed=3, rows=2000, misbehave_fraction=0.3, slow_seconds=2.0, image_size=96, caption_noise=0.3
)


@pytest.fixture(scope="module")
def srv() -> Iterator[ImageServer]:
    with ImageServer(WORLD) as server:
        yield server


def _url(srv: ImageServer, sample_id: int, fail: str | None = None, count: int = 3) -> str:
    url = scene_url(srv.base_url, Scene(sample_id, count, "star", "red"))
    return f"{url}&fail={fail}" if fail else url


def _get(url: str, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _ids_by_kind(n: int = 2000) -> dict[str | None, list[int]]:
    out: dict[str | None, list[int]] = collections.defaultdict(list)
    for i in range(n):
        out[misbehaviour_for(WORLD.seed, i, WORLD.misbehave_fraction)].append(i)
    return out


def test_good_image_is_the_rendered_scene(srv: ImageServer) -> None:
    assert srv.base_url.startswith("http://127.0.0.1:")
    good = _ids_by_kind()[None][0]
    status, headers, body = _get(_url(srv, good))
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert "X-Robots-Tag" not in headers
    img = Image.open(io.BytesIO(body))
    assert img.format == "JPEG" and img.size == (96, 96)
    assert body == srv.jpeg(Scene(good, 3, "star", "red"))
    ref = render_scene(Scene(good, 3, "star", "red"), 96)
    diff = sum(abs(a - b) for a, b in zip(img.convert("RGB").tobytes(), ref.tobytes(), strict=True))
    assert diff / len(ref.tobytes()) < 6  # only JPEG noise


def test_an_opaque_url_shows_the_ground_truth_even_against_its_caption(
    srv: ImageServer, tmp_path
) -> None:
    """A metadata URL names only the id; the server renders what the world's ground truth holds
    for it: the caption's count on a clean row, another count on a noisy one."""
    truth = world_truth(WORLD)
    good = {i for i in range(len(truth)) if srv.misbehaviour(i) is None}
    clean = next(i for i in sorted(good) if truth.caption_kind[i] == 1 and truth.noise[i] == 0)
    noisy = next(i for i in sorted(good) if truth.noise[i] != 0)
    part = generate_metadata(tmp_path, WORLD, srv.base_url)[0]
    rows = pq.read_table(part, columns=["SAMPLE_ID", "URL"]).to_pydict()
    urls = dict(zip(rows["SAMPLE_ID"], rows["URL"], strict=True))
    for sample_id in (clean, noisy):
        scene = truth.scene(sample_id)
        assert urls[sample_id] == f"{srv.base_url}/img/{sample_id}.jpg"
        status, _, body = _get(urls[sample_id])
        assert status == 200 and body == srv.jpeg(scene)
    assert truth.scene(clean).count == truth.caption_count[clean]
    assert truth.scene(noisy).count != truth.caption_count[noisy]
    # not a metadata row: the id's default scene
    beyond = next(i for i in range(len(truth), len(truth) + 100) if srv.misbehaviour(i) is None)
    assert _get(f"{srv.base_url}/img/{beyond}.jpg")[2] == srv.jpeg(scene_for_id(beyond))


def test_misbehaviour_is_a_deterministic_share_of_ids(srv: ImageServer) -> None:
    by_kind = _ids_by_kind(20_000)
    bad = sum(len(v) for k, v in by_kind.items() if k is not None)
    assert bad / 20_000 == pytest.approx(0.3, abs=0.02)
    assert set(by_kind) == {None, *MISBEHAVIOURS}
    assert all(srv.misbehaviour(i) is None for i in by_kind[None][:50])
    assert all(srv.misbehaviour(i) == "404" for i in by_kind["404"][:50])
    assert misbehaviour_for(WORLD.seed, 5, 0.0) is None


@pytest.mark.parametrize("forced", [True, False], ids=["forced", "by_id"])
def test_every_misbehaviour_over_http(srv: ImageServer, forced: bool) -> None:
    by_kind = _ids_by_kind()
    base_id = 10_000 if forced else 0

    def url(kind: str) -> str:
        if forced:
            return _url(srv, base_id + MISBEHAVIOURS.index(kind), kind)
        return _url(srv, by_kind[kind][0])

    assert _get(url("404"))[0] == 404
    assert _get(url("500"))[0] == 500

    t0 = time.perf_counter()
    with pytest.raises((TimeoutError, socket.timeout, urllib.error.URLError)):
        _get(url("slow"), timeout=0.3)
    assert time.perf_counter() - t0 < 1.5

    with pytest.raises(http.client.IncompleteRead):
        _get(url("truncated"))

    status, headers, body = _get(url("not_image"))
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(body))

    status, headers, body = _get(url("noai"))
    assert status == 200 and headers["X-Robots-Tag"] == "noai"
    Image.open(io.BytesIO(body)).verify()

    flaky = url("flaky")
    assert _get(flaky)[0] == 500  # transient: the first request fails ...
    status, _, body = _get(flaky)
    assert status == 200  # ... a retry succeeds
    Image.open(io.BytesIO(body)).verify()
    flaky_id = base_id + MISBEHAVIOURS.index("flaky") if forced else by_kind["flaky"][0]
    assert srv.request_count(flaky_id) == 2


def test_slow_answers_eventually_and_bad_requests(srv: ImageServer) -> None:
    status, _, body = _get(_url(srv, 20_000, "slow"), timeout=5)
    assert status == 200 and body[:2] == b"\xff\xd8"
    assert _get(srv.base_url + "/nothing/here")[0] == 404
    assert _get(_url(srv, 20_001, "explode"))[0] == 400
    assert _get(srv.base_url + "/img/5.jpg?n=99&shape=star&colour=red")[0] == 400
    assert _get(srv.base_url + "/health")[0] == 200


def test_concurrent_requests_are_counted(srv: ImageServer) -> None:
    url = _url(srv, 30_000, count=10)
    statuses: list[int] = []

    def fetch() -> None:
        statuses.append(_get(url)[0])

    threads = [threading.Thread(target=fetch) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 32
    assert srv.request_count(30_000) == 32
    assert srv.request_count(30_001) == 0


def test_close_is_quick_with_slow_requests_in_flight_and_fixed_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world = WORLD.model_copy(update={"port": port, "slow_seconds": 30.0})
    server = ImageServer(world).start()
    assert server.base_url == f"http://127.0.0.1:{port}"
    errors: list[BaseException] = []

    def hang() -> None:
        try:
            _get(_url(server, 1, "slow"), timeout=10)
        except Exception as exc:  # the server drops it on close
            errors.append(exc)

    threads = [threading.Thread(target=hang) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while server.request_count(1) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.perf_counter()
    server.close()
    assert time.perf_counter() - t0 < 1.0
    for t in threads:
        t.join(timeout=5)
    assert len(errors) == 4
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


def test_cold_server_answers_a_burst_of_first_requests() -> None:
    """A fresh image size (textures not built yet): 16 simultaneous first requests all succeed
    well within a downloader timeout (regression: each used to build the textures itself)."""
    world = WorldConfig(image_size=72, misbehave_fraction=0.0)
    statuses: list[int] = []
    with ImageServer(world) as server:

        def fetch(i: int) -> None:
            statuses.append(_get(_url(server, 40_000 + i), timeout=2)[0])

        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert statuses == [200] * 16
