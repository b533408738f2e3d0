"""CountCLIP fine-tuning loop: one process or ``torchrun`` DDP, AMP on GPU, exact resume.

open_clip's own trainer cannot feed counterfactual captions, so this is a small loop around
open_clip's pieces (model, tokenizer, ``ClipLoss`` + feature gathering) with the open_clip
recipe: AdamW (torch's fused kernel) without weight decay on gains/biases/logit scale, linear
warmup then cosine, gradient clipping, logit scale clamped to ≤ 100, bf16 autocast on CUDA only.

One step: a single forward through the (DDP-wrapped) model with the batch images and the
*distinct* token rows among captions and counterfactuals (a counting sample's nine count variants
share most text, and synthetic/LAION captions repeat), indexed back to (B, D) caption and
(N, K, D) counterfactual features; loss = L_CLIP + L_count (:mod:`countclip.training.losses`).

Resume is exact: a checkpoint (``state.pt`` of :mod:`countclip.training.state`, every
``checkpoint_every`` steps, written atomically) holds model, optimizer, scheduler, RNG states and
the step, and the data of a step is a pure function of ``(seed, step, rank)``
(:mod:`countclip.training.loader`), so a run killed with SIGKILL and restarted on the same directory
ends with the same weights as an uninterrupted one.

Model selection: validation counting accuracy (argmax over the nine captions with the number
swapped to two..ten, CountBench's rule) on the held-out split of the counting data, every
``eval_every`` steps (or every epoch) and at the end; never on CountBench.

Under torchrun: ``torchrun --nproc_per_node 2 -m countclip.training ...`` (gloo on CPU, NCCL on
GPU; :mod:`countclip.training.__main__`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from countclip.atomic import atomic_path
from countclip.config import ModelConfig, TrainConfig
from countclip.progress import Progress
from countclip.training.augment import training_transform
from countclip.training.distributed import (
    all_reduce_ints,
    autocast_for,
    dist_info,
    param_sum,
    resolve_train_device,
)
from countclip.training.loader import (
    Samples,
    build_train_loader,
    load_samples,
    steps_per_epoch,
)
from countclip.training.losses import CountingClipLoss
from countclip.training.metrics_log import MetricsLog, last_losses
from countclip.training.model import (
    TrainForward,
    create_model,
    encode_batch,
    save_checkpoint_for_open_clip,
    unwrap_model,
)
from countclip.training.optim import adamw, warmup_cosine
from countclip.training.seeding import seed_everything, seeded_global_rng
from countclip.training.state import STATE_FILE, load_state, restore_state, save_state
from countclip.training.validation import (
    build_val_loader,
    per_count_recall,
    validate,
    validation_scores,
)

logger = logging.getLogger(__name__)
BEST_FILE = "best.pt"
LAST_FILE = "last.pt"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss_curves.png"
SUMMARY_FILE = "summary.json"


# --------------------------------------------------------------------------- the loop


def _resolve_steps(cfg: TrainConfig, per_epoch: int) -> tuple[int, int]:
    """(total steps, eval interval): ``epochs`` wins over ``steps`` when set."""
    if cfg.epochs is not None:
        return cfg.epochs * per_epoch, per_epoch
    return cfg.steps, cfg.eval_every


def train(
    cfg: TrainConfig,
    counting_shards: Sequence[str],
    common_shards: Sequence[str],
    lambdas: Mapping[int, float] | None,
    out_dir: str | os.PathLike[str],
    progress: Progress | None = None,
    show_progress: bool | str = True,
    resume: bool = True,
) -> dict[str, Any]:
    """Train into ``out_dir`` (resuming from its ``state.pt`` if present) and return a summary.

    Works as a single process or under torchrun (process group from the environment; gloo on
    CPU, NCCL on CUDA). ``cfg.batch_size`` is per process.
    """
    rank, world_size, local_rank = dist_info()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_train_device(cfg, local_rank)
    own_group = False
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        own_group = True
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(
            cfg,
            counting_shards,
            common_shards,
            lambdas,
            out,
            progress,
            show_progress,
            resume,
            rank,
            world_size,
            device,
        )
    finally:
        if own_group:
            dist.destroy_process_group()


def _train(
    cfg: TrainConfig,
    counting_shards: Sequence[str],
    common_shards: Sequence[str],
    lambdas: Mapping[int, float] | None,
    out: Path,
    progress: Progress | None,
    show_progress: bool | str,
    resume: bool,
    rank: int,
    world_size: int,
    device: torch.device,
) -> dict[str, Any]:
    is_main = rank == 0
    seed_everything(cfg.seed)
    with seeded_global_rng(cfg.seed):  # random init (before any checkpoint) is this run's own
        model, preprocess_train, preprocess_val, tokenizer = create_model(cfg.model, device=device)
    samples: Samples = load_samples(counting_shards, common_shards, cfg.val_fraction)
    state_path = out / STATE_FILE
    state = load_state(state_path, cfg) if resume else None
    if state is not None:
        unwrap_model(model).load_state_dict(state["model"])
    start_step = state["step"] if state is not None else 0

    optimizer = adamw(model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas, eps=cfg.eps)
    model = TrainForward(model)
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    # λ = 0 is the L_CLIP-only control: the counting loss is still measured, never trained on.
    train_count_loss = "none" if cfg.lambda_scale == 0 else cfg.count_loss
    steps, eval_every = _resolve_steps(
        cfg,
        steps_per_epoch(
            len(samples.train_counting), cfg.batch_size, cfg.counting_fraction, world_size
        ),
    )
    loader = build_train_loader(
        samples,
        tokenizer,
        training_transform(cfg.augment, preprocess_train, preprocess_val),
        lambdas,
        batch_size=cfg.batch_size,
        counting_fraction=cfg.counting_fraction,
        count_loss=cfg.count_loss,
        lambda_scale=cfg.lambda_scale or 1.0,
        seed=cfg.seed,
        start_step=start_step,
        steps=steps,
        rank=rank,
        world_size=world_size,
        workers=cfg.workers,
        count_sampling_power=cfg.count_sampling_power,
        lambda_mean=cfg.lambda_mean,
    )
    val_loader = build_val_loader(
        samples,
        tokenizer,
        preprocess_val,
        batch_size=cfg.batch_size,
        rank=rank,
        world_size=world_size,
        workers=0,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_steps, steps))
    if state is not None:
        restore_state(state, optimizer, scheduler)
    loss_fn = CountingClipLoss(
        count_loss=train_count_loss, scale_mode=cfg.logit_scale, rank=rank, world_size=world_size
    )
    best = {"acc": None, "step": None} if state is None else dict(state["best"])
    resumed = start_step if state is not None else None
    log = MetricsLog(out / METRICS_FILE, resumed, is_main, cfg.report_to)
    if resumed is not None and is_main:
        logger.warning("%s: resumed from step %d of %d (%s)", out, resumed, steps, state_path)
        if progress:
            progress(resumed / max(steps, 1), f"resumed from step {resumed} of {steps}")
    autocast = lambda: autocast_for(cfg, device)  # noqa: E731
    params = [p for p in model.parameters() if p.requires_grad]
    bare = unwrap_model(model)
    global_batch = cfg.batch_size * world_size

    def evaluate(step: int) -> float | None:
        tallies = all_reduce_ints(validate(model, val_loader, device, autocast), world_size)
        scores = validation_scores(tallies)
        if scores is None:
            return None
        acc = scores[cfg.select_metric]
        log.write(
            {
                "step": step,
                "val_count_acc": scores["accuracy"],
                "val_count_balanced_acc": scores["balanced"],
                "val_samples": sum(tallies[len(tallies) // 2 :]),
                "val_per_count": per_count_recall(tallies),
            }
        )
        if best["acc"] is None or acc > best["acc"]:
            best.update(acc=acc, step=step)
            if is_main:
                save_checkpoint_for_open_clip(bare, out / BEST_FILE)
        return acc

    def checkpoint(step: int) -> None:
        if is_main:
            save_state(
                state_path,
                step=step,
                model=bare,
                optimizer=optimizer,
                scheduler=scheduler,
                best=best,
                cfg=cfg,
            )
        if world_size > 1:
            dist.barrier()

    if state is None:
        evaluate(0)  # the starting model is a candidate too (fine-tuning may only hurt)
    bar = None
    if show_progress and is_main:
        from tqdm.auto import tqdm

        bar = tqdm(  # side-by-side runs (the demo's fine-tunes) each get their own line
            total=steps,
            initial=start_step,
            desc=show_progress if isinstance(show_progress, str) else "train",
            disable=None,  # no bar when stderr is not a terminal (workers, CI logs)
            unit="step",
            dynamic_ncols=True,
            mininterval=1.0,
            file=sys.stderr,
        )
    last: dict[str, float] = {}
    seen, clock = 0, time.perf_counter()
    wait_start = time.perf_counter()
    data_wait = 0.0
    model.train()
    for batch in loader:
        step = batch["step"]
        data_wait += time.perf_counter() - wait_start
        t0 = time.perf_counter()
        with autocast():
            image_f, caption_f, cf_f, logit_scale = encode_batch(model, batch, device)
            losses = loss_fn(
                image_f,
                caption_f,
                logit_scale,
                batch["count_index"].to(device),
                cf_f,
                batch["weights"].to(device),
            )
        total = loss_fn.total(losses)
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite loss at step {step + 1}: {last_losses(losses)}")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if cfg.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip_norm)
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            bare.logit_scale.clamp_(0, math.log(100))
        done = step + 1
        seen += global_batch
        step_seconds = time.perf_counter() - t0
        elapsed = time.perf_counter() - clock
        last = {"loss": total.item(), **{k: v.item() for k, v in losses.items()}}
        row = {
            "step": done,
            **last,
            "lr": scheduler.get_last_lr()[0],
            "logit_scale": bare.logit_scale.detach().exp().item(),
            "samples_per_s": round(seen / elapsed, 2),
            "step_s": round(step_seconds, 4),
        }
        log.write(row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                loss=f"{last['loss']:.3f}",
                count=f"{last['count_loss']:.3f}",
                sps=f"{seen / elapsed:.0f}",
                refresh=False,
            )
        if done % eval_every == 0 or done == steps:
            acc = evaluate(done)
            if bar is not None and acc is not None:
                bar.write(f"step {done}: val counting accuracy {acc:.3f}")
        if done % cfg.checkpoint_every == 0 or done == steps:
            checkpoint(done)
        if progress is not None and is_main and (done % max(1, steps // 100) == 0 or done == steps):
            progress(done / steps, f"step {done}/{steps} loss {last['loss']:.4f}")
        wait_start = time.perf_counter()
    if bar is not None:
        bar.close()
    log.close()

    sums = [param_sum(model)]
    if world_size > 1:
        gathered: list[Any] = [None] * world_size
        dist.all_gather_object(gathered, sums[0])
        sums = gathered
    result: dict[str, Any] = {
        "steps": steps,
        "resumed_from": start_step if state else None,
        "model": cfg.model.name,
        "rank_param_sums": sums,
        "world_size": world_size,
    }
    if is_main:
        save_checkpoint_for_open_clip(bare, out / LAST_FILE)
        if best["acc"] is None:  # no validation split: the last weights are the selection
            shutil.copyfile(out / LAST_FILE, out / BEST_FILE)
        wall = time.perf_counter() - clock
        result.update(
            checkpoint=str(out / BEST_FILE),
            last=str(out / LAST_FILE),
            metrics=str(out / METRICS_FILE),
            state=str(state_path),
            best_val_count_acc=best["acc"],
            select_metric=cfg.select_metric,
            best_step=best["step"],
            final_loss=last.get("loss"),
            final_contrastive_loss=last.get("contrastive_loss"),
            final_count_loss=last.get("count_loss"),
            samples_per_s=round(seen / wall, 2) if seen else None,
            data_wait_s=round(data_wait, 3),
            counting_train=len(samples.train_counting),
            counting_val=len(samples.val_counting),
            common=len(samples.common),
        )
        if (out / METRICS_FILE).exists():
            from countclip.plots import plot_loss_curves

            result["loss_plot"] = str(plot_loss_curves(out / METRICS_FILE, out / PLOT_FILE))
        with atomic_path(out / SUMMARY_FILE) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
    if world_size > 1:
        dist.barrier()
    return result


__all__ = ["ModelConfig", "TrainConfig", "train"]
