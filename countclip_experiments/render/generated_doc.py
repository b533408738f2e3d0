"""The one ``main`` of every script that renders a document from data (``docs/config.md``,
``docs/results.md`` and the README's results table, ``docs/scale.md``): write it, or with
``--check`` fail when the committed text is not what the data renders to."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The checkout the documents live in (the project is installed editable from it)."""


def main(
    render: Callable[[], Mapping[Path, str]],
    description: str | None,
    argv: Sequence[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(description=(description or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a document is stale")
    args = parser.parse_args(argv)
    documents = render()
    stale = [
        path for path, text in documents.items() if not path.is_file() or path.read_text() != text
    ]
    if args.check:
        for path in documents:
            name = path.relative_to(REPO)
            if path in stale:
                print(f"{name} is stale: rerun the script that renders it")
            else:
                print(f"{name} is current: it is what its data renders to")
        return 1 if stale else 0
    for path, text in documents.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(REPO)}")
    return 0
