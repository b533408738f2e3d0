"""Webdataset shards -> training and validation batches for CountCLIP.

Why not a streaming ``wds.WebDataset`` pipeline: exact resume. A streaming pipeline with shuffle
buffers and resampling has a data position that is hard to save and replay (buffer contents,
worker interleaving). Here the shards (img2dataset's webdataset tars: ``{key}.jpg``,
``{key}.txt``, ``{key}.json``) are indexed once (:mod:`countclip.training.shard_index`: one pass
over the tar headers, reading only the small txt/json members) and every batch is a pure function of
``(seed, step, rank)``:

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
number (:mod:`countclip.training.tokens`) so it is never truncated away.

The validation split is the counting samples whose stable hash of SAMPLE_ID falls below
``val_fraction`` (same split on every machine, rank and rerun).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from countclip.counts import COUNTS
from countclip.training.seeding import seeded_global_rng
from countclip.training.shard_index import (
    SampleRef,
    Samples,
    ShardError,
    ShardReader,
    index_shard,
    is_validation,
    load_samples,
)
from countclip.training.tokens import crop_span

__all__ = [
    "SampleRef",
    "Samples",
    "ShardError",
    "TrainBatches",
    "build_train_loader",
    "counterfactual",
    "index_shard",
    "is_validation",
    "load_samples",
    "steps_per_epoch",
    "stream_indices",
]

COUNTING_STREAM, COMMON_STREAM, CF_STREAM, AUG_STREAM, CLASS_STREAM = 0, 1, 2, 3, 4


# --------------------------------------------------------------------------- captions


def counterfactual(
    ref: SampleRef,
    n: int,
    text: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> str:
    """``text`` (default: the sample's caption) with its number word swapped for ``n``.

    Delegates to :class:`countclip.data.captions.parser.CountCaption` (the one place that knows
    number words and case rules). Imported here, not at module level: the parser imports spaCy
    (seconds), which readers of this module that never build counterfactuals skip.
    """
    from countclip.data.captions.parser import CountCaption

    text = ref.caption if text is None else text
    start = ref.start if start is None else start
    end = ref.end if end is None else end
    if n == ref.count:
        return text
    return CountCaption(text, ref.count, start, end).counterfactual(n)


# --------------------------------------------------------------------------- streams


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
        lambda_mean: float | None = None,
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
        self.class_members, self.class_p = self._class_sampling(count_sampling_power)
        self.weight_of = self._weights(lambdas, lambda_scale, lambda_mean)
        self.reader = ShardReader()

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

    def _weights(
        self, lambdas: Mapping[int, float] | None, scale: float, mean: float | None
    ) -> dict[int, float]:
        """λ per count × ``scale``; with ``mean``, rescaled so that the expected λ of a counting
        slot under this run's sampling is ``mean`` — schemes compared at matched mean λ, so that
        "log beats constant" cannot just mean "log's λ is larger"."""
        if lambdas is None:
            return {c: scale for c in COUNTS}
        present = {r.count for r in self.counting}
        missing = sorted(present - set(lambdas))
        if missing:
            raise ValueError(f"lambdas.json: field 'lambdas' has no value for count(s) {missing}")
        weights = {c: float(lambdas[c]) * scale for c in present}
        if mean is None or not weights:
            return weights
        expected = sum(p * weights[c] for c, p in self.count_probabilities().items())
        return {c: w * mean / expected for c, w in weights.items()} if expected > 0 else weights

    def count_probabilities(self) -> dict[int, float]:
        """The probability that a counting slot holds count c, under this run's sampling."""
        if self.class_p is not None:
            return {
                int(self.counting[m[0]].count): float(p)
                for m, p in zip(self.class_members, self.class_p, strict=True)
            }
        n: dict[int, int] = {}
        for ref in self.counting:
            n[ref.count] = n.get(ref.count, 0) + 1
        total = sum(n.values())
        return {c: k / total for c, k in n.items()}

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
        pictures = [self.reader.image(r) for r in refs]
        aug_seed = int(
            np.random.default_rng([self.seed, AUG_STREAM, step, self.rank]).integers(2**62)
        )
        with seeded_global_rng(aug_seed):  # torchvision's transforms only use the global one
            images = torch.stack([self.transform(p) for p in pictures])
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


def batch_loader(dataset: Dataset, indices: Iterable[int], workers: int) -> DataLoader:
    # Every ``iter()`` of a DataLoader draws a base seed from its generator, by default torch's
    # process-wide one, which another run in the same process may be using under
    # :func:`~countclip.training.seeding.seeded_global_rng`. Batches never use that seed (they are
    # seeded by step), so a private generator keeps the loaders off the shared one.
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=list(indices),
        num_workers=workers,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
        generator=torch.Generator().manual_seed(0),
    )


def build_train_loader(
    samples: Samples,
    tokenizer: Any,
    transform: Callable[[Image.Image], torch.Tensor],
    lambdas: Mapping[int, float] | None,
    *,
    steps: int,
    start_step: int = 0,
    workers: int = 0,
    **batches: Any,
) -> DataLoader:
    """Batches for steps ``start_step .. steps-1`` on this rank; ``batches`` are
    :class:`TrainBatches`' keyword arguments (``batch_size`` is per rank).

    The returned loader's ``.dataset`` is the :class:`TrainBatches`.
    """
    dataset = TrainBatches(samples, tokenizer, transform, lambdas, **batches)
    return batch_loader(dataset, range(start_step, steps), workers)
