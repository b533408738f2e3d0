"""Training step cost: CountCLIP (L_CLIP + L_count+, 1 in 5 counting) vs a plain ClipLoss step.

The CountCLIP step is the training loop's: one forward over the images and the distinct token
rows (captions + counterfactuals), text encoded only up to the last end-of-text column (CLIP's
causal text tower makes the padding after it irrelevant; see countclip.training.model.TrainForward).
For attribution the run also times the CountCLIP step without that trim and a plain step with
it. All run on the same model and the same batch in one process, interleaved (A, B, A, B...)
so that load from other processes on a shared machine hits both alike; medians are reported.
Goal: CountCLIP step time ≤ 1.3x the plain step. Also: data-loader samples/s (workers=0 and 1)
against the step's samples/s — the loader must not be the bottleneck; and the optimiser step
alone, torch's default per-parameter AdamW against the fused one the training loop uses
(countclip.training.optim.adamw), on the same gradients.

    .venv/bin/python benchmarks/bench_train.py [--batch 64] [--steps 8] [--threads 2]
    .venv/bin/python benchmarks/bench_train.py --flops ViT-B-32 --record
    .venv/bin/python benchmarks/bench_train.py --smoke    # batch 16, one step, one thread

``--flops MODEL`` also counts (torch's FLOP counter, no weights needed) the forward FLOPs of one
image and of one 77-token text row through MODEL's towers: what docs/scale.md turns into GPU
time for the real run (a projection from FLOPs, not a GPU measurement). ``--record`` stores the
result in benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
from open_clip.loss import ClipLoss
from ratios import ratio
from scale_record import record, snapshot

from countclip.config import ModelConfig
from countclip.synthetic.shards import write_synthetic_shards
from countclip.training.loader import build_train_loader, load_samples
from countclip.training.losses import CountingClipLoss
from countclip.training.model import TINY_MODEL, TrainForward, create_model, encode_batch
from countclip.training.optim import adamw, param_groups


def tower_flops(name: str) -> dict:
    """Forward FLOPs of one image and one full-context text row through ``name``'s towers
    (random weights: FLOPs do not depend on them)."""
    import open_clip
    from torch.utils.flop_counter import FlopCounterMode

    # train mode, as in training: in eval + no_grad, nn.MultiheadAttention takes a fused fast
    # path the FLOP counter does not see (the image tower came out ~1/3 short)
    model = open_clip.create_model(name, pretrained=None).train()
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else size
    images = torch.zeros(2, 3, size, size)
    texts = open_clip.get_tokenizer(name)(["two cats on a sofa", "three red stars"])
    with FlopCounterMode(display=False) as image_counter:
        model.encode_image(images)
    with FlopCounterMode(display=False) as text_counter:
        model.encode_text(texts)
    return {
        "model": name,
        "image_size": int(size),
        "text_context": int(texts.shape[1]),
        "image_fwd_gflops": round(image_counter.get_total_flops() / 2 / 1e9, 3),
        "text_row_fwd_gflops": round(text_counter.get_total_flops() / 2 / 1e9, 3),
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
    }


def time_optimizers(model: torch.nn.Module, steps: int) -> dict[str, float]:
    """Median seconds of one AdamW step, torch's per-parameter loop vs the fused kernel the
    training loop uses, on the gradients the last training step left (interleaved)."""
    settings = {"lr": 1e-5, "betas": (0.9, 0.98), "eps": 1e-6}
    optimizers = {
        "loop": torch.optim.AdamW(param_groups(model, 0.2), foreach=False, **settings),
        "fused": adamw(model, weight_decay=0.2, **settings),
    }
    times: dict[str, list[float]] = {k: [] for k in optimizers}
    for i in range(steps + 1):
        for name, optimizer in optimizers.items():
            t0 = time.perf_counter()
            optimizer.step()
            if i:  # the first step allocates the moments
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loader-steps", type=int, default=10)
    parser.add_argument("--flops", metavar="MODEL", help="also count MODEL's forward FLOPs")
    parser.add_argument("--record", action="store_true", help="store in benchmarks/results/")
    parser.add_argument("--smoke", action="store_true", help="batch 16, one step, one thread")
    args = parser.parse_args()
    shards = (400, 1600, 500)  # counting samples, common samples, per shard
    if args.smoke:
        if args.record:
            parser.error("--smoke records nothing: drop --record")
        args.batch, args.steps, args.loader_steps, args.threads = 16, 1, 1, 1
        shards = (40, 160, 100)
    before = snapshot()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        counting, common = write_synthetic_shards(tmp, shards[0], shards[1], per_shard=shards[2])
        samples = load_samples(counting, common, val_fraction=0.1)
        model, preprocess_train, _, tokenizer = create_model(ModelConfig(name=TINY_MODEL))
        optimizer = adamw(model, lr=1e-5, weight_decay=0.2, betas=(0.9, 0.98), eps=1e-6)

        def loader(workers: int, steps: int):
            return build_train_loader(
                samples,
                tokenizer,
                preprocess_train,
                None,
                batch_size=args.batch,
                counting_fraction=args.fraction,
                count_loss="count_plus",
                steps=steps,
                workers=workers,
            )

        batch = next(iter(loader(0, 1)))
        count_loss = CountingClipLoss("count_plus", "model")
        clip_loss = ClipLoss()
        images, texts = batch["images"], batch["texts"]

        forward = TrainForward(model)  # what train.py runs: trimmed text encoding

        def countclip_step(fwd: torch.nn.Module = forward) -> None:
            image_f, caption_f, cf_f, scale = encode_batch(fwd, batch, torch.device("cpu"))
            losses = count_loss(
                image_f, caption_f, scale, batch["count_index"], cf_f, batch["weights"]
            )
            optimizer.zero_grad(set_to_none=True)
            CountingClipLoss.total(losses).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()

        def plain_step(fwd: torch.nn.Module = model) -> None:
            image_f, text_f, scale = fwd(images, texts)[:3]
            loss = clip_loss(image_f, text_f, scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()

        for _ in range(2):  # warm-up (allocator, first-call overheads)
            countclip_step()
            plain_step()
        variants = {
            "countclip": countclip_step,  # the training loop's step
            "clip": plain_step,  # plain open_clip: model(images, texts) + ClipLoss
            # for attribution: each without / with the padding trim
            "countclip_untrimmed": lambda: countclip_step(model),
            "clip_trimmed": lambda: plain_step(forward),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.steps):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        optimizer_s = time_optimizers(model, args.steps)
        rows = torch.cat([texts, batch["cf_texts"].flatten(0, 1)])
        unique_rows = int(torch.unique(rows, dim=0).shape[0])

        loader_rates = {}
        for workers in (0, 1):
            it = iter(loader(workers, args.loader_steps + 1))
            next(it)  # worker start-up is a one-off, not throughput
            t0 = time.perf_counter()
            n = sum(len(b["sample_ids"]) for b in it)
            loader_rates[workers] = n / (time.perf_counter() - t0)

    result = {
        "batch": args.batch,
        "counting_per_batch": int(batch["counts"].numel()),
        "text_rows": {
            "captions": int(texts.shape[0]),
            "with_counterfactuals": int(rows.shape[0]),
            "distinct_encoded": unique_rows,
        },
        "step_s": {k: round(v, 4) for k, v in med.items()},
        "ratio_countclip_over_clip": round(med["countclip"] / med["clip"], 3),
        "ratio_untrimmed_over_clip": round(med["countclip_untrimmed"] / med["clip"], 3),
        "ratio_countclip_over_clip_trimmed": round(med["countclip"] / med["clip_trimmed"], 3),
        "step_samples_per_s": round(args.batch / med["countclip"], 1),
        "optimizer_step_s": {k: round(v, 4) for k, v in optimizer_s.items()},
        "ratio_fused_over_loop_adamw": round(optimizer_s["fused"] / optimizer_s["loop"], 3),
        "loader_samples_per_s": {f"workers={k}": round(v, 1) for k, v in loader_rates.items()},
    }
    print(
        f"CountCLIP step (L_count+, {result['counting_per_batch']}/{args.batch} counting): "
        f"{med['countclip']:.3f} s  ({1 / med['countclip']:.2f} steps/s)"
    )
    print(
        f"plain ClipLoss step:                         {med['clip']:.3f} s  "
        f"({1 / med['clip']:.2f} steps/s)"
    )
    print(
        f"ratio: {result['ratio_countclip_over_clip']:.2f}x (goal <= 1.3x); without the "
        f"padding trim {result['ratio_untrimmed_over_clip']:.2f}x; against a plain step that "
        f"also trims {result['ratio_countclip_over_clip_trimmed']:.2f}x"
    )
    print(
        f"step consumes {result['step_samples_per_s']:.0f} samples/s; loader produces "
        + ", ".join(f"{k}: {v:.0f}/s" for k, v in result["loader_samples_per_s"].items())
    )
    print(
        f"AdamW step alone: per-parameter loop {optimizer_s['loop']:.3f} s, fused "
        f"{optimizer_s['fused']:.3f} s ({result['ratio_fused_over_loop_adamw']:.2f}x)"
    )
    ratio("countclip_over_clip_step", med["countclip"] / med["clip"], "<=1.3")
    ratio("untrimmed_over_clip_step", med["countclip_untrimmed"] / med["clip"])
    ratio("countclip_over_clip_trimmed_step", med["countclip"] / med["clip_trimmed"])
    ratio("fused_over_loop_adamw_step", optimizer_s["fused"] / optimizer_s["loop"])
    # the loader must not be the bottleneck: its best rate against what the step consumes
    step_rate = args.batch / med["countclip"]
    ratio("loader_over_step_samples_per_s", max(loader_rates.values()) / step_rate, ">=1.0")
    if args.flops:
        result["flops"] = tower_flops(args.flops)
        f = result["flops"]
        print(
            f"{f['model']}: {f['image_fwd_gflops']:.2f} GFLOP forward per {f['image_size']}px "
            f"image, {f['text_row_fwd_gflops']:.2f} GFLOP per {f['text_context']}-token text row"
        )
    result["threads"] = args.threads
    print(json.dumps(result))
    if args.record:
        record("train", result, before)


if __name__ == "__main__":
    main()
