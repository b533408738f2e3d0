"""Validation counting accuracy: CountBench's rule (argmax over the caption with its number
swapped to each of two..ten) on the held-out split of the *training* counting data.

This is what model selection and tuning look at; CountBench itself is never used to choose
anything. Tallies are per count so ranks can sum them (DDP) and so a skewed split can be scored
by mean per-count recall ("balanced"), which predicting "two" for everything does not win.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from countclip.counts import COUNTS
from countclip.training.encoders import encode_text
from countclip.training.loader import batch_loader, count_variants
from countclip.training.model import unwrap_model
from countclip.training.shard_index import SampleRef, Samples, ShardReader


@torch.no_grad()
def validate(
    model: nn.Module, loader: Any, device: torch.device, autocast: Callable[[], Any]
) -> list[int]:
    """Per-count tallies of argmax over the nine count variants on this rank's share:
    ``[correct_2..correct_10, total_2..total_10]`` (summed across ranks by the caller)."""
    bare = unwrap_model(model)
    was_training = bare.training
    bare.eval()
    correct = [0] * len(COUNTS)
    total = [0] * len(COUNTS)
    for batch in loader:
        variants = batch["variant_texts"]
        n, k = variants.shape[:2]
        unique, inverse = torch.unique(variants.reshape(n * k, -1), dim=0, return_inverse=True)
        with autocast():
            image = bare.encode_image(batch["images"].to(device), normalize=True)
            text = encode_text(bare, unique.to(device))
        text = text[inverse.to(device)].view(n, k, -1).float()
        pred = torch.einsum("nd,nkd->nk", image.float(), text).argmax(1) + COUNTS[0]
        for truth, guess in zip(batch["counts"].tolist(), pred.cpu().tolist(), strict=True):
            total[truth - COUNTS[0]] += 1
            correct[truth - COUNTS[0]] += int(truth == guess)
    bare.train(was_training)
    return correct + total


def validation_scores(tallies: Sequence[int]) -> dict[str, float] | None:
    """Plain and balanced (mean per-count recall over the counts present) accuracy.

    The counting data is skewed like LAION (most captions say "two"), so plain accuracy rewards
    predicting "two"; balanced accuracy is what model selection uses by default.
    """
    k = len(tallies) // 2
    correct, total = tallies[:k], tallies[k:]
    if sum(total) == 0:
        return None
    recalls = [c / t for c, t in zip(correct, total, strict=True) if t]
    return {"accuracy": sum(correct) / sum(total), "balanced": sum(recalls) / len(recalls)}


def per_count_recall(tallies: Sequence[int]) -> dict[str, float]:
    """``{count: recall}`` over the counts present in the validation split (for the log: which
    counts a run has learnt is what the balanced score hides)."""
    k = len(tallies) // 2
    return {
        str(COUNTS[0] + i): round(tallies[i] / tallies[k + i], 4)
        for i in range(k)
        if tallies[k + i]
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
        self.reader = ShardReader()

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
    return batch_loader(
        ValBatches(refs, tokenizer, transform, batch_size),
        range(-(-len(refs) // batch_size)),
        workers,
    )
