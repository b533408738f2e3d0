"""CountBench loading and validation (real format), from a path and from a loopback URL."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from countclip.evaluation.countbench import CountBenchFormatError, load_countbench

ROWS = [
    {"image_url": "http://127.0.0.1:1/img/1.jpg", "text": "Two cats on a sofa", "number": 2},
    {"image_url": "http://127.0.0.1:1/img/2.jpg", "text": "ten red balloons", "number": 10},
]


def _write(path: Path, obj: object) -> str:
    path.write_text(json.dumps(obj))
    return str(path)


def test_loads_rows_and_supplement(tmp_path: Path) -> None:
    main = _write(tmp_path / "CountBench.json", ROWS)
    extra = _write(
        tmp_path / "extra.json",
        [{"image_url": "http://x/3.jpg", "text": "three dogs", "number": "3", "extra": 1}],
    )
    rows = load_countbench(main, extra)
    assert [r["number"] for r in rows] == [2, 10, 3]
    assert [r["subset"] for r in rows] == ["main", "main", "supplement"]
    assert set(rows[2]) == {"image_url", "text", "number", "subset"}


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"rows": []}, r"expected a JSON list"),
        ([ROWS[0], {"text": "two", "number": 2}], r"row 1: missing field 'image_url'"),
        ([{**ROWS[0], "number": 11}], r"row 0: field 'number' must be in 2\.\.10, got 11"),
        ([{**ROWS[0], "number": 1}], r"row 0: field 'number'"),
        ([{**ROWS[0], "number": True}], r"row 0: field 'number' must be an integer"),
        ([{**ROWS[0], "number": "many"}], r"row 0: field 'number' must be an integer"),
        ([ROWS[0], {**ROWS[1], "text": ""}], r"row 1: field 'text' must be a non-empty"),
        ([{**ROWS[0], "image_url": None}], r"row 0: field 'image_url'"),
        (["just a string"], r"row 0: expected an object"),
    ],
)
def test_invalid_rows_name_file_row_and_field(tmp_path: Path, content: object, match: str) -> None:
    path = _write(tmp_path / "bad.json", content)
    with pytest.raises(CountBenchFormatError, match=match) as info:
        load_countbench(path)
    assert "bad.json" in str(info.value)


def test_invalid_supplement_is_named(tmp_path: Path) -> None:
    main = _write(tmp_path / "CountBench.json", ROWS)
    supp = _write(tmp_path / "supp.json", [{"image_url": "u", "text": "t"}])
    with pytest.raises(CountBenchFormatError, match=r"supp\.json: row 0: missing field 'number'"):
        load_countbench(main, supp)


def test_not_json_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("[{")
    with pytest.raises(CountBenchFormatError, match=r"broken\.json: not valid JSON"):
        load_countbench(str(bad))
    with pytest.raises(FileNotFoundError, match=r"nope\.json"):
        load_countbench(str(tmp_path / "nope.json"))
    with pytest.raises(CountBenchFormatError, match="no CountBench file"):
        load_countbench("")


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_loads_from_url(file_server: tuple[str, Path]) -> None:
    base, root = file_server
    _write(root / "CountBench.json", ROWS)
    assert load_countbench(f"{base}/CountBench.json") == [{**r, "subset": "main"} for r in ROWS]
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        load_countbench(f"{base}/missing.json")
