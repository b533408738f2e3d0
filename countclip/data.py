"""Webdataset shards -> training and validation batches for CountCLIP.

Why not a streaming ``wds.WebDataset`` pipeline: exact resume. A streaming pipeline with shuffle
buffers and resampling has a data position that is hard to save and replay (buffer contents,
worker interleaving). Here the shards (img2dataset's webdataset tars: ``{key}.jpg``,
``{key}.txt``, ``{key}.json``) are indexed once — one pass over the tar headers, reading only the
small txt/json members — and every batch is a pure function of ``(seed, step, rank)``:

* counting and common samples are two endless streams; epoch ``e`` of a stream is a permutation
  seeded by ``(seed, stream, e)``, so every sample is seen once per epoch and multi-epoch runs
  resample (reshuffle) for free;
* step ``t`` on rank ``r`` of ``W`` takes stream positions ``[(t·W + r)·n, (t·W + r + 1)·n)``;
* augmentation and the random counterfactual (L_count) are seeded by ``(seed, step, rank)``.

So the data position saved in a checkpoint is just the step, workers can produce batches in any
order, and resuming replays exactly the batches an uninterrupted run would have seen. Images are
read by seeking into the tar at the offset the index recorded.

Each batch puts its ``N = round(B·counting_fraction)`` counting samples first, then common ones.
A counting sample brings its count, its λ (``lambdas.json`` × ``lambda_scale``) and the token ids
of its counterfactual captions (the number word span swapped, case kept): one random other count
for L_count, all eight for L_count+. Captions longer than the context are cropped around the
number (:mod:`countclip.tokens`) so it is never truncated away.

The validation split is the counting samples whose stable hash of SAMPLE_ID falls below
``val_fraction`` (same split on every machine, rank and rerun).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from webdataset.tariterators import base_plus_ext

from countclip.config import COUNTS
from countclip.tokens import crop_span

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
COUNTING_STREAM, COMMON_STREAM, CF_STREAM, AUG_STREAM, CLASS_STREAM = 0, 1, 2, 3, 4


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


# --------------------------------------------------------------------------- captions


def counterfactual(
    ref: SampleRef,
    n: int,
    text: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> str:
    """``text`` (default: the sample's caption) with its number word swapped for ``n``.

    Delegates to :class:`countclip.captions.CountCaption` (the one place that knows number
    words and case rules). Imported here, not at module level: countclip.captions imports
    spaCy (seconds), which readers of this module that never build counterfactuals skip.
    """
    from countclip.captions import CountCaption

    text = ref.caption if text is None else text
    start = ref.start if start is None else start
    end = ref.end if end is None else end
    if n == ref.count:
        return text
    return CountCaption(text, ref.count, start, end).counterfactual(n)


# --------------------------------------------------------------------------- indexing


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
            for key, parts in members.items():
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


# --------------------------------------------------------------------------- reading


class _ShardReader:
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


@functools.lru_cache(maxsize=8)
def _permutation(seed: int, stream: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, stream, epoch]).permutation(n)


def stream_indices(seed: int, stream: int, n: int, first: int, count: int) -> list[int]:
    """Positions ``first .. first+count-1`` of an endless, per-epoch reshuffled stream over n."""
    out = []
    for position in range(first, first + count):
        epoch, offset = divmod(position, n)
        out.append(int(_permutation(seed, stream, epoch, n)[offset]))
    return out


def tokenize_cropped(texts: Sequence[tuple[str, int, int]], tokenizer: Any) -> torch.Tensor:
    """Token ids of ``(text, start, end)`` triples, each cropped around its number span."""
    return tokenizer([crop_span(t, s, e, tokenizer)[0] for t, s, e in texts])


def count_variants(ref: SampleRef, tokenizer: Any) -> dict[int, str]:
    """The caption (cropped to fit) with its number swapped to each of two..ten."""
    text, start, end = crop_span(ref.caption, ref.start, ref.end, tokenizer)
    return {n: counterfactual(ref, n, text, start, end) for n in COUNTS}


# --------------------------------------------------------------------------- datasets


def counting_per_batch(batch_size: int, fraction: float) -> int:
    """Counting samples in a batch of ``batch_size``: round(B·f), at least 1."""
    return min(batch_size, max(1, round(batch_size * fraction)))


def steps_per_epoch(
    n_counting_train: int, batch_size: int, fraction: float, world_size: int = 1
) -> int:
    """Steps for one pass over the counting training samples (the scarce data; common samples
    come from a larger pool and are simply drawn alongside)."""
    per_step = counting_per_batch(batch_size, fraction) * world_size
    return max(1, -(-n_counting_train // per_step))


class TrainBatches(Dataset):
    """Map-style dataset whose item ``step`` is the whole local batch of that step."""

    def __init__(
        self,
        samples: Samples,
        tokenizer: Any,
        transform: Callable[[Image.Image], torch.Tensor],
        lambdas: Mapping[int, float] | None,
        batch_size: int,
        counting_fraction: float,
        count_loss: str = "count_plus",
        lambda_scale: float = 1.0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        count_sampling_power: float = 1.0,
    ) -> None:
        self.counting = samples.train_counting
        self.common = samples.common
        self.tokenizer = tokenizer
        self.transform = transform
        self.batch_size = batch_size
        self.n_counting = counting_per_batch(batch_size, counting_fraction)
        self.n_common = batch_size - self.n_counting
        if self.n_common and not self.common:
            raise ShardError(
                f"counting_fraction {counting_fraction} needs common samples, but the common "
                "shards hold none"
            )
        # "none" (the control) still gets all eight: its L_count+ is logged, without gradient,
        # so control and CountCLIP runs report the same counting metric.
        self.cf_k = 1 if count_loss == "count" else len(COUNTS) - 1
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.weight_of = self._weights(lambdas, lambda_scale)
        self.class_members, self.class_p = self._class_sampling(count_sampling_power)
        self.reader = _ShardReader()

    def _class_sampling(self, power: float) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Members and draw probabilities per count when counts are re-balanced (power < 1).

        A count with n_c training samples is drawn with probability ∝ n_c^power, its samples
        uniformly (with replacement). At power 1 the plain reshuffled stream is used instead:
        every sample once per epoch, exactly the paper's sampling.
        """
        if power >= 1.0 or not self.counting:
            return [], None
        by_count: dict[int, list[int]] = {}
        for index, ref in enumerate(self.counting):
            by_count.setdefault(ref.count, []).append(index)
        members = [np.asarray(by_count[c]) for c in sorted(by_count)]
        weights = np.array([len(m) ** power for m in members], dtype=np.float64)
        return members, weights / weights.sum()

    def counting_indices(self, slot: int) -> list[int]:
        """Indices into the counting training samples for batch slot ``slot`` (step x ranks +
        rank); a pure function of (seed, slot), so resumed and DDP runs draw the same samples."""
        if self.class_p is None:
            return stream_indices(
                self.seed,
                COUNTING_STREAM,
                len(self.counting),
                slot * self.n_counting,
                self.n_counting,
            )
        rng = np.random.default_rng([self.seed, CLASS_STREAM, slot])
        classes = rng.choice(len(self.class_members), size=self.n_counting, p=self.class_p)
        return [
            int(self.class_members[c][rng.integers(len(self.class_members[c]))]) for c in classes
        ]

    def _weights(self, lambdas: Mapping[int, float] | None, scale: float) -> dict[int, float]:
        if lambdas is None:
            return {c: scale for c in COUNTS}
        present = {r.count for r in self.counting}
        missing = sorted(present - set(lambdas))
        if missing:
            raise ValueError(f"lambdas.json: field 'lambdas' has no value for count(s) {missing}")
        return {c: float(lambdas[c]) * scale for c in present}

    def __len__(self) -> int:  # endless in principle; the sampler decides which steps exist
        return 2**62

    def __getitem__(self, step: int) -> dict[str, Any]:
        slot = step * self.world_size + self.rank
        counting = [self.counting[i] for i in self.counting_indices(slot)]
        common = (
            [
                self.common[i]
                for i in stream_indices(
                    self.seed, COMMON_STREAM, len(self.common), slot * self.n_common, self.n_common
                )
            ]
            if self.n_common
            else []
        )
        refs = counting + common
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(
                int(np.random.default_rng([self.seed, AUG_STREAM, step, self.rank]).integers(2**62))
            )
            images = torch.stack([self.transform(self.reader.image(r)) for r in refs])
        cf_rng = np.random.default_rng([self.seed, CF_STREAM, step, self.rank])
        captions, cf_texts, cf_counts = [], [], []
        for ref in counting:
            variants = count_variants(ref, self.tokenizer)
            captions.append(variants[ref.count])
            others = [n for n in COUNTS if n != ref.count]
            if self.cf_k == 1:
                others = [others[int(cf_rng.integers(len(others)))]]
            elif self.cf_k == 0:
                others = []
            cf_counts.append(others)
            cf_texts.extend(variants[n] for n in others)
        captions.extend(r.caption for r in common)
        texts = self.tokenizer(captions)
        n, k = len(counting), self.cf_k
        cf = (
            self.tokenizer(cf_texts)
            if cf_texts
            else torch.zeros(0, texts.shape[1], dtype=texts.dtype)
        )
        return {
            "step": step,
            "images": images,
            "texts": texts,
            "count_index": torch.arange(n),
            "counts": torch.tensor([r.count for r in counting], dtype=torch.long),
            "weights": torch.tensor(
                [self.weight_of[r.count] for r in counting], dtype=torch.float32
            ),
            "cf_texts": cf.view(n, k, texts.shape[1]),
            "cf_counts": torch.tensor(cf_counts, dtype=torch.long).view(n, k),
            "sample_ids": [r.sample_id for r in refs],
        }


class ValBatches(Dataset):
    """Validation counting samples in fixed batches: images and the 9 count variants."""

    def __init__(
        self,
        refs: Sequence[SampleRef],
        tokenizer: Any,
        transform: Callable[[Image.Image], torch.Tensor],
        batch_size: int,
    ) -> None:
        self.refs = list(refs)
        self.tokenizer, self.transform, self.batch_size = tokenizer, transform, batch_size
        self.reader = _ShardReader()

    def __len__(self) -> int:
        return -(-len(self.refs) // self.batch_size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        refs = self.refs[index * self.batch_size : (index + 1) * self.batch_size]
        images = torch.stack([self.transform(self.reader.image(r)) for r in refs])
        texts = [t for r in refs for t in count_variants(r, self.tokenizer).values()]
        return {
            "images": images,
            "variant_texts": self.tokenizer(texts).view(len(refs), len(COUNTS), -1),
            "counts": torch.tensor([r.count for r in refs], dtype=torch.long),
        }


def _loader(dataset: Dataset, indices: Iterable[int], workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=list(indices),
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )


def build_train_loader(
    samples: Samples,
    tokenizer: Any,
    transform: Callable[[Image.Image], torch.Tensor],
    lambdas: Mapping[int, float] | None,
    *,
    batch_size: int,
    counting_fraction: float,
    count_loss: str = "count_plus",
    lambda_scale: float = 1.0,
    seed: int = 0,
    start_step: int = 0,
    steps: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    count_sampling_power: float = 1.0,
) -> DataLoader:
    """Batches for steps ``start_step .. steps-1`` on this rank (``batch_size`` is per rank).

    The returned loader's ``.dataset`` is the :class:`TrainBatches`.
    """
    dataset = TrainBatches(
        samples,
        tokenizer,
        transform,
        lambdas,
        batch_size,
        counting_fraction,
        count_loss,
        lambda_scale,
        seed,
        rank,
        world_size,
        count_sampling_power,
    )
    return _loader(dataset, range(start_step, steps), workers)


def build_val_loader(
    samples: Samples,
    tokenizer: Any,
    transform: Callable[[Image.Image], torch.Tensor],
    *,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
) -> DataLoader:
    """Validation batches of this rank's share (every ``world_size``-th sample)."""
    refs = samples.val_counting[rank::world_size]
    return _loader(
        ValBatches(refs, tokenizer, transform, batch_size),
        range(-(-len(refs) // batch_size)),
        workers,
    )
