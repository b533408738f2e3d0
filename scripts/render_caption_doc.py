"""Render the measured section of ``docs/captions.md`` (between its ``caption-quality`` markers)
from ``results/captions/quality.json``, which ``benchmarks/bench_captions.py --quality`` writes.

    .venv/bin/python scripts/render_caption_doc.py           # rewrite the section
    .venv/bin/python scripts/render_caption_doc.py --check   # exit 1 if the section is stale

Every number in that section comes from the JSON file; the rest of the page is written by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from countclip.data.captions.quality import render_doc

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "captions.md"
RESULT = ROOT / "results" / "captions" / "quality.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if the section is stale")
    args = ap.parse_args(argv)
    current = DOC.read_text(encoding="utf-8")
    rendered = render_doc(current, json.loads(RESULT.read_text(encoding="utf-8")))
    name = DOC.relative_to(ROOT)
    if args.check:
        if rendered != current:
            print(f"{name} is stale: rerun scripts/render_caption_doc.py")
            return 1
        print(f"{name} is current: its measured section is what {RESULT.name} renders to")
        return 0
    DOC.write_text(rendered, encoding="utf-8")
    print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
