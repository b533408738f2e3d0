"""Does CountCLIP learn to count? Baseline vs L_CLIP-only control vs CountCLIP, over seeds.

Rows: the baseline (pretrained, no fine-tuning), the control (L_CLIP only), and CountCLIP for
each λ scheme (constant, norm, modal, log) × {L_count, L_count+}. Columns: synthetic CountBench
accuracy mean ± sd over seeds, the worst per-count accuracy (of the seed-mean per-count
accuracies), and zero-shot shape/colour accuracy (mean of the two tasks).

Every fine-tune starts from the same baseline, with the same data, steps and seed as its
control — as the paper fine-tunes one OpenAI checkpoint; the seeds vary the fine-tuning (data
order, counterfactual draws). Checkpoints are selected on the counting validation split only;
CountBench is never looked at until the end.

    .venv/bin/python benchmarks/bench_counting.py --config configs/demo.yaml --seeds 0 1 2

``--arms control count_plus:constant`` fine-tunes only those rows (the config's own CountCLIP
row against its control, say), for a quick look at a new world; the full table is the benchmark.
Stages are cached under --data-root (the same fingerprints as the pipeline), so an interrupted
run resumes. --jobs runs fine-tunes in parallel processes (1 torch thread each).
One run per data root at a time (use --jobs): a second finds the synthetic world's port
busy, serves it on another port, and so builds a new world with every stage after it.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from countclip.config import PipelineConfig, TrainConfig
from countclip.offline import apply_offline_env
from countclip.yamlconfig import load_config

SCHEMES = ("constant", "norm", "modal", "log")
LOSSES = ("count", "count_plus")


def build(cfg: PipelineConfig) -> dict:
    """World -> metadata -> captions -> downloads -> CountBench -> baseline (all cached)."""
    from countclip.data.captions.stage import run_caption_stage
    from countclip.data.download.stage import run_download_stage
    from countclip.data.metadata import run_metadata_stage
    from countclip.evaluation.countbench import run_countbench_stage
    from countclip.synthetic.pretrain import run_pretrain_stage
    from countclip.synthetic.stage import run_world_stage, serve_world

    root = cfg.data_root
    with serve_world(cfg.world) as base_url:
        world = run_world_stage(cfg.world, root, base_url)
        cfg.metadata.source = world["source"]
        cfg.evaluate.countbench = world["outputs"]["countbench"]
        metadata = run_metadata_stage(cfg.metadata, root)
        captions = run_caption_stage(metadata, cfg.captions, root)
        counting = run_download_stage(captions, "counting", cfg.download, root)
        common = run_download_stage(captions, "common", cfg.download, root)
        bench = run_countbench_stage(cfg.evaluate, cfg.download, root)
    baseline = run_pretrain_stage(world, cfg.pretrain, root)
    return {"counting": counting, "common": common, "countbench": bench, "baseline": baseline}


def _train_and_evaluate(args: tuple) -> tuple[str, int, dict]:
    """One fine-tune + its evaluation in a worker process (1 torch thread)."""
    label, seed, counting, common, lambdas, train_cfg, cfg, bench, root = args
    import torch

    torch.set_num_threads(1)
    from countclip.training.stage import run_training

    manifest = run_training(counting, common, lambdas, train_cfg, root)
    return label, seed, evaluate(cfg, bench, label, manifest["outputs"]["checkpoint"], root)


def all_arms() -> list[str]:
    """Every row after the baseline, as ``--arms`` names them: ``control``, ``loss:scheme``."""
    return ["control"] + [f"{loss}:{scheme}" for loss in LOSSES for scheme in SCHEMES]


def check_arms(arms: list[str]) -> list[str]:
    """``arms`` if every one names a row, else exit naming the unknown ones."""
    unknown = sorted(set(arms) - set(all_arms()))
    if unknown:
        raise SystemExit(f"--arms: unknown {unknown}; choose from {all_arms()}")
    return arms


def runs(
    cfg: PipelineConfig, built: dict, seeds: list[int], root: str, arms: list[str] | None = None
) -> list[tuple]:
    from countclip.data.lambdas import run_lambda_stage

    wanted = set(all_arms() if arms is None else check_arms(arms))

    base: TrainConfig = cfg.train.model_copy(deep=True)
    base.model.pretrained = built["baseline"]["outputs"]["checkpoint"]
    base.threads = 1
    bench = built["countbench"]
    lambdas = {
        s: run_lambda_stage(built["counting"], cfg.lambdas.model_copy(update={"scheme": s}), root)
        for s in SCHEMES
    }
    jobs = []
    for seed in seeds:
        control = base.model_copy(update={"count_loss": "none", "seed": seed})
        if "control" in wanted:
            jobs.append(
                (
                    "control",
                    seed,
                    built["counting"],
                    built["common"],
                    None,
                    control,
                    cfg,
                    bench,
                    root,
                )
            )
        for loss in LOSSES:
            for scheme in SCHEMES:
                if f"{loss}:{scheme}" not in wanted:
                    continue
                run_cfg = base.model_copy(update={"count_loss": loss, "seed": seed})
                label = f"countclip {'L_count+' if loss == 'count_plus' else 'L_count'} λ={scheme}"
                jobs.append(
                    (
                        label,
                        seed,
                        built["counting"],
                        built["common"],
                        lambdas[scheme],
                        run_cfg,
                        cfg,
                        bench,
                        root,
                    )
                )
    return jobs


def evaluate(cfg: PipelineConfig, bench: dict, label: str, checkpoint: str, root: str) -> dict:
    from countclip.evaluation.stage import run_evaluation_stage

    ref = {
        "name": cfg.train.model.name,
        "checkpoint": checkpoint,
        "pretrained": None,
        "label": label,
    }
    return run_evaluation_stage(ref, bench, cfg.evaluate, root)


def _class_counts(counting: dict) -> str:
    """``2: n, 3: n, ...`` downloaded counting samples per count (from the download manifest)."""
    from countclip.data.lambdas import class_frequencies

    freq = class_frequencies(counting)
    return ", ".join(f"{c}: {freq.get(c, 0)}" for c in range(2, 11))


def _zero_shot(result: dict) -> float:
    tasks = result.get("zero_shot") or {}
    values = [t["accuracy"] for t in tasks.values() if t.get("accuracy") is not None]
    return sum(values) / len(values) if values else float("nan")


def summarise(results: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for label, per_seed in results.items():
        accs = [r["accuracy"] for r in per_seed]
        counts = sorted({int(c) for r in per_seed for c in r["per_count_accuracy"]})
        per_count_mean = {
            c: statistics.fmean(
                r["per_count_accuracy"].get(str(c), r["per_count_accuracy"].get(c)) or 0.0
                for r in per_seed
            )
            for c in counts
        }
        rows.append(
            {
                "label": label,
                "n": len(per_seed),
                "acc_mean": statistics.fmean(accs),
                "acc_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "worst_count": min(per_count_mean, key=per_count_mean.get),
                "worst_acc": min(per_count_mean.values()),
                "per_count": per_count_mean,
                "zero_shot": statistics.fmean(_zero_shot(r) for r in per_seed),
            }
        )
    return rows


def markdown(rows: list[dict], command: str, meta: dict) -> str:
    control = next((r for r in rows if r["label"] == "control"), None)
    lines = [
        "# CountCLIP on the synthetic CountBench",
        "",
        f"Made by `{command}` on {meta['date']} ({meta['machine']}; {meta['minutes']:.1f} min).",
        "",
        f"Seeds: {meta['seeds']}. Fine-tuning: {meta['steps']} steps, batch {meta['batch']}, "
        f"lr {meta['lr']:g}, 1 in {round(1 / meta['fraction'])} samples counting "
        f"(count c drawn with weight n_c^{meta['power']:g}), λ0 {meta['lambda0']:g}, from one "
        f"pretrained baseline ({meta['pretrain_steps']} steps). Counting data: "
        f"{meta['counting']}. CountBench: {meta['evaluated']}. Chance = 11.1%. Zero-shot: "
        f"{meta['zero_shot_per_class']} images per shape/colour class.",
        "",
        "| model | CountBench acc. (mean ± sd) | Δ vs control | worst count (acc.) "
        "| zero-shot acc. | Δ zero-shot |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d_acc = d_zs = ""
        if control is not None and r is not control and r["label"] != "baseline":
            d_acc = f"{100 * (r['acc_mean'] - control['acc_mean']):+.1f}"
            d_zs = f"{100 * (r['zero_shot'] - control['zero_shot']):+.1f}"
        lines.append(
            f"| {r['label']} | {100 * r['acc_mean']:.1f} ± {100 * r['acc_sd']:.1f} | {d_acc} "
            f"| {r['worst_count']} ({100 * r['worst_acc']:.1f}) | {100 * r['zero_shot']:.1f} "
            f"| {d_zs} |"
        )
    lines += [
        "",
        "Per-count accuracy (seed mean, %):",
        "",
        "| model | " + " | ".join(str(c) for c in range(2, 11)) + " |",
        "|---|" + "---:|" * 9,
    ]
    for r in rows:
        cells = [f"{100 * r['per_count'].get(c, float('nan')):.0f}" for c in range(2, 11)]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/bench-counting.yaml")
    parser.add_argument("--data-root", default=None, help="default: the config's data_root")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="override train.steps")
    parser.add_argument("--jobs", type=int, default=2, help="fine-tunes in parallel")
    parser.add_argument("--out", default="docs/results.md")
    parser.add_argument(
        "--arms",
        nargs="+",
        default=None,
        help="rows to fine-tune (default all): control, count:<scheme>, count_plus:<scheme>; "
        "name them before looking at any CountBench number, or the subset is a selection on it",
    )
    args = parser.parse_args(argv)
    apply_offline_env()
    start = time.perf_counter()
    overrides: dict = {"data_root": args.data_root} if args.data_root else {}
    if args.steps:
        overrides["train"] = {"steps": args.steps}
    cfg = load_config(args.config, overrides)
    cfg.data_root = str(Path(cfg.data_root).resolve())
    built = build(cfg)
    print(f"built: baseline {built['baseline']['outputs']['checkpoint']}", flush=True)
    jobs = runs(cfg, built, args.seeds, cfg.data_root, args.arms)
    results: dict[str, list[dict]] = {"baseline": []}
    baseline = evaluate(
        cfg,
        built["countbench"],
        "baseline",
        built["baseline"]["outputs"]["checkpoint"],
        cfg.data_root,
    )
    results["baseline"].append(baseline)
    with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
        for done, (label, seed, result) in enumerate(pool.map(_train_and_evaluate, jobs), 1):
            results.setdefault(label, []).append(result)
            print(
                f"[{done}/{len(jobs)}] {label} seed {seed}: CountBench {result['accuracy']:.3f}",
                flush=True,
            )
    rows = summarise(results)
    command = "python benchmarks/bench_counting.py " + " ".join(argv or sys.argv[1:])
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}",
        "minutes": (time.perf_counter() - start) / 60,
        "seeds": args.seeds,
        "steps": cfg.train.steps,
        "batch": cfg.train.batch_size,
        "fraction": cfg.train.counting_fraction,
        "lr": cfg.train.lr,
        "power": cfg.train.count_sampling_power,
        "lambda0": cfg.lambdas.lambda0,
        "zero_shot_per_class": cfg.evaluate.zero_shot_per_class,
        "pretrain_steps": cfg.pretrain.steps,
        "counting": _class_counts(built["counting"]),
        "evaluated": baseline.get("message", ""),
    }
    text = markdown(rows, command.strip(), meta)
    from countclip.atomic import atomic_write_text

    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
