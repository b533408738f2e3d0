"""Does CountCLIP learn to count? Every arm of ``countclip_experiments/arms.yaml`` over seeds,
on one CountBench, with the raw per-image predictions written to ``results/``.

    .venv/bin/python -m countclip_experiments.counting --config configs/bench-counting.yaml \\
        --seeds 0 1 2 --countbench dev
    .venv/bin/python scripts/render_results.py          # results/ -> docs/results.md

Seed s pretrains baseline s and fine-tunes every arm from it with seed s (the spread covers
both). Checkpoints are selected on the counting validation split only.

``--countbench dev`` (and ``dev2``, the former confirmatory CountBench) are development
CountBenches: what tuning, docs and the demo may look at. ``--countbench confirmatory`` is for
the final numbers of a recipe fixed beforehand: before it builds or reads anything it registers
the run in the committed ledger (:mod:`countclip_experiments.ledger`: ``results/ledger.json``,
committed by the run itself), which refuses a tree with any modified or untracked file and a
second run for the same CountBench and recipe family (``--family``) whatever its ``--name`` or
worktree; the entry says ``finished`` or ``aborted`` when the run ends, and ``--resume``
takes an unfinished entry up again from the same tree and commit (the same entry, cached
stages reused: :func:`countclip_experiments.ledger.resume`). ``run.json`` records the
commit and the config hash, so the numbers can be traced to the exact recipe that was
committed before they existed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from countclip.atomic import atomic_write_json
from countclip.offline import apply_offline_env
from countclip.yamlconfig import load_config
from countclip_experiments import experiment as ex
from countclip_experiments import ledger

REPO = ex.REPO
"""The checkout whose ``results/`` (and ledger) the run writes: the one this code runs from."""


def _job(args: tuple) -> dict[str, Any]:
    """One fine-tune and its evaluation, in a worker process."""
    arm, seed, cfg_json, data, baseline_checkpoint, split = args
    ex.one_thread()
    from countclip.config import PipelineConfig

    cfg = PipelineConfig.model_validate(cfg_json)
    train = ex.fine_tune(data, cfg, baseline_checkpoint, label=arm)
    result = ex.evaluate(
        cfg, data["countbench"][split], arm, train["outputs"]["checkpoint"], "test"
    )
    return {"arm": arm, "seed": seed, "train": train, "evaluation": result}


def raw_result(arm: str, seed: int, split: str, evaluation: dict, train: dict | None) -> dict:
    """What ``results/`` keeps of one (arm, seed): per-image predictions and the summary."""
    import pyarrow.parquet as pq

    predictions = pq.read_table(
        evaluation["outputs"]["predictions"], columns=["SAMPLE_ID", "number", "predicted"]
    ).to_pydict()
    stats = evaluation["stats"]
    return {
        "arm": arm,
        "seed": seed,
        "countbench": split,
        "sample_ids": predictions["SAMPLE_ID"],
        "true": predictions["number"],
        "predicted": predictions["predicted"],
        "accuracy": stats["accuracy"],
        "per_count_accuracy": stats["per_count_accuracy"],
        "zero_shot": {t: r["accuracy"] for t, r in (stats.get("zero_shot") or {}).items()},
        "evaluation_fingerprint": evaluation["fingerprint"],
        "train": None if train is None else _trained(train),
    }


def _trained(manifest: dict) -> dict[str, Any]:
    """What a row keeps of the model's making: the fine-tune's fingerprint and selection, and
    for a WiSE-FT (the wise_ft stage's manifest) its α and validation score too."""
    stats = manifest["stats"]
    row = {
        "fingerprint": manifest["fingerprint"],
        "best_val_count_acc": stats.get("best_val_count_acc"),
        "best_step": stats.get("best_step"),
        "seconds": manifest["seconds"],
    }
    if manifest.get("stage") == "wise_ft":
        row |= {
            "stage": "wise_ft",
            "train_fingerprint": stats["train_fingerprint"],
            "wise_ft_alpha": stats["alpha"],
            "wise_ft_val_count_balanced_acc": stats["val_count_balanced_acc"],
        }
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m countclip_experiments.counting", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", default="configs/bench-counting.yaml")
    parser.add_argument("--data-root", default=None, help="default: the config's data_root")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--countbench", choices=ex.COUNTBENCHES, default="dev")
    parser.add_argument("--arms", nargs="+", default=None, help="default: every arm")
    parser.add_argument(
        "--first-seed-only",
        nargs="+",
        default=[],
        metavar="ARM",
        help="arms run with the first seed only (ablation rows when CPU time is short; "
        "run.json records which)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="fine-tunes in parallel")
    parser.add_argument("--name", default=None, help="experiment name (default: config name)")
    parser.add_argument(
        "--family",
        choices=sorted(ledger.FAMILIES),
        default="counting",
        help="the recipe family a confirmatory run answers (one run per CountBench and family)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="confirmatory only: take up this tree's unfinished ledger entry of the same recipe "
        "(same commit, config, arms and seeds; cached stages are reused), not a new entry",
    )
    args = parser.parse_args(argv)
    apply_offline_env()
    start = time.perf_counter()
    overrides: dict = {"data_root": args.data_root} if args.data_root else {}
    cfg = load_config(args.config, overrides)
    cfg.data_root = str(Path(cfg.data_root).resolve())
    arms_all = ex.load_arms()
    names = ex.check_arms(args.arms or list(arms_all), arms_all)
    arms = {a: arms_all[a] for a in names}
    name = args.name or cfg.name
    out = REPO / "results" / name / args.countbench
    ex.check_arms(args.first_seed_only, arms)
    seeds_of = {a: args.seeds[:1] if a in args.first_seed_only else args.seeds for a in arms}
    command = ["python", "-m", "countclip_experiments.counting", *(argv or sys.argv[1:])]
    git = ex.git_state(REPO)  # the recipe's commit (a confirmatory run then commits its entry)
    if args.resume and args.countbench != "confirmatory":
        raise SystemExit("--resume: only a registered confirmatory run is resumed")
    if args.countbench != "confirmatory":
        _run(args, cfg, arms, seeds_of, name, out, command, start, git)
        return 0
    if (out / "run.json").exists():
        raise SystemExit(f"{out}: the confirmatory CountBench was already run for {name}")
    from countclip.synthetic.bench_scenes import countbench_scenes, split_seed

    countbench = {
        "split": "confirmatory",
        "seed": split_seed(cfg.world, "confirmatory"),
        "per_count": cfg.world.countbench_per_count,
        "digest": ledger.countbench_digest(countbench_scenes(cfg.world, "confirmatory")),
    }
    with ledger.registered(
        REPO,
        resume_from=str(out.relative_to(REPO)) if args.resume else None,
        experiment=name,
        family=args.family,
        countbench=countbench,
        config=args.config,
        config_hash=ex.config_hash(cfg, arms),
        arms_file_sha256=ex.file_sha(ex.ARMS_FILE),
        seeds=args.seeds,
        seeds_by_arm=seeds_of,
        command=command,
    ) as registration:
        how = "resumed" if args.resume else "registered"
        print(f"{how} in {ledger.LEDGER} as {registration.entry['id']}", flush=True)
        git["ledger_entry"] = registration.entry["id"]
        git["commit"] = registration.entry["commit"]  # the recipe's, resumed or not
        git["attempts"] = 1 + len(registration.entry.get("resumed") or [])
        _run(args, cfg, arms, seeds_of, name, out, command, start, git)
        registration.finish(results=str(out.relative_to(REPO)))
    return 0


def _run(
    args: argparse.Namespace,
    cfg: Any,
    arms: dict[str, dict],
    seeds_of: dict[str, list[int]],
    name: str,
    out: Path,
    command: list[str],
    start: float,
    git: dict[str, Any],
) -> None:
    """Every arm over its seeds on ``args.countbench``; rows written as they finish, then
    ``run.json``."""
    configs = {(a, s): ex.arm_config(cfg, arms[a], s) for a in arms for s in seeds_of[a]}
    data = ex.build_data(cfg, [c.verify for c in configs.values()], splits=[args.countbench])
    if args.countbench not in data["countbench"]:
        raise SystemExit(f"the world wrote no {args.countbench} CountBench")
    zero_shot = ex.zero_shot_datasets(data)
    for c in configs.values():
        c.evaluate.zero_shot_datasets = zero_shot
    bench = data["countbench"][args.countbench]
    baselines = {s: ex.baseline(data, ex.arm_config(cfg, {}, s)) for s in args.seeds}
    base_cfg = ex.arm_config(cfg, {}, args.seeds[0])
    base_cfg.evaluate.zero_shot_datasets = zero_shot
    raw = []

    def keep(row: dict) -> None:  # written as each finishes: a long run that dies keeps its rows
        raw.append(row)
        atomic_write_json(out / row["arm"] / f"seed-{row['seed']}.json", row)

    for seed, pre in baselines.items():
        ev = ex.evaluate(base_cfg, bench, "baseline", pre["outputs"]["checkpoint"], "test")
        keep(raw_result("baseline", seed, args.countbench, ev, None))
        print(f"baseline seed {seed}: CountBench {ev['stats']['accuracy']:.3f}", flush=True)
    split = args.countbench
    jobs = [
        (a, s, c.model_dump(mode="json"), data, baselines[s]["outputs"]["checkpoint"], split)
        for (a, s), c in configs.items()
    ]
    for done in ex.parallel(_job, jobs, args.jobs):
        keep(raw_result(done["arm"], done["seed"], split, done["evaluation"], done["train"]))
        acc = done["evaluation"]["stats"]["accuracy"]
        print(f"{done['arm']} seed {done['seed']}: CountBench {acc:.3f}", flush=True)
    atomic_write_json(
        out / "run.json",
        {
            "experiment": name,
            "countbench": args.countbench,
            "command": shlex.join(command[1:]),
            "config": args.config,
            "config_hash": ex.config_hash(cfg, arms),
            "arms_file_sha256": ex.file_sha(ex.ARMS_FILE),
            "arms": arms,
            "seeds": args.seeds,
            "seeds_by_arm": seeds_of,
            **git,
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}",
            "minutes": round((time.perf_counter() - start) / 60, 1),
            "countbench_message": bench["stats"]["message"],
            "data": data_summary(data, configs),
            "cues": cue_rows(data, args.countbench),
            "cue_scenes": cue_scenes(data, args.countbench),
        },
    )
    print(f"wrote {out}; render with: python scripts/render_results.py")


def data_summary(data: dict, configs: dict) -> dict[str, Any]:
    """Counting samples per count as downloaded and as kept by each verification."""
    from countclip.data.lambdas import class_frequencies

    summary: dict[str, Any] = {"downloaded": class_frequencies(data["counting"])}
    for key, manifest in data["verified"].items():
        counter = json.loads(key)["counter"]
        summary[f"kept ({counter})"] = class_frequencies(manifest)
        summary[f"verify ({counter})"] = {
            k: v for k, v in manifest["stats"].items() if not isinstance(v, list)
        }
    return summary


def cue_rows(data: dict, split: str) -> dict[str, float] | None:
    """Cue-only baselines on this CountBench, as the world computed them from its layouts."""
    path = data["world"]["outputs"].get(f"cues_{split}")
    return json.loads(Path(path).read_text()) if path else None


def cue_scenes(data: dict, split: str) -> dict[str, Any] | None:
    """Each cue-only classifier's guess for every image of this CountBench (by ``SAMPLE_ID``):
    what tells the images no single cue gets right."""
    path = data["world"]["outputs"].get("cues")
    return json.loads(Path(path).read_text())["scenes"][split] if path else None


if __name__ == "__main__":
    raise SystemExit(main())
