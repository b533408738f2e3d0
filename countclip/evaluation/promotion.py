"""Model promotion for ``retrain-countclip``: keep a new model only if it counts better on a
frozen promotion set.

Comparing each candidate's own validation score would compare numbers measured on different
data: every retrain downloads new data, so its validation split moves, and a candidate could win
by drawing an easier split. The promotion set is therefore frozen: built once, from the
validation split of the counting data of the first retrain (samples the training loader never
trains on), copied into ``<data_root>/models/promotion-set/`` and recorded by its SHA-256. Every
later candidate — and the promoted model, when the record lacks its score on this exact set — is
scored on those same images with CountBench's rule (nine captions, argmax), balanced over counts.
CountBench itself is never used to decide.

``promoted.json`` names the current model, ``history.json`` records every candidate with its
decision: a scheduled retrain leaves an audit trail.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from countclip.atomic import atomic_path, atomic_write_json
from countclip.training.shard_index import index_shard, is_validation

SET_DIRNAME = "promotion-set"
SET_TAR = "promotion-set.tar"
SET_RECORD = "promotion-set.json"


class PromotionSetError(ValueError):
    """The frozen promotion set is missing, changed on disk, or could not be built."""


def models_dir(data_root: str | Path) -> Path:
    return Path(data_root) / "models"


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def read_promoted(data_root: str | Path) -> dict | None:
    """The currently promoted model record, or None before the first promotion."""
    return _read_json(models_dir(data_root) / "promoted.json")


def read_history(data_root: str | Path) -> list[dict]:
    return _read_json(models_dir(data_root) / "history.json") or []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def freeze_promotion_set(
    counting_shards: Sequence[str],
    data_root: str | Path,
    *,
    val_fraction: float = 0.1,
    max_samples: int = 2000,
) -> dict:
    """The frozen promotion set's record, building it on the first call.

    The set is the training loader's validation split (by SAMPLE_ID, so never trained on) of
    ``counting_shards``, at most ``max_samples`` samples in SAMPLE_ID order. Later calls return
    the stored record after checking the tar still has the recorded hash: new data never
    changes it.
    """
    folder = models_dir(data_root) / SET_DIRNAME
    record = _read_json(folder / SET_RECORD)
    if record is not None:
        tar = folder / SET_TAR
        if not tar.is_file() or _sha256(tar) != record["sha256"]:
            raise PromotionSetError(
                f"{tar}: the frozen promotion set is missing or changed (recorded sha256 "
                f"{record['sha256'][:12]}); restore it, or delete {folder} to freeze a new one "
                "(promotion decisions made on the old set stop being comparable)"
            )
        return record
    refs = [
        ref
        for shard in sorted(set(map(str, counting_shards)))
        for ref in index_shard(shard, "counting")
        if is_validation(ref.sample_id, val_fraction)
    ]
    if not refs:
        raise PromotionSetError(
            f"no validation sample in {len(counting_shards)} counting shard(s): cannot freeze "
            "a promotion set"
        )
    refs = sorted(refs, key=lambda r: (r.sample_id, r.shard, r.key))[:max_samples]
    wanted: dict[str, set[str]] = {}
    for ref in refs:
        wanted.setdefault(ref.shard, set()).add(ref.key)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / SET_TAR) as tmp, tarfile.open(tmp, "w") as out:
        for shard in sorted(wanted):
            with tarfile.open(shard) as src:
                for member in src.getmembers():
                    if member.isfile() and member.name.split(".", 1)[0] in wanted[shard]:
                        out.addfile(member, src.extractfile(member))
    counts: dict[str, int] = {}
    for ref in refs:
        counts[str(ref.count)] = counts.get(str(ref.count), 0) + 1
    record = {
        "sha256": _sha256(folder / SET_TAR),
        "tar": str((folder / SET_TAR).resolve()),
        "samples": len(refs),
        "per_count": dict(sorted(counts.items(), key=lambda kv: int(kv[0]))),
        "frozen_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(folder / SET_RECORD, record)
    return record


def score_on_promotion_set(
    model_name: str,
    checkpoint: str,
    promotion_set: Mapping[str, Any],
    *,
    batch_size: int = 64,
    device: str = "auto",
) -> dict[str, float]:
    """Plain and balanced counting accuracy of ``checkpoint`` on the frozen set."""
    import torch

    from countclip.devices import resolve_device
    from countclip.training.model import load_model
    from countclip.training.shard_index import Samples
    from countclip.training.validation import build_val_loader, validate, validation_scores

    where = resolve_device(device)
    model, preprocess, tokenizer = load_model(model_name, checkpoint, where)
    refs = index_shard(promotion_set["tar"], "counting")
    loader = build_val_loader(
        Samples(train_counting=[], val_counting=refs, common=[]),
        tokenizer,
        preprocess,
        batch_size=batch_size,
    )
    tallies = validate(model, loader, where, contextlib.nullcontext)
    scores = validation_scores(tallies)
    if scores is None:
        raise PromotionSetError(f"{promotion_set['tar']}: no sample to score")
    del model
    if where.type == "cuda":
        torch.cuda.empty_cache()
    return scores


def promote(
    train_manifest: Mapping[str, Any],
    promotion_set: Mapping[str, Any],
    data_root: str | Path,
    *,
    model_name: str,
    run_name: str | None = None,
    countbench_accuracy: float | None = None,
) -> dict[str, Any]:
    """Promote ``train_manifest``'s checkpoint if its balanced accuracy on the frozen set beats
    the promoted model's on the same set; append the candidate to the history either way."""
    checkpoint = (train_manifest.get("outputs") or {}).get("checkpoint")
    if not checkpoint or not Path(checkpoint).is_file():
        raise FileNotFoundError(f"train manifest: checkpoint not found: {checkpoint}")
    score = score_on_promotion_set(model_name, checkpoint, promotion_set)["balanced"]
    current = read_promoted(data_root)
    best = None
    if current is not None:
        if current.get("promotion_set_sha256") == promotion_set["sha256"]:
            best = current["promotion_score"]
        else:  # promoted before this set existed: score it on the same images now
            best = score_on_promotion_set(model_name, current["checkpoint"], promotion_set)[
                "balanced"
            ]
    promoted = best is None or score > best
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run": run_name,
        "train_fingerprint": train_manifest.get("fingerprint"),
        "checkpoint": checkpoint,
        "promotion_set_sha256": promotion_set["sha256"],
        "promotion_score": score,
        "previous_promotion_score": best,
        "countbench_accuracy": countbench_accuracy,  # recorded for the audit trail only
        "promoted": promoted,
    }
    atomic_write_json(models_dir(data_root) / "history.json", [*read_history(data_root), record])
    if promoted:
        atomic_write_json(models_dir(data_root) / "promoted.json", record)
    return record
