"""What a tuning run showed, as a raw record that docs/results.md renders from.

Tuning looks at validation data only (the counting validation split and the zero-shot
validation scenes), and its numbers choose recipes, so they are results too: a record is built
from a finished fine-tune's own stage directory — its manifest (settings, fingerprints), its
``metrics.jsonl`` (the validation curve) and its selected checkpoint, scored on the zero-shot
sets' *validation* split of the world its baseline was pretrained on. Nothing is copied from a
log. ``python -m countclip_experiments.tuning --record NAME`` writes one per tuning command; a
fine-tune made earlier is recorded from its directory:

    .venv/bin/python -m countclip_experiments.records --name r3-steps \\
        --note "1400 steps for both arms" data/bench-counting/train/<fingerprint> ...
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from countclip.atomic import atomic_write_json
from countclip.stages.base import MANIFEST_NAME, read_manifest

REPO = Path(__file__).resolve().parents[1]
VALIDATION = REPO / "results" / "validation"
LOCK_FIELDS = ("lock_image", "lock_image_unlocked_groups", "lock_text", "lock_text_unlocked_layers")
"""The model settings that say which parts of the towers a fine-tune trained."""


def record_path(name: str, root: Path = VALIDATION) -> Path:
    """Where the record ``name`` lives: ``results/validation/<name>.json``."""
    return root / f"{name}.json"


def _manifest(stage_dir: Path) -> dict[str, Any]:
    manifest = read_manifest(stage_dir)
    if manifest is None:
        raise FileNotFoundError(
            f"{stage_dir / MANIFEST_NAME}: not a finished stage (no readable {MANIFEST_NAME})"
        )
    return manifest


def _upstream(data_root: Path, stage: str, key: str | None) -> dict[str, Any] | None:
    return _manifest(data_root / stage / key) if key else None


def _baseline(data_root: Path, train: dict[str, Any]) -> dict[str, Any]:
    """The manifest of the pretrain stage the fine-tune started from."""
    pretrained = Path(str(train["config"]["model"]["pretrained"]))  # <fp>/run/last.pt
    pretrain_dir = pretrained.parent.parent
    if pretrain_dir.parent != data_root / "pretrain":
        raise ValueError(
            f"{train['directory']}: model.pretrained {str(pretrained)!r} is not a baseline "
            f"pretrained under {data_root}, so there is no synthetic world to take zero-shot "
            "validation scenes from"
        )
    return _manifest(pretrain_dir)


def _zero_shot_sets(data_root: Path, baseline: dict[str, Any]) -> dict[str, str]:
    """The zero-shot sets of the world the run's baseline was pretrained on."""
    from countclip.stages.world import zero_shot_datasets

    return zero_shot_datasets(_upstream(data_root, "world", baseline["inputs"]["world"]))


def record_run(stage_dir: str | Path) -> dict[str, Any]:
    """One fine-tune's settings, validation curve and zero-shot validation accuracy.

    ``stage_dir`` is a finished train stage, or a finished wise_ft stage (WiSE-FT of a
    fine-tune): then the row is the fine-tune's, plus ``wise_ft_alpha``, the interpolated
    model's counting validation scores (``val_balanced_wise_ft``, ``val_per_count_wise_ft``)
    and its zero-shot validation accuracy in ``zero_shot_val``. A plain fine-tune's row has
    ``wise_ft_alpha`` None."""
    from countclip.config import ModelConfig
    from countclip.evaluation.zeroshot import zero_shot_eval
    from countclip.training.model import load_model, uses_quick_gelu

    stage_dir = Path(stage_dir).resolve()
    data_root = stage_dir.parents[1]
    wise = None
    train = _manifest(stage_dir)
    if train.get("stage") == "wise_ft":
        wise, train = train, _upstream(data_root, "train", train["inputs"]["train"])
    cfg = train["config"]
    baseline = _baseline(data_root, train)
    lambdas = _upstream(data_root, "lambdas", train["inputs"].get("lambdas"))
    verify = _upstream(data_root, "verify", train["inputs"]["counting"])
    curve = [
        json.loads(line)
        for line in Path(train["outputs"]["metrics"]).read_text().splitlines()
        if '"val_count_balanced_acc"' in line
    ]
    if not curve:
        raise ValueError(f"{train['outputs']['metrics']}: no validation rows")
    best = max(curve, key=lambda r: r["val_count_balanced_acc"])
    scored = (wise or train)["outputs"]["checkpoint"]
    quick_gelu = uses_quick_gelu(ModelConfig.model_validate(cfg["model"]))  # as it started
    model, preprocess, tokenizer = load_model(cfg["model"]["name"], scored, quick_gelu=quick_gelu)
    zero_shot = zero_shot_eval(
        model, preprocess, tokenizer, _zero_shot_sets(data_root, baseline), split="validation"
    )
    return {
        "train_fingerprint": train["fingerprint"],
        "code_version": train["code_version"],
        "baseline": baseline["fingerprint"],
        "baseline_steps": baseline["config"]["steps"],
        "seed": cfg["seed"],
        "steps": cfg["steps"],
        "lr": cfg["lr"],
        "counting_fraction": cfg["counting_fraction"],
        "count_loss": cfg["count_loss"],
        "lambda0": lambdas["config"]["lambda0"] if lambdas else None,
        "lambda_scheme": lambdas["config"]["scheme"] if lambdas else None,
        "counter": verify["config"]["counter"] if verify else None,
        "counting_set": train["inputs"]["counting"],
        **{field: cfg["model"].get(field) for field in LOCK_FIELDS},
        "val_balanced_last": curve[-1]["val_count_balanced_acc"],
        "val_balanced_best": best["val_count_balanced_acc"],
        "best_step": best["step"],
        "val_per_count_last": curve[-1].get("val_per_count"),
        "val_per_count_best": best.get("val_per_count"),
        "wise_ft_alpha": wise["stats"]["alpha"] if wise else None,
        "wise_ft_fingerprint": wise["fingerprint"] if wise else None,
        "val_balanced_wise_ft": wise["stats"]["val_count_balanced_acc"] if wise else None,
        "val_per_count_wise_ft": wise["stats"]["val_per_count"] if wise else None,
        "zero_shot_val": {task: r["accuracy"] for task, r in zero_shot.items()},
    }


def write_record(
    name: str, note: str, runs: Iterable[dict[str, Any]], command: str, root: Path = VALIDATION
) -> Path:
    """``results/validation/<name>.json``, written atomically; an existing record is kept."""
    path = record_path(name, root)
    if path.exists():
        raise FileExistsError(f"{path}: a record of this name exists; choose another --name")
    return atomic_write_json(
        path, {"name": name, "note": note, "command": command, "runs": list(runs)}
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m countclip_experiments.records", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--name", required=True, help="the record's file name, no extension")
    parser.add_argument("--note", default="", help="what the runs were for, one line")
    parser.add_argument(
        "train_dirs",
        nargs="+",
        help="finished fine-tunes (<data_root>/train/<fp>) or WiSE-FTs (<data_root>/wise_ft/<fp>)",
    )
    args = parser.parse_args(argv)
    from countclip.offline import apply_offline_env

    apply_offline_env()
    runs = [record_run(d) for d in args.train_dirs]
    command = "python -m countclip_experiments.records " + " ".join(
        Path(d).name for d in args.train_dirs
    )
    print(f"wrote {write_record(args.name, args.note, runs, command)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
