"""Indexing img2dataset webdataset shards without unpacking them: one pass over each tar's
headers (reading only the small ``.txt``/``.json`` members) gives every sample's caption,
metadata and the byte offset of its image, which is later read by seeking (so a batch is a pure
function of its step, whatever the worker order: see :mod:`countclip.training.loader`).

Also the stable train/validation split of the counting samples (a hash of SAMPLE_ID).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image
from webdataset.tariterators import base_plus_ext

from countclip.counts import COUNTS

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


class ShardError(ValueError):
    """A shard or one of its samples is unreadable; the message names the file and field."""


@dataclass(frozen=True)
class SampleRef:
    """Where one sample lives (image bytes by offset) and its small metadata."""

    shard: str
    key: str
    offset: int  # of the image data inside the tar
    size: int
    caption: str
    sample_id: str
    count: int = 0  # 0 = common (non-counting) sample
    start: int = 0  # number word span in ``caption``
    end: int = 0


@dataclass
class Samples:
    train_counting: list[SampleRef]
    val_counting: list[SampleRef]
    common: list[SampleRef]


def _sample_id(meta: Mapping[str, Any], key: str) -> str:
    value = meta.get("SAMPLE_ID", meta.get("key", key))
    return str(value if value is not None else key)


def index_shard(path: str, kind: str) -> list[SampleRef]:
    """Index one tar shard. ``kind="counting"`` requires the count columns in each json."""
    members: dict[str, dict[str, tarfile.TarInfo]] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, ext = base_plus_ext(info.name)
                if key is None:
                    continue
                members.setdefault(key, {})[ext.lower()] = info
            refs = []
            # Key order, not tar order: img2dataset writes a shard's samples as its download
            # threads finish, so the same data downloaded twice would otherwise train on
            # differently ordered streams (keys are the input row: the same on every run).
            for key, parts in sorted(members.items()):
                image_ext = next((e for e in IMAGE_EXTS if e in parts), None)
                if image_ext is None or "txt" not in parts:
                    continue  # img2dataset failure leftovers have no image: not a sample
                caption = tar.extractfile(parts["txt"]).read().decode("utf-8")
                meta = json.loads(tar.extractfile(parts["json"]).read()) if "json" in parts else {}
                image = parts[image_ext]
                refs.append(_make_ref(path, key, image, caption, meta, kind))
    except (tarfile.TarError, OSError) as exc:
        raise ShardError(f"{path}: not a readable (uncompressed) tar shard: {exc}") from exc
    return refs


def _make_ref(
    path: str, key: str, image: tarfile.TarInfo, caption: str, meta: Mapping[str, Any], kind: str
) -> SampleRef:
    common = dict(
        shard=path,
        key=key,
        offset=image.offset_data,
        size=image.size,
        caption=caption,
        sample_id=_sample_id(meta, key),
    )
    if kind != "counting":
        return SampleRef(**common)
    where = f"{path}: sample {key}.json"
    try:
        count, start, end = int(meta["count"]), int(meta["number_start"]), int(meta["number_end"])
    except KeyError as exc:
        raise ShardError(f"{where}: missing field {exc.args[0]!r} (counting shard)") from exc
    except (TypeError, ValueError) as exc:
        raise ShardError(f"{where}: count/number_start/number_end not integers: {exc}") from exc
    if count not in COUNTS:
        raise ShardError(f"{where}: field 'count' = {count} outside {COUNTS[0]}..{COUNTS[-1]}")
    if not 0 <= start < end <= len(caption):
        raise ShardError(
            f"{where}: fields 'number_start'/'number_end' = [{start}, {end}) outside the "
            f"{len(caption)}-char caption"
        )
    return SampleRef(**common, count=count, start=start, end=end)


def is_validation(sample_id: str, val_fraction: float) -> bool:
    """Stable split: the first 8 bytes of sha1(SAMPLE_ID) as a fraction in [0, 1)."""
    digest = hashlib.sha1(str(sample_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


def load_samples(
    counting_shards: Sequence[str], common_shards: Sequence[str], val_fraction: float
) -> Samples:
    """Index all shards and split the counting samples into train and validation."""
    counting: list[SampleRef] = []
    for path in sorted(set(map(str, counting_shards))):
        counting.extend(index_shard(path, "counting"))
    common: list[SampleRef] = []
    for path in sorted(set(map(str, common_shards)) - set(map(str, counting_shards))):
        common.extend(index_shard(path, "common"))
    if not counting:
        raise ShardError(f"no counting samples in {len(counting_shards)} counting shard(s)")
    val = [r for r in counting if is_validation(r.sample_id, val_fraction)]
    train = [r for r in counting if not is_validation(r.sample_id, val_fraction)]
    if not train:
        raise ShardError(f"all {len(counting)} counting samples fell into the validation split")
    return Samples(train_counting=train, val_counting=val, common=common)


class ShardReader:
    """Image bytes by (shard, offset, size); file handles cached per process (workers fork)."""

    def __init__(self) -> None:
        self._files: dict[str, Any] = {}
        self._pid = os.getpid()

    def read(self, ref: SampleRef) -> bytes:
        if self._pid != os.getpid():  # forked into a worker: never share file offsets
            self._files, self._pid = {}, os.getpid()
        handle = self._files.get(ref.shard)
        if handle is None:
            handle = self._files[ref.shard] = open(ref.shard, "rb")  # noqa: SIM115
        handle.seek(ref.offset)
        data = handle.read(ref.size)
        if len(data) != ref.size:
            raise ShardError(f"{ref.shard}: sample {ref.key}: image truncated")
        return data

    def image(self, ref: SampleRef) -> Image.Image:
        try:
            with Image.open(io.BytesIO(self.read(ref))) as img:
                return img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise ShardError(f"{ref.shard}: sample {ref.key}: undecodable image: {exc}") from exc

    def __getstate__(self) -> dict[str, Any]:
        return {"_files": {}, "_pid": -1}
