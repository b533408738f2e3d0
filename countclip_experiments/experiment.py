"""The counting experiment, shared by the benchmark (:mod:`countclip_experiments.counting`) and
the tuning script (:mod:`countclip_experiments.tuning`): build the data once, pretrain one
baseline per seed, fine-tune every arm from it, and evaluate.

An *arm* is a named set of config overrides (``countclip_experiments/arms.yaml``) deep-merged
over the experiment's config: ``countclip`` is the config's own recipe, ``control`` the L_CLIP-only
control, and so on. Every stage runs through :mod:`countclip.pipeline` and a runner (a
:class:`~countclip.runners.LocalRunner` unless given), so every step is cached under the data
root with the same fingerprints as the flows (an interrupted run resumes).

Seeds vary both the baseline's pretraining and the fine-tuning: seed s pretrains baseline s and
fine-tunes every arm from it with seed s, so the spread over seeds covers both.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import subprocess
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from countclip import pipeline
from countclip.config import PipelineConfig, VerifyConfig
from countclip.fingerprints import fingerprint
from countclip.pipeline import Runner
from countclip.runners import LocalRunner
from countclip.yamlconfig import deep_merge

REPO = Path(__file__).resolve().parents[1]
ARMS_FILE = Path(__file__).resolve().with_name("arms.yaml")
COUNTBENCHES = ("dev", "dev2", "confirmatory")
"""dev and dev2 are development sets; confirmatory is read once per registered recipe family
(:mod:`countclip_experiments.ledger`)."""


def load_arms(path: Path = ARMS_FILE) -> dict[str, dict]:
    """``{arm: overrides}`` from the arms file (a plain mapping of partial configs)."""
    arms = yaml.safe_load(path.read_text()) or {}
    if not isinstance(arms, dict) or not all(isinstance(v, dict) for v in arms.values()):
        raise SystemExit(f"{path}: expected a mapping of arm name -> config overrides")
    return arms


def check_arms(names: Iterable[str], arms: Mapping[str, dict]) -> list[str]:
    """``names`` if every one is an arm, else exit naming the unknown ones."""
    names = list(names)
    unknown = sorted(set(names) - set(arms))
    if unknown:
        raise SystemExit(f"--arms: unknown {unknown}; the arms file defines {sorted(arms)}")
    return names


def arm_config(cfg: PipelineConfig, overrides: Mapping[str, Any], seed: int) -> PipelineConfig:
    """The experiment config with one arm's overrides, for seed ``seed`` (pretraining and
    fine-tuning)."""
    data = deep_merge(cfg.model_dump(mode="json"), dict(overrides))
    arm = PipelineConfig.model_validate(data)
    arm.pretrain.seed = seed
    arm.train.seed = seed
    return arm


# --------------------------------------------------------------------------- provenance


def git_state(repo: Path = REPO) -> dict[str, Any]:
    """The commit and whether the working tree has uncommitted changes (tracked files; the
    confirmatory guard, :mod:`countclip_experiments.ledger`, refuses untracked ones too)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": True}
    return {"commit": commit, "dirty": dirty}


def config_hash(cfg: PipelineConfig, arms: Mapping[str, dict]) -> str:
    """What the recipe is: the semantic config and the arms, as one digest."""
    return fingerprint("experiment", cfg, dict(arms), length=16)


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# --------------------------------------------------------------------------- data


def _verify_key(verify: VerifyConfig) -> str:
    return json.dumps(verify.model_dump(mode="json"), sort_keys=True)


def build_data(
    cfg: PipelineConfig,
    verify_configs: Iterable[Any],
    runner: Runner | None = None,
    splits: Iterable[str] = COUNTBENCHES,
) -> dict[str, Any]:
    """World -> the pipeline's dataset (:func:`countclip.pipeline.build_dataset`) ->
    verification(s) -> the CountBenches of ``splits`` (none for tuning: a CountBench that is
    not needed is not even downloaded).

    Returns the world manifest, the counting and common downloads, one verified counting set per
    distinct verify config (keyed by its JSON, in the order given), and the CountBench stage per
    split. ``cfg`` itself is left as given (the pipeline points a copy at the world), so the
    experiment's config hash is the config's.
    """
    splits = list(splits)
    unknown = sorted(set(splits) - set(COUNTBENCHES))
    if unknown:
        raise ValueError(f"CountBench splits {unknown}: expected some of {COUNTBENCHES}")
    runner = runner or LocalRunner()
    root = cfg.data_root
    built = cfg.model_copy(deep=True)
    with pipeline.synthetic_world(built, runner) as world:
        if world is None:
            raise SystemExit(f"{cfg.name}: the counting experiment runs on the synthetic world")
        dataset = pipeline.build_dataset(built, runner)
        benches = {}
        for split in splits:
            path = world["outputs"].get(countbench_output(split))
            if path:
                bench_cfg = cfg.evaluate.model_copy(update={"countbench": path})
                benches[split] = runner.run("countbench", bench_cfg, cfg.download, root)
    counting = dataset["counting"]
    built_key = _verify_key(built.verify)
    verified: dict[str, dict] = {}
    for verify in verify_configs:
        key = _verify_key(verify)
        if key not in verified:
            verified[key] = (
                dataset["verified"]
                if key == built_key
                else runner.run("verify", counting, verify, root)
            )
    return {
        "world": world,
        "counting": counting,
        "common": dataset["common"],
        "verified": verified,
        "countbench": benches,
    }


def countbench_output(split: str) -> str:
    """The world manifest's output naming the CountBench of ``split``."""
    from countclip.synthetic.world_files import countbench_output as of_world

    return of_world(split)  # type: ignore[arg-type]


def verified_for(data: Mapping[str, Any], cfg: PipelineConfig) -> dict:
    return data["verified"][_verify_key(cfg.verify)]


def baseline(data: Mapping[str, Any], cfg: PipelineConfig, runner: Runner | None = None) -> dict:
    """The baseline pretrained with ``cfg.pretrain`` (its seed is the run's seed)."""
    return (runner or LocalRunner()).run("pretrain", data["world"], cfg.pretrain, cfg.data_root)


# --------------------------------------------------------------------------- one arm


def fine_tune(
    data: Mapping[str, Any],
    cfg: PipelineConfig,
    baseline_checkpoint: str,
    runner: Runner | None = None,
    label: str = "train",
) -> dict[str, Any]:
    """λ for the arm's scheme, then the fine-tune from the baseline (one torch thread): the
    train manifest, or with ``train.wise_ft_alpha`` the wise_ft manifest of that fine-tune."""
    runner = runner or LocalRunner()
    counting = verified_for(data, cfg)
    train = pipeline.from_checkpoint(cfg.train, baseline_checkpoint)
    train = train.model_copy(update={"threads": 1})
    lambdas = None
    if train.count_loss != "none":
        lambdas = runner.run("lambdas", counting, cfg.lambdas, cfg.data_root)
    dataset = {"verified": counting, "common": data["common"], "lambdas": lambdas}
    return pipeline.fine_tune(dataset, train, runner, cfg.data_root, label).result()


def wise_ft(
    data: Mapping[str, Any],
    cfg: PipelineConfig,
    train_manifest: Mapping[str, Any],
    alpha: float,
    runner: Runner | None = None,
    label: str = "train",
) -> dict[str, Any]:
    """WiSE-FT of a finished fine-tune of this arm at ``alpha`` (the wise_ft stage, cached):
    its manifest (``outputs.checkpoint`` is θ(α); ``stats`` its counting validation scores)."""
    counting = verified_for(data, cfg)  # the validation split the fine-tune selected on
    args = (train_manifest, counting, alpha, cfg.data_root)
    return (runner or LocalRunner()).run("wise_ft", *args, label=label)


def evaluate(
    cfg: PipelineConfig,
    bench: Mapping[str, Any],
    label: str,
    checkpoint: str,
    split: str,
    runner: Runner | None = None,
) -> dict[str, Any]:
    """CountBench (``bench``) and the zero-shot check (``split`` of the world's sets). The
    model is the checkpoint alone (no ``pretrained`` fallback: :func:`pipeline.model_ref` would
    add the config's base model to the evaluation's results.json)."""
    ref = {"name": cfg.train.model.name, "checkpoint": checkpoint, "label": label}
    eval_cfg = cfg.evaluate.model_copy(update={"zero_shot_split": split})
    return (runner or LocalRunner()).run("evaluate", ref, bench, eval_cfg, cfg.data_root)


def zero_shot_datasets(data: Mapping[str, Any]) -> dict[str, str]:
    from countclip.stages.world import zero_shot_datasets as of_world

    return of_world(data["world"])


def parallel(fn: Callable[[Any], Any], jobs: list[Any], workers: int) -> Iterable[Any]:
    """``fn`` over ``jobs`` in ``workers`` spawned processes (1 torch thread each); results come
    back in job order."""
    if workers <= 1:
        yield from map(fn, jobs)
        return
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    try:
        yield from pool.map(fn, jobs)
    except BaseException:
        # A stop (SIGTERM made SystemExit, Ctrl-C, a failed job, a closed generator) must not
        # wait for the running jobs, which can be fine-tunes of many minutes: the executor's
        # own exit would. Their work is checkpointed, so a resumed run continues it.
        stop_workers(pool)
        raise
    pool.shutdown()


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate ``pool``'s workers and cancel what has not started. Python 3.14 has
    ``terminate_workers``; before it, the executor's worker table is the only handle."""
    if terminate := getattr(pool, "terminate_workers", None):
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def one_thread() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
