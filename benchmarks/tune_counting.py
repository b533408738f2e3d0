"""Tune the counting set-up on the *validation split* only — CountBench is never read here.

Each arm fine-tunes the config's pretrained baseline with one change (the control, or a loss +
λ scheme) and reports what model selection sees: balanced validation accuracy (mean per-count
recall over the counting validation split) at the selected step and at the last step, plus the
per-count recall at the last step, and the zero-shot shape/colour accuracy of the selected
checkpoint on *validation* scenes (``zeroshot.VALIDATION_SEED``, not the reported check's).
Config changes go in with ``--set`` (dotted keys, YAML values), so a tuning step is one
command that can be pasted into a config comment:

    .venv/bin/python benchmarks/tune_counting.py --config configs/demo.yaml \
        --set pretrain.steps=1500 --set train.steps=400 --arms control count_plus:modal

Stages are cached under --data-root, shared with the benchmark when the roots agree.
One run per data root at a time (use --jobs): a second finds the synthetic world's port
busy, serves it on another port, and so builds a new world with every stage after it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from countclip.config import PipelineConfig
from countclip.offline import apply_offline_env
from countclip.yamlconfig import deep_merge, load_config
from countclip_flows.cli import parse_set

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_counting import build, check_arms


def _fine_tune(args: tuple) -> tuple[str, int, dict]:
    arm, seed, counting, common, lambdas, train_cfg, root = args
    import torch

    torch.set_num_threads(1)
    from countclip.training.stage import run_training

    manifest = run_training(counting, common, lambdas, train_cfg, root)
    zero_shot = zero_shot_validation(manifest)
    rows = [
        json.loads(line)
        for line in Path(manifest["outputs"]["metrics"]).read_text().splitlines()
        if '"val_count_balanced_acc"' in line
    ]
    return arm, seed, {"manifest": manifest, "val": rows, "zero_shot": zero_shot}


def zero_shot_validation(manifest: dict, per_class: int = 100) -> dict[str, float]:
    """Zero-shot accuracy per task (and their mean) of the selected checkpoint, on validation
    scenes: 100 per class, so a shape-accuracy gap of 5 points is ~2 standard errors."""
    from countclip.evaluation.zeroshot import VALIDATION_SEED, zero_shot_eval
    from countclip.training.model import load_model

    model, preprocess, tokenizer = load_model(manifest["model"], manifest["outputs"]["checkpoint"])
    results = zero_shot_eval(
        model, preprocess, tokenizer, per_class=per_class, seed=VALIDATION_SEED
    )
    accuracy = {task: r["accuracy"] for task, r in results.items()}
    return {**accuracy, "mean": sum(accuracy.values()) / len(accuracy)}


def arms_jobs(cfg: PipelineConfig, built: dict, arms: list[str], seeds: list[int]) -> list:
    from countclip.data.lambdas import run_lambda_stage

    base = cfg.train.model_copy(deep=True)
    base.model.pretrained = built["baseline"]["outputs"]["checkpoint"]
    base.threads = 1
    jobs = []
    for seed in seeds:
        for arm in check_arms(arms):
            loss, _, scheme = arm.partition(":")
            loss = "none" if loss == "control" else loss
            lambdas = (
                run_lambda_stage(
                    built["counting"],
                    cfg.lambdas.model_copy(update={"scheme": scheme}),
                    cfg.data_root,
                )
                if loss != "none"
                else None
            )
            run_cfg = base.model_copy(update={"count_loss": loss, "seed": seed})
            jobs.append(
                (arm, seed, built["counting"], built["common"], lambdas, run_cfg, cfg.data_root)
            )
    return jobs


def _percent(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {100 * v:.1f}" for k, v in scores.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/bench-counting.yaml")
    parser.add_argument("--data-root", default=None, help="default: the config's data_root")
    parser.add_argument("--set", action="append", default=[], help="dotted.key=yaml_value")
    parser.add_argument(
        "--arms",
        nargs="+",
        default=["control", "count_plus:modal"],
        help="control, or LOSS:SCHEME with LOSS in count/count_plus",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    apply_offline_env()
    start = time.perf_counter()
    overrides: dict = {"data_root": args.data_root} if args.data_root else {}
    overrides = deep_merge(overrides, parse_set(args.set))
    cfg = load_config(args.config, overrides)
    cfg.data_root = str(Path(cfg.data_root).resolve())
    built = build(cfg)
    pre = built["baseline"]
    print(f"baseline {pre['outputs']['checkpoint']} ({pre['seconds']:.0f} s)", flush=True)
    jobs = arms_jobs(cfg, built, args.arms, args.seeds)
    with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
        for arm, seed, result in pool.map(_fine_tune, jobs):
            val = result["val"]
            best = max(val, key=lambda r: r["val_count_balanced_acc"])
            last = val[-1]
            print(
                f"{arm:18s} seed {seed}: balanced val best {best['val_count_balanced_acc']:.3f}"
                f" @ {best['step']}, last {last['val_count_balanced_acc']:.3f};"
                f" zero-shot val {_percent(result['zero_shot'])};"
                f" last per-count {last.get('val_per_count')};"
                f" {result['manifest']['seconds']:.0f} s",
                flush=True,
            )
    print(f"total {(time.perf_counter() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
