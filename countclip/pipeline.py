"""The pipeline, written once: which stage runs after which, on what, with which config.

    world* -> metadata -> captions -> download (counting ∥ common) -> verify -> lambdas
    world* -> pretrain*                                  (* the synthetic world only)
    verify + download (common) + lambdas (+ pretrain) -> train (-> wise_ft, when α is set)
    countbench ∥ everything above; train (or a base model) + countbench -> evaluate -> report
    (the retrain flow ends instead with: train + verify -> promote)

Every way of running CountCLIP goes through the functions here: the Prefect flows (each stage a
cached, retried task), the demo, the experiments and the CLI. They differ only in the *runner*
they pass, which maps a stage name of :data:`STAGES` to something that runs it
(:mod:`countclip.runners`): ``LocalRunner`` calls the stage's ``RUN`` in this process; the
Prefect layer's runner (``countclip_flows.runner``) calls the stage's task, so the same order
becomes a DAG of task runs in the UI. A runner's ``submit`` starts a stage without waiting
for it (Prefect: ``task.submit``), which is how the two downloads and the two demo fine-tunes
overlap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from countclip.config import PipelineConfig, TrainConfig
from countclip.data.download.runner import clear_stop, request_stop, stop_requested
from countclip.runners import NotBuilt, PlanRunner


@dataclass(frozen=True)
class Step:
    """One stage of the pipeline: its name (the module in :mod:`countclip.stages` and in the
    Prefect tasks, whose ``RUN`` and ``PLAN`` a runner calls), the steps whose manifests it
    takes, and the outputs its manifest names."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    synthetic_only: bool = False


WORLD_OUTPUTS = ("metadata", "countbench", "countbench_dev2", "countbench_confirmatory", "cues",
                 "ground_truth", "zero_shot")  # fmt: skip
STAGES: tuple[Step, ...] = (
    Step("world", (), WORLD_OUTPUTS, synthetic_only=True),
    Step("metadata", ("world",), ("candidates", "common")),
    Step("captions", ("metadata",), ("counting", "rejected", "common")),
    Step("download", ("captions",), ("shards", "results")),
    Step("verify", ("download",), ("shards", "results", "decisions")),
    Step("lambdas", ("verify",), ("lambdas", "plot")),
    Step("pretrain", ("world",), ("checkpoint", "metrics"), True),
    Step(
        "train",
        ("verify", "download", "lambdas", "pretrain"),
        ("checkpoint", "last", "metrics", "loss_plot"),
    ),
    Step("wise_ft", ("train", "verify"), ("checkpoint",)),
    Step("countbench", ("world",), ("rows", "shards", "dead_urls")),
    Step("evaluate", ("train", "countbench"), ("results",)),
    Step("promote", ("train", "verify"), ()),
)
"""The stages in the order they run (``world`` and ``pretrain`` only for the synthetic world;
``metadata`` then reads the world's parts, ``countbench`` its CountBench). The ``report`` that
ends the demo is no stage of its own: :func:`countclip.stages.evaluate.run_report` writes it
from the evaluations."""

STAGE_NAMES: tuple[str, ...] = tuple(step.name for step in STAGES)


class Pending(Protocol):
    """A stage started by :meth:`Runner.submit`."""

    def result(self) -> Any: ...


class Runner(Protocol):
    """Runs a stage by name with the ``run_*`` function's arguments (less ``progress``)."""

    def run(self, stage: str, *args: Any, **kwargs: Any) -> Any: ...

    def submit(self, stage: str, *args: Any, **kwargs: Any) -> Pending: ...


def finished_training(cfg: PipelineConfig, label: str = "countclip") -> dict | None:
    """The train manifest ``countclip train`` made with this config, if it and everything it
    was built from are finished; None otherwise. Builds nothing."""
    try:
        return train(cfg.model_copy(deep=True), PlanRunner(), label)
    except NotBuilt:
        return None


# --------------------------------------------------------------------------- the world


@contextlib.contextmanager
def synthetic_world(cfg: PipelineConfig, runner: Runner) -> Iterator[dict | None]:
    """For synthetic configs: serve the world for the block, run its stage, and point ``cfg``
    at it (``metadata.source``; ``evaluate.countbench`` and ``evaluate.zero_shot_datasets``
    unless given). Yields the world manifest, or None for real data (nothing to serve)."""
    if not cfg.synthetic:
        yield None
        return
    from countclip.stages.world import serve_world, world_source, zero_shot_datasets

    with serve_world(cfg.world) as base_url:
        world = runner.run("world", cfg.world, cfg.data_root, base_url)
        cfg.metadata.source = world_source(world)
        if not cfg.evaluate.countbench:
            cfg.evaluate.countbench = world["outputs"]["countbench"]
        if not cfg.evaluate.zero_shot_datasets:
            cfg.evaluate.zero_shot_datasets = zero_shot_datasets(world)
        yield world


# --------------------------------------------------------------------------- the dataset


Select = Callable[[PipelineConfig], tuple[dict, dict]]
"""Another way to compute ``(metadata, captions)``: the Dask flow maps both over the source's
parquet parts; the rest of the order is the same."""


def build_dataset(cfg: PipelineConfig, runner: Runner, select: Select | None = None) -> dict:
    """metadata -> captions -> download (counting ∥ common) -> verify (counting) -> λ; returns
    every manifest by step. ``"verified"`` is the counting set training reads: the downloaded
    samples whose image shows the caption's count (all of them with ``verify.counter: none``).

    ``select`` computes ``(metadata, captions)`` another way (see :data:`Select`).
    """
    root = cfg.data_root
    if select is None:
        metadata = runner.run("metadata", cfg.metadata, root)
        captions = runner.run("captions", metadata, cfg.captions, root)
    else:
        metadata, captions = select(cfg)
    counting_run = runner.submit("download", captions, "counting", cfg.download, root)
    common_run = runner.submit("download", captions, "common", cfg.download, root)
    try:
        counting = counting_run.result()
    except BaseException:
        _stop_and_wait([common_run])  # never leave it downloading from a closing server
        raise
    verified = runner.run("verify", counting, cfg.verify, root)  # while "common" downloads
    common = common_run.result()
    lambdas = runner.run("lambdas", verified, cfg.lambdas, root)
    return {
        "metadata": metadata,
        "captions": captions,
        "counting": counting,
        "verified": verified,
        "common": common,
        "lambdas": lambdas,
    }


def _stop_and_wait(pending: list[Pending]) -> None:
    """Stop the downloads still running (they resume on a rerun) and wait for them to end;
    their own errors (stopped) are not the build's: the caller re-raises its own."""
    ours = stop_requested() is None  # a signal may have asked already: leave that in place
    if ours:
        request_stop("another download of the build failed")
    try:
        for run in pending:
            with contextlib.suppress(BaseException):  # the first failure is the one to raise
                run.result()
    finally:
        if ours:
            clear_stop()


# --------------------------------------------------------------------------- models


def control_config(train: TrainConfig) -> TrainConfig:
    """The same run without the counting loss (L_CLIP only)."""
    return train.model_copy(update={"count_loss": "none"})


def from_checkpoint(train: TrainConfig, checkpoint: str) -> TrainConfig:
    """``train`` starting from ``checkpoint`` (the baseline) instead of its configured weights."""
    return train.model_copy(
        update={"model": train.model.model_copy(update={"pretrained": checkpoint})}
    )


def model_ref(cfg: PipelineConfig, checkpoint: str | None, label: str) -> dict:
    """The ``model_ref`` the evaluate stage takes: ``checkpoint`` if given, else the config's
    base model (``train.model.pretrained``)."""
    return {
        "name": cfg.train.model.name,
        "checkpoint": checkpoint,
        "pretrained": cfg.train.model.pretrained,
        "quick_gelu": cfg.train.model.quick_gelu,
        "label": label,
    }


def fine_tune(
    data: Mapping[str, dict], cfg: TrainConfig, runner: Runner, root: str, label: str
) -> Pending:
    """Start the train stage on a built dataset (the verified counting set, the common set and
    λ); ``.result()`` is its manifest, or with ``cfg.wise_ft_alpha`` (not 1) the wise_ft
    stage's, θ(α). The train stage gets ``cfg`` without α: every α reuses one fine-tune."""
    alpha = cfg.wise_ft_alpha
    plain = cfg.model_copy(update={"wise_ft_alpha": None})
    args = (data["verified"], data["common"], data["lambdas"], plain, root)
    trained = runner.submit("train", *args, label=label)
    if alpha is None or alpha == 1:
        return trained
    wise = ("wise_ft", data["verified"], alpha, root)  # the fine-tune's validation split
    then = lambda: runner.run(wise[0], trained.result(), *wise[1:], label=label)  # noqa: E731
    return SimpleNamespace(result=then)  # a Pending: the interpolation runs when asked


def checkpoint_of(train_manifest: Mapping[str, Any]) -> str | None:
    return (train_manifest.get("outputs") or {}).get("checkpoint")


# --------------------------------------------------------------------------- what users run


def build(cfg: PipelineConfig, runner: Runner, select: Select | None = None) -> dict:
    """``build-count-dataset``: the dataset (on the world, for synthetic configs)."""
    with synthetic_world(cfg, runner):
        return build_dataset(cfg, runner, select)


def train(
    cfg: PipelineConfig, runner: Runner, label: str = "countclip", select: Select | None = None
) -> dict:
    """``train-countclip``: the dataset (cache hits when unchanged), then one fine-tune with
    ``cfg.train`` (``count_loss: none`` is the L_CLIP-only control)."""
    with synthetic_world(cfg, runner):
        data = build_dataset(cfg, runner, select)
        return fine_tune(data, cfg.train, runner, cfg.data_root, label).result()


def evaluate(cfg: PipelineConfig, runner: Runner, checkpoint: str | None, label: str) -> dict:
    """``evaluate-countbench``: CountBench (and the zero-shot check) of ``checkpoint``, or of
    the config's base model when it is None."""
    with synthetic_world(cfg, runner):
        bench = runner.run("countbench", cfg.evaluate, cfg.download, cfg.data_root)
        ref = model_ref(cfg, checkpoint, label)
        return runner.run("evaluate", ref, bench, cfg.evaluate, cfg.data_root)


def retrain(
    cfg: PipelineConfig, runner: Runner, run_name: str | None, select: Select | None = None
) -> dict:
    """``retrain-countclip``: build (incrementally: unchanged stages are cache hits) -> train
    -> evaluate -> promote only if the candidate counts better on the frozen promotion set."""
    root = cfg.data_root
    with synthetic_world(cfg, runner):
        data = build_dataset(cfg, runner, select)
        trained = fine_tune(data, cfg.train, runner, root, "candidate").result()
        bench = runner.run("countbench", cfg.evaluate, cfg.download, root)
        ref = model_ref(cfg, checkpoint_of(trained), "candidate")
        evaluation = runner.run("evaluate", ref, bench, cfg.evaluate, root)
        accuracy = evaluation["stats"]["accuracy"]
        return runner.run(
            "promote", trained, data["verified"], root, cfg.train.model.name, run_name, accuracy
        )


def baseline(cfg: PipelineConfig, runner: Runner) -> dict:
    """``pretrain-baseline``: the synthetic world's baseline CLIP (what ``countclip pretrain``
    exports as the ``synthetic-demo`` weights the demo starts from)."""
    with synthetic_world(cfg, runner) as world:
        if world is None:
            raise ValueError("pretrain: the baseline is pretrained on the synthetic world only")
        return runner.run("pretrain", world, cfg.pretrain, cfg.data_root)


def demo(cfg: PipelineConfig, runner: Runner) -> dict:
    """The whole story on one config: build -> (baseline) -> the L_CLIP-only control and
    CountCLIP from the same start, same data, steps and seed -> CountBench + zero-shot for each
    -> the comparison report. ``cfg.data_root`` must be resolved; returns the report."""
    root = cfg.data_root
    with synthetic_world(cfg, runner) as world:
        # CountBench's images do not depend on the build: fetch them while the build's own
        # downloads wait on timeouts and retry passes. (Pretraining the baseline alongside the
        # build was measured slower on 2 cores: it starves the image server and img2dataset.)
        bench_run = runner.submit("countbench", cfg.evaluate, cfg.download, root)
        data = build_dataset(cfg, runner)
        models: dict[str, str | None] = {}
        train_cfg = cfg.train
        if world is not None and cfg.pretrain.enabled:
            pretrained = runner.run("pretrain", world, cfg.pretrain, root)
            models["baseline"] = checkpoint_of(pretrained)
            train_cfg = from_checkpoint(cfg.train, models["baseline"])
        elif cfg.train.model.pretrained:  # shipped or downloaded weights: the base model
            models["baseline"] = None
        # Both fine-tunes at once, one torch thread each: on 2 cores that is ~1.25x the
        # throughput of running them one after the other with 2 threads (measured).
        one_thread = train_cfg.model_copy(update={"threads": 1})
        arms = {"control": control_config(one_thread), "countclip": one_thread}
        runs = {label: fine_tune(data, arm, runner, root, label) for label, arm in arms.items()}
        for label, run in runs.items():
            models[label] = checkpoint_of(run.result())
        bench = bench_run.result()
        results = {
            label: runner.run(
                "evaluate", model_ref(cfg, checkpoint, label), bench, cfg.evaluate, root
            )
            for label, checkpoint in models.items()
        }
    cues = (world or {}).get("outputs", {}).get("cues")
    return runner.run("report", results, str(Path(root) / "report"), cues, "dev")


# --------------------------------------------------------------------------- the rehearsal


def rehearse(cfg: PipelineConfig, runner: Runner) -> dict:
    """A real config's whole path at toy scale, offline (``cfg`` already pointed at the
    rehearsal world: :func:`countclip.synthetic.rehearsal.rehearsal_world`): the build, the
    config's verify stage on every counting image, one fine-tune, CountBench for the base
    model and the fine-tuned one, the report. Returns the report and each stage's manifest.

    Training reads the counting set as downloaded: the rehearsal's detector has random weights
    and keeps nothing (its decisions are recorded all the same)."""
    root = cfg.data_root
    naive = cfg.model_copy(update={"verify": cfg.verify.model_copy(update={"counter": "none"})})
    bench_run = runner.submit("countbench", cfg.evaluate, cfg.download, root)
    data = build_dataset(naive, runner)
    checked = runner.run("verify", data["counting"], cfg.verify, root)
    trained = fine_tune(data, cfg.train, runner, root, "countclip").result()
    bench = bench_run.result()
    results = {
        label: runner.run("evaluate", model_ref(cfg, checkpoint, label), bench, cfg.evaluate, root)
        for label, checkpoint in (("base", None), ("countclip", checkpoint_of(trained)))
    }
    report = runner.run("report", results, str(Path(root) / "report"), None, "dev")
    return {**data, "checked": checked, "train": trained, "countbench": bench, "report": report}
