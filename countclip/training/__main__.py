"""Fine-tune from shards on disk, without the pipeline's bookkeeping.

    python -m countclip.training --config configs/paper-gpu.yaml \\
        --counting data/x/verify/<fp>/manifest.json \\
        --common data/x/download-common/<fp>/manifest.json \\
        --lambdas data/x/lambdas/<fp>/manifest.json --out runs/x
    torchrun --nproc_per_node 8 -m countclip.training --config ... (the same arguments)
    python -m countclip.training --job runs/x/launch.json   # a job the train stage wrote

The pipeline's own way to train on GPUs is ``countclip train --gpus 8`` (the train stage
launches torchrun itself, from the finished build: docs/real-data.md).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from countclip.training.distributed import dist_info
from countclip.training.launch import read_job
from countclip.training.loop import train
from countclip.training.sources import lambdas_of, shards_of
from countclip.yamlconfig import load_config


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m countclip.training`` (or under torchrun): train from shards on disk."""
    parser = argparse.ArgumentParser(
        prog="python -m countclip.training", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--job", help="a launch.json the train stage wrote (all else ignored)")
    parser.add_argument("--config", help="PipelineConfig YAML (its 'train' section is used)")
    parser.add_argument("--counting", help="counting shards: dir, glob or stage manifest.json")
    parser.add_argument("--common", help="common shards: dir, glob or stage manifest.json")
    parser.add_argument("--lambdas", help="lambdas.json or the lambda stage manifest.json")
    parser.add_argument("--out", help="output directory (resumed if it has state)")
    parser.add_argument("--steps", type=int, help="override train.steps")
    parser.add_argument("--pretrained", help="override train.model.pretrained (tag or path)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.job:
        job = read_job(args.job)
    else:
        missing = [f"--{n}" for n in ("counting", "common", "out") if not getattr(args, n)]
        if missing:
            parser.error(f"{', '.join(missing)} required (or --job)")
        overrides: dict[str, Any] = {}
        if args.steps is not None:
            overrides["steps"] = args.steps
        if args.pretrained is not None:
            overrides["model"] = {"pretrained": args.pretrained}
        job = {
            "cfg": load_config(args.config, {"train": overrides} if overrides else None).train,
            "counting_shards": shards_of(args.counting),
            "common_shards": shards_of(args.common),
            "lambdas": lambdas_of(args.lambdas),
            "out_dir": args.out,
        }
    result = train(**job, show_progress=not args.no_progress)
    if dist_info()[0] == 0:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
