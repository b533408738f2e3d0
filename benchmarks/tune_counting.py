"""Tune on the *validation* data only — neither CountBench is read here.

Each arm (``benchmarks/arms.yaml``, plus ``--set`` overrides for the whole run) fine-tunes from
the seed's baseline and reports what model selection sees: balanced accuracy (mean per-count
recall) on the counting validation split at the selected step and at the last step, the
per-count recall at the last step, and zero-shot accuracy per task on the *validation* split of
the world's zero-shot sets (scenes the reported check never uses). A tuning step is one command
that can be pasted into a config comment:

    .venv/bin/python benchmarks/tune_counting.py --config configs/bench-counting.yaml \\
        --arms control countclip --set train.steps=800 --set train.counting_fraction=0.35

Stages are cached under the data root, shared with the benchmark when the roots agree.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import experiment as ex

from countclip.offline import apply_offline_env
from countclip.yamlconfig import deep_merge, load_config
from countclip_flows.cli import parse_set


def _job(args: tuple) -> dict:
    arm, seed, cfg_json, data, baseline_checkpoint = args
    ex.one_thread()
    from countclip.config import PipelineConfig
    from countclip.evaluation.zeroshot import zero_shot_eval
    from countclip.training.model import load_model

    cfg = PipelineConfig.model_validate(cfg_json)
    train = ex.fine_tune(data, cfg, baseline_checkpoint)
    val = [
        json.loads(line)
        for line in Path(train["outputs"]["metrics"]).read_text().splitlines()
        if '"val_count_balanced_acc"' in line
    ]
    model, preprocess, tokenizer = load_model(cfg.train.model.name, train["outputs"]["checkpoint"])
    zero_shot = zero_shot_eval(
        model, preprocess, tokenizer, ex.zero_shot_datasets(data), split="validation"
    )
    return {
        "arm": arm,
        "seed": seed,
        "val": val,
        "zero_shot": {t: r["accuracy"] for t, r in zero_shot.items()},
        "seconds": train["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/bench-counting.yaml")
    parser.add_argument("--data-root", default=None, help="default: the config's data_root")
    parser.add_argument("--set", action="append", default=[], help="dotted.key=yaml_value")
    parser.add_argument("--arms", nargs="+", default=["control", "countclip"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    apply_offline_env()
    start = time.perf_counter()
    overrides: dict = {"data_root": args.data_root} if args.data_root else {}
    cfg = load_config(args.config, deep_merge(overrides, parse_set(args.set)))
    cfg.data_root = str(Path(cfg.data_root).resolve())
    arms_all = ex.load_arms()
    names = ex.check_arms(args.arms, arms_all)
    configs = {(a, s): ex.arm_config(cfg, arms_all[a], s) for a in names for s in args.seeds}
    data = ex.build_data(cfg, [c.verify for c in configs.values()])
    data.pop("countbench")  # never looked at here
    baselines = {s: ex.baseline(data, ex.arm_config(cfg, {}, s)) for s in args.seeds}
    jobs = [
        (a, s, c.model_dump(mode="json"), data, baselines[s]["outputs"]["checkpoint"])
        for (a, s), c in configs.items()
    ]
    for done in ex.parallel(_job, jobs, args.jobs):
        val = done["val"]
        best = max(val, key=lambda r: r["val_count_balanced_acc"])
        last = val[-1]
        zs = ", ".join(f"{t} {100 * v:.1f}" for t, v in done["zero_shot"].items())
        print(
            f"{done['arm']:24s} seed {done['seed']}: balanced val best "
            f"{best['val_count_balanced_acc']:.3f} @ {best['step']}, last "
            f"{last['val_count_balanced_acc']:.3f}; zero-shot val {zs}; "
            f"last per-count {last.get('val_per_count')}; {done['seconds']:.0f} s",
            flush=True,
        )
    print(f"total {(time.perf_counter() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
