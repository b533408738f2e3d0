"""Weights this project ships as open_clip pretrained tags.

The real path starts from OpenAI's weights (``pretrained: openai``); the synthetic world has no
such model, so the demo's baseline — countclip-tiny pretrained with L_CLIP only on the demo
world's own captions, where counts are as rare as in LAION — ships with the package as the tag
``synthetic-demo``, in half precision (~15 MB), with the provenance it was made from beside it.
``countclip pretrain --config configs/demo.yaml`` makes it again (the pretrain stage, then
:func:`export`), byte for byte on a machine like the one that made it
(``tests/test_shipped_weights.py``); the demo fine-tunes from it instead of spending minutes
pretraining first.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from countclip.atomic import atomic_write_bytes, atomic_write_json

SHIPPED: dict[tuple[str, str], str] = {
    ("countclip-tiny", "synthetic-demo"): "countclip-tiny-synthetic-demo",
}
"""(model name, tag) -> file stem under ``countclip/training/weights/``."""


def folder() -> Path:
    return Path(str(resources.files("countclip.training").joinpath("weights")))


def shipped_path(name: str, tag: str | None) -> Path | None:
    """The weights file of a shipped tag of ``name`` (None: not a shipped tag)."""
    stem = SHIPPED.get((name, tag or ""))
    return None if stem is None else folder() / f"{stem}.pt"


def provenance(name: str, tag: str) -> dict[str, Any]:
    """What the shipped weights were made from (config, commit, machine) and their digest."""
    stem = SHIPPED[(name, tag)]
    return json.loads((folder() / f"{stem}.json").read_text())


def export(
    checkpoint: str | Path, name: str, tag: str, made_from: dict[str, Any], out: Path | None = None
) -> Path:
    """Write ``checkpoint`` (an fp32 open_clip state dict) as the shipped tag: fp16 tensors in
    sorted order, saved so the same weights give the same bytes, and ``<stem>.json`` with its
    SHA-256, what it was made from and on what machine."""
    out = out or folder()
    stem = SHIPPED[(name, tag)]
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    half = {
        k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous()
        for k, v in sorted(state.items())
    }
    path = out / f"{stem}.pt"
    buffer = io.BytesIO()  # not a file name: torch.save names the archive after the file, and
    torch.save(half, buffer)  # a temp file's name would make the same weights other bytes
    atomic_write_bytes(path, buffer.getvalue())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    record = {
        "model": name,
        "tag": tag,
        "sha256": digest,
        "bytes": path.stat().st_size,
        "made_from": made_from,
        "machine": machine(),
    }
    atomic_write_json(out / f"{stem}.json", record)
    return path


def machine() -> dict[str, str]:
    """What decides the floating point of a CPU training run: the CPU and its instruction set
    (MKL and oneDNN pick kernels by it), torch and Python."""
    return {
        "cpu": _cpu(),
        "cpu_flags": _cpu_flags(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _cpu_flags() -> str:
    """A digest of the CPU's instruction-set flags (``/proc/cpuinfo``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                return hashlib.sha256(flags.encode()).hexdigest()[:16]
    except OSError:
        pass
    return "unknown"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
