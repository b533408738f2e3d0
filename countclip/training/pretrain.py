"""Contrastive pretraining of a baseline CLIP before any counting loss.

The paper fine-tunes OpenAI's CLIP, which learnt from web captions where few state a count and
so counts poorly. Where no such model exists (the synthetic world), a baseline is made the same
way: L_CLIP only, from random init, on a corpus whose counting captions keep their natural,
LAION-like share. On real data this does not run: ``train.model.pretrained: openai`` is the
baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from countclip.config import PretrainConfig, TrainConfig
from countclip.progress import Progress, report_to, sub_progress


def pretrain_train_config(cfg: PretrainConfig, counting_share: float) -> TrainConfig:
    """The :class:`TrainConfig` of a pretraining run: L_CLIP only, counting captions mixed in at
    their natural share (never forced up: that would teach counting before the experiment)."""
    return TrainConfig(
        model=cfg.model,
        count_loss="none",
        lambda_scale=0.0,
        counting_fraction=max(counting_share, 1.0 / cfg.batch_size),
        batch_size=cfg.batch_size,
        steps=cfg.steps,
        lr=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        val_fraction=0.05,
        eval_every=cfg.steps,
        checkpoint_every=max(cfg.steps // 4, 1),
        seed=cfg.seed,
        device="cpu",
        threads=cfg.threads,
    )


def pretrain(
    corpus: Mapping[str, Any], cfg: PretrainConfig, work: Path, progress: Progress | None = None
) -> tuple[dict, dict]:
    """Train the baseline on ``corpus`` (``counting``/``common`` shard lists and their
    ``sizes``) into ``work/run`` (resumed after a crash); return ``(outputs, stats)``."""
    from countclip.training.loop import train

    sizes = corpus["sizes"]
    share = sizes["counting"] / max(sizes["counting"] + sizes["common"], 1)
    report_to(progress)(0.05, f"rendered {sum(sizes.values())} images ({share:.1%} counting)")
    summary = train(
        pretrain_train_config(cfg, share),
        corpus["counting"],
        corpus["common"],
        None,
        work / "run",
        progress=sub_progress(progress, 0.05, 1.0),
        show_progress="pretrain baseline",
    )
    outputs = {
        # The last weights, not the "best" by counting accuracy: a baseline is not selected
        # for counting.
        "checkpoint": summary.get("last") or work / "run" / "last.pt",
        "metrics": summary.get("metrics") or work / "run" / "metrics.jsonl",
    }
    stats = {
        "corpus": sizes,
        "counting_share": round(share, 4),
        "model": cfg.model.name,
        "steps": cfg.steps,
    }
    return outputs, stats
