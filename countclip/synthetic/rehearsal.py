"""A toy copy of the real world, to rehearse a real config offline before a GPU day.

``countclip rehearse --config configs/laion400m.yaml`` runs the user's own config — their column
mapping, caption settings, counter, detector, model, precision, λ scheme — through every stage
at toy scale, on this machine, with no network. What cannot be had offline is substituted, and
nothing else (:data:`SUBSTITUTIONS`); what is scaled down is listed in :data:`SCALE`.

The metadata is LAION-schema parquet under the config's own column names (``metadata.columns``:
Re-LAION's ``url``/``caption``/``original_width``... for the shipped config), split over parts
that a loopback file server serves with Range requests and that the config reads through a
brace range; its captions are real LAION captions (:data:`CAPTIONS`, CC-BY 4.0), so their
lengths and wording are LAION's. The images are real photographs and drawn pictures from a
loopback server (:mod:`countclip.synthetic.photo_server`), some of whose links are dead or slow.
CountBench is a file in its real format whose images come from the same server, with real
counting captions (one long enough that the number must survive truncation at 77 tokens).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from countclip.config import PipelineConfig
from countclip.counts import COUNTS, NUMBER_WORDS
from countclip.synthetic.file_server import FileServer
from countclip.synthetic.photo_server import PhotoServer

CAPTIONS = "rehearsal_captions.jsonl"
"""69 real LAION captions with a number word, labelled by hand (tests/data has all 1,283)."""
PARTS = 3
SUBSTITUTIONS: tuple[str, ...] = (
    "metadata and images: LAION-schema parquet under the config's column names, served by a "
    "loopback HTTP server (Range requests, a brace range over its parts); real photographs and "
    "drawn pictures from a loopback image server, some links 404 or slow; CountBench in its "
    "real format with its images on the same server",
    "detector weights: the config's detector randomly initialised and saved locally (plumbing, "
    "not accuracy)",
    "model weights: train.model randomly initialised instead of its pretrained tag (same "
    "architecture and activation)",
    "training data: the counting set as downloaded (a randomly initialised detector keeps "
    "nothing); the verify stage still runs the config's detector on every counting image",
)
SCALE: dict[str, Any] = {
    "captions": {"batch_size": 256, "rows_per_chunk": 1000},
    "download": {
        "processes_count": 1,
        "thread_count": 8,
        "timeout": 5.0,
        "number_sample_per_shard": 25,
        "stall_timeout": 120.0,
    },
    "metadata": {"threads": 1, "memory_limit": "1GB", "timeout": 10.0, "common_ratio": 2.0},
    "verify": {"batch_size": 4, "min_size": 224},
    "train": {
        "steps": 2,
        "batch_size": 8,
        "eval_every": 2,
        "checkpoint_every": 2,
        "warmup_steps": 1,
        "workers": 0,
        "val_fraction": 0.1,
    },
    "evaluate": {"batch_size": 16, "zero_shot": False},
}
"""Toy sizes: no code path changes with them."""


def captions() -> list[dict[str, Any]]:
    text = resources.files("countclip.synthetic").joinpath(CAPTIONS).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


_NUMBER = re.compile(r"\b(" + "|".join(NUMBER_WORDS.values()) + r")\b\s*", re.IGNORECASE)


def _without_number(text: str) -> str:
    """A caption with its number words taken out: a real caption for the common sample (rows
    the metadata stage draws from those with no number word)."""
    return re.sub(r"\s{2,}", " ", _NUMBER.sub("", text)).strip() or "photo"


def _rows(photos: str) -> list[dict[str, Any]]:
    """Metadata rows (LAION-400M names): every caption as it is, and again without its number
    word; one link in nine dead, one in thirteen slow, one row in ten too small to pass."""
    rows = []
    texts = [c["text"] for c in captions()]
    for i, text in enumerate([*texts, *map(_without_number, texts), *map(_without_number, texts)]):
        url = f"{photos}/photo/{i}.jpg"
        if i % 9 == 4:
            url += "?fail=404"
        elif i % 13 == 6:
            url += "?slow=1.5"
        small = i % 10 == 7
        rows.append(
            {
                "SAMPLE_ID": i,
                "URL": url,
                "TEXT": text,
                "HEIGHT": 120 if small else 320,
                "WIDTH": 120 if small else 320,
                "LICENSE": "?",
                "NSFW": "UNLIKELY",
                "similarity": 0.31,
            }
        )
    return rows


def write_metadata(folder: Path, cfg: PipelineConfig, photos: str) -> list[Path]:
    """The rows in :data:`PARTS` parquet parts, columns renamed as ``metadata.columns`` says
    (a column mapped to null is left out; a derived SAMPLE_ID is left to the stage)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = {laion: source for laion, source in cfg.metadata.columns.items()}
    table = pa.Table.from_pylist(_rows(photos))
    kept = [c for c in table.column_names if names.get(c, c) is not None]
    table = table.select(kept).rename_columns([names.get(c) or c for c in kept])
    per_part = -(-table.num_rows // PARTS)
    paths = []
    for part in range(PARTS):
        path = folder / f"part-{part:05d}.parquet"
        pq.write_table(table.slice(part * per_part, per_part), path)
        paths.append(path)
    return paths


def write_countbench(path: Path, photos: str) -> Path:
    """CountBench's format (``image_url``, ``text``, ``number``) with real counting captions;
    the last row pads a caption past 77 tokens before its number word."""
    rows = []
    for i, caption in enumerate(c for c in captions() if c["label"] in COUNTS):
        dead = "?fail=404" if i == 5 else ""  # a dead link, as in the public copies
        rows.append(
            {"image_url": f"{photos}/photo/{1000 + i}.jpg{dead}", "text": caption["text"],
             "number": caption["label"]}
        )  # fmt: skip
    padding = " ".join(c["text"] for c in captions()[:12] if c["label"] == 0)
    rows.append(
        {"image_url": f"{photos}/photo/1999.jpg", "text": f"{padding}. Three red apples on a table",
         "number": 3}
    )  # fmt: skip
    path.write_text(json.dumps(rows, indent=1))
    return path


def random_detector(path: Path, detector: str) -> Path:
    """The config's detector, randomly initialised (seed 0) and saved as a state dict."""
    import torch
    import torchvision.models as tv_models

    if not path.is_file():
        torch.manual_seed(0)
        model = tv_models.get_model(detector, weights=None, weights_backbone=None, num_classes=91)
        torch.save(model.state_dict(), path)
    return path


def substituted(cfg: PipelineConfig, root: Path, files: str, photos: str) -> PipelineConfig:
    """``cfg`` with the substitutions and the toy scale applied (``data_root`` under ``root``)."""
    from countclip.training.model import uses_quick_gelu
    from countclip.yamlconfig import deep_merge

    data = deep_merge(cfg.model_dump(mode="json"), SCALE)
    data["data_root"] = str(root / "data")
    data["metadata"]["source"] = f"{files}/part-{{00000..{PARTS - 1:05d}}}.parquet"
    data["evaluate"]["countbench"] = str(write_countbench(root / "CountBench.json", photos))
    data["evaluate"]["supplement"] = None
    if cfg.verify.counter == "torchvision":
        weights = random_detector(root / f"{cfg.verify.detector}-random.pth", cfg.verify.detector)
        data["verify"]["weights"] = str(weights)
    model = data["train"]["model"]
    model["quick_gelu"] = uses_quick_gelu(cfg.train.model)
    model["pretrained"] = None
    import torch

    if not torch.cuda.is_available():  # hardware, not a code path: the same loop on CPU
        for section in ("train", "verify", "evaluate"):
            data[section]["device"] = "cpu"
        data["train"]["processes"] = 1
        if cfg.train.precision == "amp":
            data["train"]["precision"] = "bf16"  # amp is bf16 autocast on GPUs
    return PipelineConfig.model_validate(data)


@contextlib.contextmanager
def rehearsal_world(cfg: PipelineConfig, root: str | Path) -> Iterator[PipelineConfig]:
    """Serve the toy world for the block; yield ``cfg`` pointed at it (see the module
    docstring). ``root`` holds the world's files and the rehearsal's data root."""
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode())
    with PhotoServer() as photos:
        folder = root / "metadata" / digest.hexdigest()[:12]
        write_metadata(folder, cfg, photos.url)
        with FileServer(folder) as files:
            yield substituted(cfg, root, files.url, photos.url)
