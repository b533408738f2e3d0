"""Model promotion for ``retrain-countclip``: keep the new model only if it is better.

The decision uses the *validation* counting accuracy of the training run (model selection never
looks at CountBench). ``<data_root>/models/promoted.json`` names the current model and
``<data_root>/models/history.json`` records every candidate with its decision, so a scheduled
retrain leaves an audit trail.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from countclip.atomic import atomic_write_json


def models_dir(data_root: str) -> Path:
    return Path(data_root) / "models"


def read_promoted(data_root: str) -> dict | None:
    """The currently promoted model record, or None before the first promotion."""
    path = models_dir(data_root) / "promoted.json"
    return json.loads(path.read_text()) if path.exists() else None


def read_history(data_root: str) -> list[dict]:
    path = models_dir(data_root) / "history.json"
    return json.loads(path.read_text()) if path.exists() else []


def _score(manifest: dict) -> float | None:
    value = (manifest.get("stats") or {}).get("best_val_count_acc")
    return None if value is None else float(value)


def promote(
    train_manifest: dict, eval_manifest: dict | None, data_root: str, run_name: str | None = None
) -> dict[str, Any]:
    """Promote ``train_manifest``'s checkpoint if its val counting accuracy beats the current
    promoted model's; append the candidate to the history either way. Returns the record."""
    current = read_promoted(data_root)
    score = _score(train_manifest)
    best = None if current is None else current.get("best_val_count_acc")
    promoted = score is not None and (best is None or score > float(best))
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": run_name,
        "train_fingerprint": train_manifest.get("fingerprint"),
        "checkpoint": (train_manifest.get("outputs") or {}).get("checkpoint"),
        "best_val_count_acc": score,
        "previous_best_val_count_acc": best,
        "countbench_accuracy": ((eval_manifest or {}).get("stats") or {}).get("accuracy"),
        "promoted": promoted,
    }
    atomic_write_json(models_dir(data_root) / "history.json", [*read_history(data_root), record])
    if promoted:
        atomic_write_json(models_dir(data_root) / "promoted.json", record)
    return record
