"""Fail in seconds, not hours: every resource a run will need, checked before its first stage.

A real run reaches its detector, its pretrained weights and CountBench only after hours of
downloads; a missing weights file or an unreachable URL found there costs the day. The
preflight looks at what ``command`` will use — the metadata source, the detector weights, the
model's pretrained tag, CountBench, a Ray cluster, the GPUs, the data root — and reports every
problem at once, each naming the setting to change. It reads and connects (a few short HTTP
requests), it never downloads.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from countclip.config import PipelineConfig

TIMEOUT = 8.0
"""Seconds one network check may take."""

USES: dict[str, frozenset[str]] = {
    "build": frozenset({"source", "verify", "download", "data_root"}),
    "train": frozenset({"source", "verify", "download", "data_root", "model", "devices"}),
    "evaluate": frozenset({"data_root", "model", "countbench", "devices"}),
    "retrain": frozenset(
        {"source", "verify", "download", "data_root", "model", "countbench", "devices"}
    ),
    "demo": frozenset({"source", "verify", "download", "data_root", "model", "countbench"}),
    "rehearse": frozenset({"data_root"}),
    "pretrain": frozenset({"data_root"}),  # it substitutes what is not local, then checks
}
"""What each command reaches (another name checks everything)."""


@dataclass(frozen=True)
class Problem:
    setting: str
    message: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}"


class PreflightError(ValueError):
    """One or more resources the run needs are missing; the message names each setting."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"preflight: {len(problems)} setting(s) would fail the run:\n{lines}")


def preflight(cfg: PipelineConfig, command: str) -> None:
    """Raise :class:`PreflightError` naming every setting whose resource is missing."""
    uses = USES.get(command, USES["retrain"])
    problems = [
        p for check in CHECKS if check.__name__.removeprefix("_") in uses for p in check(cfg)
    ]
    if problems:
        raise PreflightError(problems)


# --------------------------------------------------------------------------- the checks


def _data_root(cfg: PipelineConfig) -> Iterator[Problem]:
    root = Path(cfg.data_root).expanduser()
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        yield Problem("data_root", f"{root}: no directory to create it in")
        return
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".countclip-preflight-"):
            pass
    except OSError as exc:
        yield Problem("data_root", f"{root}: cannot write there ({exc.strerror or exc})")


def _source(cfg: PipelineConfig) -> Iterator[Problem]:
    if cfg.synthetic:
        return  # the world writes its own metadata when the run starts
    from countclip.data.source import remote_files, source_files

    sources = (
        cfg.metadata.source if isinstance(cfg.metadata.source, list) else [cfg.metadata.source]
    )
    if not any(sources):
        yield Problem("metadata.source", "empty: name the LAION metadata parquet (path or URL)")
        return
    if any(str(s).startswith("hf://") for s in sources) and os.environ.get("HF_HUB_OFFLINE") == "1":
        yield Problem("metadata.source", "hf:// needs the Hugging Face Hub, but HF_HUB_OFFLINE=1")
        return
    try:  # every file is found (and a remote one asked for its size) before DuckDB starts
        source_files(cfg.metadata, remote_files(cfg.metadata))
    except Exception as exc:
        yield Problem("metadata.source", str(exc).splitlines()[0])


def _verify(cfg: PipelineConfig) -> Iterator[Problem]:
    from countclip.data.verify.build import check_counter

    try:
        check_counter(cfg.verify)
    except (OSError, ValueError) as exc:
        yield Problem("verify.weights", str(exc))
    if cfg.verify.counter == "torchvision":
        yield from _device("verify.device", cfg.verify.device, 1)


def _download(cfg: PipelineConfig) -> Iterator[Problem]:
    from countclip.data.download.engines import ClusterUnreachable, check_cluster

    try:
        check_cluster(cfg.download)
    except (ClusterUnreachable, OSError, ValueError) as exc:
        yield Problem("download.ray_address", str(exc))


def _model(cfg: PipelineConfig) -> Iterator[Problem]:
    model = cfg.train.model
    if cfg.synthetic and cfg.pretrain.enabled and not model.pretrained:
        return  # the demo pretrains its own baseline
    yield from _pretrained("train.model.pretrained", model.name, model.pretrained)


def _countbench(cfg: PipelineConfig) -> Iterator[Problem]:
    source = cfg.evaluate.countbench
    if not source:
        if not cfg.synthetic:  # the world writes one for synthetic runs
            yield Problem("evaluate.countbench", "empty: give CountBench.json's path or URL")
        return
    if source.startswith(("http://", "https://")):
        if why := _unreachable(source):
            yield Problem("evaluate.countbench", f"{source}: {why}")
    elif not Path(source).expanduser().is_file():
        yield Problem("evaluate.countbench", f"{source}: no such file")


def _devices(cfg: PipelineConfig) -> Iterator[Problem]:
    yield from _device("train.device", cfg.train.device, cfg.train.processes)
    yield from _device("evaluate.device", cfg.evaluate.device, 1)


CHECKS: tuple[Callable[[PipelineConfig], Iterator[Problem]], ...] = (
    _data_root,
    _source,
    _verify,
    _download,
    _model,
    _countbench,
    _devices,
)


# --------------------------------------------------------------------------- helpers


def _unreachable(url: str) -> str | None:
    """None if ``url`` answers (one byte asked for), else why not."""
    request = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT):
            return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"unreachable ({reason})"


def _device(setting: str, device: str, processes: int) -> Iterator[Problem]:
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        yield Problem(setting, f"{device}: no CUDA GPU on this machine")
    elif processes > torch.cuda.device_count():
        have = torch.cuda.device_count()
        yield Problem(setting, f"{processes} processes but {have} GPU(s) on this machine")


def _pretrained(setting: str, name: str, tag: str | None) -> Iterator[Problem]:
    """A path must exist; a tag must be one open_clip knows for ``name``, and its weights must
    be in the local cache or the hub must answer."""
    if not tag:
        return
    from countclip.training.model import looks_like_path
    from countclip.training.shipped import shipped_path

    if (shipped := shipped_path(name, tag)) is not None:
        if not shipped.is_file():
            yield Problem(setting, f"{name} {tag!r}: the shipped weights are missing: {shipped}")
        return
    if looks_like_path(tag):
        if not Path(tag).expanduser().is_file():
            yield Problem(setting, f"{tag}: no such checkpoint file")
        return
    import open_clip

    found = open_clip.get_pretrained_cfg(name, tag)
    if not found:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        yield Problem(setting, f"{tag!r} is no pretrained tag of {name} (its tags: {tags})")
        return
    if _cached(found):
        return
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        yield Problem(
            setting,
            f"{name} {tag!r}: the weights are not in the local cache and HF_HUB_OFFLINE=1 "
            "(download them once where the hub is reachable, or give a checkpoint path)",
        )
        return
    hub = found.get("hf_hub", "").strip("/")
    url = f"https://huggingface.co/{hub}" if hub else found.get("url", "")
    if url and (why := _unreachable(url)):
        yield Problem(setting, f"{name} {tag!r}: the weights' host is {why}: {url}")


def _cached(pretrained_cfg: dict) -> bool:
    hub = pretrained_cfg.get("hf_hub", "").strip("/")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return False
        for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
            if isinstance(try_to_load_from_cache(hub, filename), str):
                return True
    url = pretrained_cfg.get("url", "")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "clip"
    return bool(url) and (cache / Path(url).name).is_file()
