"""``countclip``: run the pipeline's flows locally, without a Prefect server or deployment.

Each subcommand loads a YAML config (partial, merged over the defaults), applies ``--set``
overrides and runs one flow in this process. With no ``PREFECT_API_URL`` a temporary local
Prefect server records the run, its task runs and artifacts; it dies with this process, even
on ``kill -9`` (:mod:`countclip_flows.prefect_server`). SIGTERM or SIGINT ends the run within
seconds with exit status 128 + the signal number, leaving what a rerun resumes
(:mod:`countclip_flows.interrupts`).

Prefect is imported lazily inside the commands: ``countclip/`` is the plain library layer, and
``countclip --help`` should not pay Prefect's import time.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from countclip.config import PipelineConfig
from countclip.yamlconfig import ConfigError, load_config

EPILOG = """\
examples:
  countclip build --config configs/synthetic-small.yaml --data-root /tmp/cc
  countclip build --config configs/laion400m.yaml --set download.processes_count=16
  countclip train --config configs/tiny-cpu.yaml --set train.steps=200 --set train.lr=1e-4
  countclip train --config configs/laion400m.yaml --gpus 8
  countclip evaluate --config configs/tiny-cpu.yaml      # what `countclip train` made
  countclip evaluate --config configs/tiny-cpu.yaml --checkpoint data/train/<fp>/best.pt
  countclip rehearse --config configs/laion400m.yaml     # offline, minutes, before a GPU day
  countclip demo --config configs/demo.yaml

Stage outputs land under the data root in directories named by a fingerprint of their inputs
and config; rerunning with the same settings is a cache hit for every stage.
"""


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["train.steps=200", "synthetic=false"]`` -> nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            problem = str(exc).splitlines()[0]
            raise ConfigError(f"--set {item!r}: the value is not YAML ({problem})") from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is already set to a value")
        node[parts[-1]] = value
    return out


def _common(parser: argparse.ArgumentParser, runner: bool = True) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="YAML",
        help="pipeline config (partial YAML over the defaults), e.g. "
        "configs/synthetic-small.yaml; omitted = built-in defaults",
    )
    parser.add_argument(
        "--data-root",
        metavar="PATH",
        help="where stage outputs and the task cache go (overrides the "
        "config's data_root; local path or fsspec URL)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config field by dotted path, value parsed as "
        "YAML (repeatable), e.g. --set captions.batch_size=500",
    )
    if runner:
        parser.add_argument(
            "--runner",
            choices=["default", "dask"],
            default="default",
            help="task runner for the caption stage: 'dask' maps it over the "
            "source's parquet parts on a local Dask cluster "
            "(default: %(default)s)",
        )
    parser.add_argument(
        "--json", action="store_true", help="print the flow's result as JSON on stdout"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="countclip",
        description="Teach CLIP to count: run the CountCLIP Prefect flows locally.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    build = sub.add_parser(
        "build",
        help="build-count-dataset: metadata -> captions -> download -> λ",
        description="Run the build-count-dataset flow.",
    )
    _common(build)

    train = sub.add_parser(
        "train",
        help="train-countclip: build (cached) then fine-tune",
        description="Run the train-countclip flow.",
    )
    _common(train)
    train.add_argument(
        "--label",
        default="countclip",
        help="name of this model in artifacts (default: %(default)s)",
    )
    train.add_argument(
        "--gpus",
        type=int,
        metavar="N",
        help="train on N GPUs of this node: the train stage runs the loop under torchrun "
        "(DDP), one process per GPU (sets train.processes)",
    )

    evaluate = sub.add_parser(
        "evaluate",
        help="evaluate-countbench: CountBench accuracy",
        description="Run the evaluate-countbench flow.",
    )
    _common(evaluate, runner=False)
    evaluate.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="checkpoint to evaluate (default: the one `countclip train` made with this "
        "config, else the promoted model, else the config's base model)",
    )
    evaluate.add_argument("--label", help="name of the model in the report/artifacts")

    pretrain = sub.add_parser(
        "pretrain",
        help="pretrain-baseline: the synthetic world's baseline CLIP; --export writes it as "
        "the shipped synthetic-demo weights",
        description="Run the pretrain-baseline flow (world -> L_CLIP-only pretraining).",
    )
    _common(pretrain, runner=False)
    pretrain.add_argument(
        "--export",
        nargs="?",
        const="",
        metavar="DIR",
        help="write the baseline as the shipped countclip-tiny 'synthetic-demo' weights (fp16, "
        "with its provenance) into DIR (default: the package's training/weights folder)",
    )

    rehearse = sub.add_parser(
        "rehearse",
        help="rehearse: your real config's whole path at toy scale, offline, in minutes",
        description="Run the rehearse flow: every stage of the config on a toy offline copy of "
        "the real world (loopback parquet and photographs, random detector and model weights); "
        "the substitutions are printed.",
    )
    _common(rehearse, runner=False)

    demo = sub.add_parser(
        "demo",
        help="demo: world -> build -> baseline, control, CountCLIP -> CountBench report",
        description="Run the demo flow.",
    )
    _common(demo, runner=False)
    return parser


def _config(args: argparse.Namespace) -> PipelineConfig:
    overrides = parse_set(args.overrides)
    if getattr(args, "gpus", None):
        overrides.setdefault("train", {})["processes"] = args.gpus
    return load_config(args.config, overrides)


def run(args: argparse.Namespace, cfg: PipelineConfig | None = None) -> Any:
    """Run the flow named by ``args.command``; returns its result."""
    from countclip.offline import apply_offline_env

    cfg = cfg or _config(args)
    apply_offline_env(online=not cfg.synthetic and args.command != "rehearse")
    if args.command == "build":
        from countclip_flows.build_count_dataset import build_count_dataset

        return build_count_dataset(cfg=cfg, data_root=args.data_root, runner=args.runner)
    if args.command == "train":
        from countclip_flows.train_countclip import train_countclip

        return train_countclip(
            cfg=cfg, data_root=args.data_root, label=args.label, runner=args.runner
        )
    if args.command == "evaluate":
        from countclip_flows.evaluate_countbench import evaluate_countbench

        return evaluate_countbench(
            cfg=cfg, data_root=args.data_root, checkpoint=args.checkpoint, label=args.label
        )
    if args.command == "pretrain":
        from countclip_flows.pretrain_baseline import pretrain_baseline

        manifest = pretrain_baseline(cfg=cfg, data_root=args.data_root)
        if args.export is not None:
            _export(manifest, cfg, args)
        return manifest
    if args.command == "rehearse":
        from countclip.synthetic.rehearsal import SUBSTITUTIONS
        from countclip_flows.rehearse import rehearse

        for number, substitution in enumerate(SUBSTITUTIONS, 1):  # what is not the real thing
            print(f"substitution {number}: {substitution}", file=sys.stderr)
        return rehearse(cfg=cfg, data_root=args.data_root)
    if args.command == "demo":
        from countclip_flows.demo import demo

        return demo(cfg=cfg, data_root=args.data_root)
    raise AssertionError(args.command)


def _export(manifest: dict, cfg: PipelineConfig, args: argparse.Namespace) -> None:
    """The pretrained baseline as the shipped ``synthetic-demo`` tag (fp16 + provenance)."""
    import subprocess

    from countclip.training.shipped import export

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    made_from = {
        "config": args.config,
        "world": cfg.world.model_dump(mode="json"),
        "pretrain": cfg.pretrain.model_dump(mode="json"),
        "stage": manifest["fingerprint"],
        "commit": commit or None,
    }
    out = Path(args.export) if args.export else None
    path = export(manifest["outputs"]["checkpoint"], cfg.pretrain.model.name, "synthetic-demo",
                  made_from, out)  # fmt: skip
    print(f"exported {path}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from countclip_flows.interrupts import stop_on_signals

    with stop_on_signals() as stop:
        log: Path | None = None
        try:
            cfg = _config(args)  # a bad config fails before any server starts
            from countclip.offline import apply_offline_env
            from countclip.preflight import PreflightError, preflight

            # before the server: no telemetry; a rehearsal reaches nothing outside this machine
            apply_offline_env(online=not cfg.synthetic and args.command != "rehearse")
            try:
                preflight(cfg, args.command)  # a missing resource fails now, not in hours
            except PreflightError as exc:
                raise ConfigError(str(exc)) from None
            from countclip_flows.console import log_path, tracebacks_to
            from countclip_flows.prefect_server import prefect_api

            log = log_path(cfg.data_root, args.command)
            with tracebacks_to(log), prefect_api():
                result = run(args, cfg)
        except ConfigError as exc:
            print(f"countclip: {exc}", file=sys.stderr)
            return 2
        except BaseException as exc:  # Interrupted, Prefect's TerminationSignal, DownloadStopped
            if stop.signum is not None:
                print(
                    f"countclip: stopped by {signal.Signals(stop.signum).name}; finished stages "
                    "and shards are kept: rerun the same command to resume",
                    file=sys.stderr,
                )
                return 128 + stop.signum
            if not isinstance(exc, Exception):
                raise
            from countclip_flows.console import failure_line, log_path, write_traceback

            log = log or log_path(getattr(args, "data_root", None) or ".", args.command)
            write_traceback(exc, log)
            print(failure_line(args.command, exc, log), file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
