"""Tune on the *validation* data only — neither CountBench is read here.

Each arm (``countclip_experiments/arms.yaml``, plus ``--set`` overrides for the whole run)
fine-tunes from the seed's baseline and reports what model selection sees: balanced accuracy
(mean per-count recall) on the counting validation split at the selected step and at the last
step, the per-count recall at the last step, and zero-shot accuracy per task on the *validation*
split of the world's zero-shot sets (scenes the reported check never uses). A tuning step is one
command that can be pasted into a config comment:

    .venv/bin/python -m countclip_experiments.tuning --config configs/bench-counting.yaml \\
        --arms control countclip --set train.steps=800 --set train.counting_fraction=0.35 \\
        --record steps-800 --note "what the runs are for"

``--record`` keeps the runs as raw results (``results/validation/NAME.json``, see
:mod:`countclip_experiments.records`); docs/results.md renders its validation table from them.
Stages are cached under the data root, shared with the benchmark when the roots agree.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from countclip.offline import apply_offline_env
from countclip.yamlconfig import deep_merge, load_config
from countclip_experiments import experiment as ex
from countclip_experiments.records import record_path, record_run, write_record
from countclip_flows.cli import parse_set


def _job(args: tuple) -> list[dict]:
    """One arm's fine-tune and its record row; with ``alphas``, the plain fine-tune (whatever
    α the arm sets) and then one WiSE-FT row per α, each from the same fine-tune."""
    arm, _seed, cfg_json, data, baseline_checkpoint, alphas = args
    ex.one_thread()
    from countclip.config import PipelineConfig

    cfg = PipelineConfig.model_validate(cfg_json)
    if alphas:
        cfg.train.wise_ft_alpha = None
    done = ex.fine_tune(data, cfg, baseline_checkpoint, label=arm)
    rows = [{"arm": arm, **record_run(done["directory"]), "seconds": done["seconds"]}]
    for alpha in alphas:
        wise = ex.wise_ft(data, cfg, done, alpha, label=arm)
        rows.append({"arm": arm, **record_run(wise["directory"]), "seconds": wise["seconds"]})
    return rows


def _line(run: dict) -> str:
    zs = ", ".join(f"{t} {100 * v:.1f}" for t, v in run["zero_shot_val"].items())
    if run.get("wise_ft_alpha") is not None:
        return (
            f"{run['arm']:24s} seed {run['seed']}: WiSE-FT α {run['wise_ft_alpha']:g}: balanced "
            f"val {run['val_balanced_wise_ft']:.3f}; zero-shot val {zs}; per-count "
            f"{run['val_per_count_wise_ft']}"
        )
    return (
        f"{run['arm']:24s} seed {run['seed']}: balanced val best "
        f"{run['val_balanced_best']:.3f} @ {run['best_step']}, last "
        f"{run['val_balanced_last']:.3f}; zero-shot val {zs}; "
        f"last per-count {run['val_per_count_last']}; {run['seconds']:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m countclip_experiments.tuning", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config", default="configs/bench-counting.yaml")
    parser.add_argument("--data-root", default=None, help="default: the config's data_root")
    parser.add_argument("--set", action="append", default=[], help="dotted.key=yaml_value")
    parser.add_argument("--arms", nargs="+", default=["control", "countclip"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--wise-ft-alphas",
        type=float,
        nargs="+",
        default=[],
        metavar="ALPHA",
        help="also WiSE-FT every arm's fine-tune at these α (0..1; 1 is the fine-tune itself, "
        "recorded anyway): interpolation and validation only, no retraining",
    )
    parser.add_argument(
        "--record",
        metavar="NAME",
        help="also write the runs to results/validation/NAME.json (docs/results.md renders it)",
    )
    parser.add_argument("--note", default="", help="with --record: what the runs were for")
    args = parser.parse_args(argv)
    if args.record and record_path(args.record).exists():  # before the runs, not after
        parser.error(f"{record_path(args.record)} exists; choose another --record")
    if any(not 0 <= a <= 1 for a in args.wise_ft_alphas):
        parser.error("--wise-ft-alphas: every α must be in [0, 1]")
    alphas = sorted({a for a in args.wise_ft_alphas if a != 1})
    apply_offline_env()
    start = time.perf_counter()
    overrides: dict = {"data_root": args.data_root} if args.data_root else {}
    cfg = load_config(args.config, deep_merge(overrides, parse_set(args.set)))
    cfg.data_root = str(Path(cfg.data_root).resolve())
    arms_all = ex.load_arms()
    names = ex.check_arms(args.arms, arms_all)
    configs = {(a, s): ex.arm_config(cfg, arms_all[a], s) for a in names for s in args.seeds}
    data = ex.build_data(cfg, [c.verify for c in configs.values()], splits=())  # no CountBench
    baselines = {s: ex.baseline(data, ex.arm_config(cfg, {}, s)) for s in args.seeds}
    jobs = [
        (a, s, c.model_dump(mode="json"), data, baselines[s]["outputs"]["checkpoint"], alphas)
        for (a, s), c in configs.items()
    ]
    runs = []
    for rows in ex.parallel(_job, jobs, args.jobs):
        for done in rows:
            runs.append({k: v for k, v in done.items() if k != "seconds"})
            print(_line(done), flush=True)
    if args.record:
        command = "python -m countclip_experiments.tuning " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        print(f"wrote {write_record(args.record, args.note, runs, command)}")
    print(f"total {(time.perf_counter() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
