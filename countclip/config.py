"""Pydantic models for every stage, and YAML loading with deep merges.

Every stage function takes its own config model; flows take :class:`PipelineConfig` (or a part of
it) as a parameter, which Prefect renders as a form in the UI. YAML files in ``configs/`` are
partial: they are deep-merged over the defaults below, then validated, so a typo in a key is an
error that names the key (``extra="forbid"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

COUNTS: tuple[int, ...] = tuple(range(2, 11))
"""The counts the method teaches (the paper's scope: two..ten)."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class WorldConfig(StrictModel):
    """The synthetic LAION world: metadata generator, image renderer, loopback server."""

    seed: int = 0
    rows: int = Field(20_000, ge=1, description="metadata rows to generate")
    parts: int = Field(1, ge=1, description="parquet files the rows are split over")
    counting_fraction: float = Field(0.05, ge=0, le=1, description="captions stating a count")
    distractor_fraction: float = Field(
        0.03, ge=0, le=1, description="captions with a number word that is not a count"
    )
    count_distribution: dict[int, float] = Field(
        default_factory=lambda: {
            2: 0.65,
            3: 0.20,
            4: 0.08,
            5: 0.03,
            6: 0.016,
            7: 0.008,
            8: 0.006,
            9: 0.005,
            10: 0.005,
        },
        description="share of each count among counting captions (LAION-like skew)",
    )
    image_size: int = Field(224, ge=16, description="HEIGHT/WIDTH the renderer draws at")
    misbehave_fraction: float = Field(
        0.02, ge=0, le=1, description="share of ids the server answers badly (404, 500, ...)"
    )
    slow_seconds: float = Field(5.0, ge=0, description="delay of the 'slow' misbehaviour")
    countbench_per_count: int = Field(60, ge=1)
    port: int = Field(
        0, ge=0, le=65535, description="loopback image server port (0 = a random free port)"
    )
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality the server sends")


class MetadataConfig(StrictModel):
    """Stage 1: DuckDB over LAION-400M metadata parquet."""

    source: str = Field(
        "", description="parquet glob, file, or remote URL (https://, s3://, hf://)"
    )
    number_words: list[str] = Field(
        default_factory=lambda: [
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
        ]
    )
    include_digits: bool = Field(False, description="also prefilter digits 2..10")
    allowed_nsfw: list[str] = Field(default_factory=lambda: ["UNLIKELY"])
    min_similarity: float = Field(0.28, description="LAION CLIP image-text similarity floor")
    min_width: int = Field(64, ge=0)
    min_height: int = Field(64, ge=0)
    common_ratio: float = Field(
        4.0, ge=0, description="non-counting rows sampled per counting candidate"
    )
    seed: int = 0
    threads: int = Field(2, ge=1)
    memory_limit: str = "2GB"


class CaptionConfig(StrictModel):
    """Stage 2: spaCy number-word filter and counterfactual captions."""

    spacy_model: str | None = Field(
        None, description="installed trained pipeline (e.g. en_core_web_sm); None = blank 'en'"
    )
    require_nummod: bool = Field(
        True, description="with a trained pipeline: the number must modify a noun (nummod)"
    )
    include_digits: bool = False
    batch_size: int = Field(2000, ge=1)
    n_process: int = Field(1, ge=1, description="spaCy processes (1 is fastest on 2 cores)")
    rows_per_chunk: int = Field(100_000, ge=1, description="rows read from parquet at a time")


class DownloadConfig(StrictModel):
    """Stage 3: img2dataset into webdataset shards."""

    image_size: int = Field(64, ge=8)
    resize_mode: Literal["no", "border", "keep_ratio", "keep_ratio_largest", "center_crop"] = (
        "center_crop"
    )
    encode_format: Literal["jpg", "png", "webp"] = "jpg"
    encode_quality: int = Field(90, ge=1, le=100)
    processes_count: int = Field(2, ge=1)
    thread_count: int = Field(32, ge=1)
    timeout: float = Field(3.0, gt=0, description="seconds per image request")
    retries: int = Field(0, ge=0, description="img2dataset's own per-URL retries")
    retry_failed_passes: int = Field(
        1, ge=0, description="extra passes that re-queue only failed samples"
    )
    number_sample_per_shard: int = Field(1000, ge=1)
    distributor: Literal["multiprocessing", "pyspark", "ray"] = "multiprocessing"
    disallowed_header_directives: list[str] = Field(
        default_factory=lambda: ["noai", "noimageai", "noindex", "noimageindex"]
    )
    user_agent_token: str | None = "countclip"
    retry_error_classes: list[str] = Field(
        default_factory=lambda: [
            "http_5xx",
            "http_429",
            "timeout",
            "connection",
            "truncated",
            "shard_failed",
            "other",
        ],
        description="failure classes a retry-failed pass re-queues (transient ones); never "
        "opt_out, and 404/4xx/decode errors are deterministic",
    )


class LambdaConfig(StrictModel):
    """Stage 4: class frequencies of what was downloaded -> λ per count."""

    scheme: Literal["constant", "norm", "modal", "log"] = "log"
    lambda0: float = Field(1.0, ge=0)


class ModelConfig(StrictModel):
    name: str = Field("countclip-tiny", description="open_clip model name")
    pretrained: str | None = Field(
        None, description="open_clip pretrained tag ('openai') or a checkpoint path"
    )
    lock_image: bool = False
    lock_image_unlocked_groups: int = 0
    lock_text: bool = False
    lock_text_unlocked_layers: int = 0


Augment = Literal["open_clip", "flip", "dihedral"]
"""Training image transforms (:mod:`countclip.augment`)."""


class TrainConfig(StrictModel):
    """Stage 5: fine-tuning with L = L_CLIP + λ·L_count (or L_count+)."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    count_loss: Literal["none", "count", "count_plus"] = Field(
        "count_plus", description="none = L_CLIP-only control; count = 1 cf; count_plus = 8 cfs"
    )
    lambda_scale: float = Field(
        1.0, ge=0, description="multiplies every λ_c; 0 gives the L_CLIP-only control"
    )
    logit_scale: Literal["model", "one"] = Field(
        "model", description="s in L_count: the model's logit scale (default) or 1 (paper)"
    )
    counting_fraction: float = Field(0.2, gt=0, le=1, description="counting samples per batch")
    count_sampling_power: float = Field(
        1.0,
        ge=0,
        le=1,
        description="counting samples of count c are drawn with class weight n_c^power: 1 = "
        "as downloaded (the paper), 0 = every count equally often, 0.5 = square-root",
    )
    augment: Augment = Field(
        "open_clip",
        description="training image transform: open_clip's random resized crop (the paper's), "
        "or the whole image after a random mirror (flip) / any of the 8 flips and rotations "
        "(dihedral), which never change the count (countclip.augment)",
    )
    batch_size: int = Field(64, ge=2)
    steps: int = Field(400, ge=1)
    epochs: int | None = Field(
        None,
        ge=1,
        description="if set: steps = epochs x steps per epoch (one pass over the "
        "counting training samples), and validation runs at every epoch end",
    )
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    weight_decay: float = 0.2
    warmup_steps: int = Field(40, ge=0)
    grad_clip_norm: float | None = 1.0
    precision: Literal["fp32", "bf16", "amp"] = "fp32"
    val_fraction: float = Field(0.1, ge=0, lt=1)
    select_metric: Literal["balanced", "accuracy"] = Field(
        "balanced",
        description="validation metric that picks the best checkpoint: balanced = mean "
        "per-count recall (the counting data is skewed towards 'two'), or plain accuracy",
    )
    eval_every: int = Field(100, ge=1, description="steps between validation passes")
    checkpoint_every: int = Field(100, ge=1)
    workers: int = Field(0, ge=0)
    seed: int = 0
    device: str = "auto"
    threads: int | None = Field(None, description="torch CPU threads (None = torch default)")


class PretrainConfig(StrictModel):
    """The synthetic world's stand-in for OpenAI's CLIP: contrastive pretraining (L_CLIP only)
    from random init on captions where, as in LAION, only a few state a count.

    The real path skips this (``train.model.pretrained: openai``). Images are rendered in-process
    from the world's metadata rows instead of downloaded: tens of thousands of images would cost
    minutes through the loopback server and teach nothing about the pipeline.
    """

    enabled: bool = Field(True, description="pretrain a baseline (synthetic world only)")
    rows: int = Field(30_000, ge=100, description="metadata rows rendered into the corpus")
    counting_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="cap on the share of corpus captions that state a count (LAION-like), "
        "whatever the world's counting_fraction: the baseline must not learn to count",
    )
    image_size: int = Field(64, ge=16)
    model: ModelConfig = Field(default_factory=ModelConfig)
    batch_size: int = Field(64, ge=2)
    steps: int = Field(1200, ge=1)
    lr: float = 1e-3
    warmup_steps: int = Field(100, ge=0)
    weight_decay: float = 0.1
    seed: int = 0
    threads: int | None = None


class EvalConfig(StrictModel):
    """Stage 6: CountBench and the zero-shot sanity check."""

    countbench: str = Field("", description="CountBench.json path or URL")
    supplement: str | None = Field(None, description="replacement rows, same format")
    batch_size: int = Field(128, ge=1)
    zero_shot: bool = True
    zero_shot_per_class: int = Field(
        20, ge=1, description="synthetic shape/colour images rendered per class"
    )
    zero_shot_image_size: int = Field(
        64, ge=16, description="render size of the zero-shot images (match the download size)"
    )
    zero_shot_dataset: str | None = Field(
        None, description="a CLIP_benchmark-format folder to use instead of the synthetic set"
    )
    device: str = "auto"


class PipelineConfig(StrictModel):
    """Everything a flow needs; configs/*.yaml are partial overrides of these defaults."""

    name: str = "demo"
    data_root: str = Field("data", description="local path or fsspec URL for stage outputs")
    synthetic: bool = Field(True, description="start the synthetic world (loopback server)")
    world: WorldConfig = Field(default_factory=WorldConfig)
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    captions: CaptionConfig = Field(default_factory=CaptionConfig)
    download: DownloadConfig = Field(default_factory=DownloadConfig)
    lambdas: LambdaConfig = Field(default_factory=LambdaConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("data_root")
    @classmethod
    def _expand(cls, value: str) -> str:
        return os.path.expanduser(value)


class ConfigError(ValueError):
    """A config file that cannot be read or does not validate; the message names the file."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into ``base`` (mappings merge, everything else replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """One YAML config as a mapping; an ``extends: other.yaml`` key (relative to this file)
    merges this file over that one, so a variant config states only what it changes."""
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
    data = dict(loaded)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a file name, got {parent!r}")
    base_path = (path.parent / parent).resolve()
    if base_path in seen or base_path == path.resolve():
        raise ConfigError(f"{path}: 'extends' forms a cycle through {base_path}")
    return deep_merge(_read_yaml(base_path, (*seen, path.resolve())), data)


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None
) -> PipelineConfig:
    """Load a YAML config (partial) over the defaults, then apply ``overrides``."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        data = _read_yaml(path, seen=())
    if overrides:
        data = deep_merge(data, overrides)
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        where = str(path) if path is not None else "config"
        raise ConfigError(f"{where}: {exc}") from exc
