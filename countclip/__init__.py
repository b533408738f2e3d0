"""CountCLIP: teach CLIP to count. The plain library (no Prefect) behind the pipeline.

The package is grouped by pipeline role:

- :mod:`countclip.data` — LAION metadata (DuckDB), captions (spaCy), downloads (img2dataset), λ;
- :mod:`countclip.training` — the open_clip model, L_CLIP + λ·L_count, the resumable loop;
- :mod:`countclip.evaluation` — CountBench, the zero-shot check, reports;
- :mod:`countclip.synthetic` — the offline world (images, metadata, server, baseline);
- :mod:`countclip.stages.base` — the one stage helper every stage uses.

The public API of the design is importable from here, lazily (``import countclip`` stays cheap:
spaCy and torch load only when a name that needs them is used)::

    from countclip import parse_caption, parse_captions, CountCaption
    from countclip import compute_lambdas, counting_loss
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "CountCaption": "countclip.data.captions.parser",
    "parse_caption": "countclip.data.captions.parser",
    "parse_captions": "countclip.data.captions.parser",
    "compute_lambdas": "countclip.data.lambdas",
    "counting_loss": "countclip.training.losses",
}

__all__ = [
    "CountCaption",
    "compute_lambdas",
    "counting_loss",
    "parse_caption",
    "parse_captions",
]

if TYPE_CHECKING:
    from countclip.data.captions.parser import CountCaption, parse_caption, parse_captions
    from countclip.data.lambdas import compute_lambdas
    from countclip.training.losses import counting_loss


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'countclip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
