"""``python scripts/selfcheck.py``: prove the installed stack imports and runs together.

It lives outside the ``countclip`` package because it imports Prefect (the library does not).

Run by ``make setup`` after install, because the failures it catches (the ``dataclasses``
backport shadowing the standard library inside Prefect's server, a torchvision that does not
match torch) only show at run time.
"""

from __future__ import annotations

import dataclasses
import sys

from countclip.offline import apply_offline_env


def main() -> int:
    apply_offline_env()
    if "site-packages" in (getattr(dataclasses, "__file__", "") or ""):
        print(f"selfcheck: the 'dataclasses' backport shadows the stdlib: {dataclasses.__file__}")
        return 1
    import duckdb
    import img2dataset  # noqa: F401
    import open_clip
    import prefect
    import spacy
    import torch
    import torchvision
    import webdataset  # noqa: F401

    torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)  # fails on a mismatched pair
    spacy.blank("en")("two cats")
    duckdb.connect().execute("select 1").fetchall()
    print(
        f"selfcheck ok: python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, open_clip {open_clip.__version__}, "
        f"prefect {prefect.__version__}, duckdb {duckdb.__version__}, spacy {spacy.__version__}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
