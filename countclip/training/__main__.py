"""Fine-tune from shards on disk, without the pipeline: ``python -m countclip.training`` or,
for several GPUs, ``torchrun --nproc_per_node 8 -m countclip.training --config configs/x.yaml
--counting <shards> --common <shards> --lambdas lambdas.json --out runs/x``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from countclip.training.distributed import dist_info
from countclip.training.loop import train
from countclip.training.sources import lambdas_of, shards_of
from countclip.yamlconfig import load_config


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m countclip.training`` (or under torchrun): train from shards on disk."""
    parser = argparse.ArgumentParser(
        prog="python -m countclip.training", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", help="PipelineConfig YAML (its 'train' section is used)")
    parser.add_argument("--counting", required=True, help="counting shards: dir, glob or manifest")
    parser.add_argument("--common", required=True, help="common shards: dir, glob or manifest")
    parser.add_argument("--lambdas", help="lambdas.json or the lambda stage manifest.json")
    parser.add_argument("--out", required=True, help="output directory (resumed if it has state)")
    parser.add_argument("--steps", type=int, help="override train.steps")
    parser.add_argument("--pretrained", help="override train.model.pretrained (tag or path)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.pretrained is not None:
        overrides["model"] = {"pretrained": args.pretrained}
    cfg = load_config(args.config, {"train": overrides} if overrides else None).train
    result = train(
        cfg,
        shards_of(args.counting),
        shards_of(args.common),
        lambdas_of(args.lambdas),
        args.out,
        show_progress=not args.no_progress,
    )
    if dist_info()[0] == 0:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
