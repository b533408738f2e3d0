"""Pydantic models for every stage, and YAML loading with deep merges.

Every stage function takes its own config model; flows take :class:`PipelineConfig` (or a part of
it) as a parameter, which Prefect renders as a form in the UI. YAML files in ``configs/`` are
partial: they are deep-merged over the defaults below, then validated, so a typo in a key is an
error that names the key (``extra="forbid"``).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from countclip.counts import NUMBER_WORDS


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


SPEED_ONLY = {"affects_output": False}
"""``json_schema_extra`` of a setting that changes how fast a stage runs, never what it writes."""


def speed(default: Any, description: str, **kwargs: Any) -> Any:
    """A speed-only field (processes, threads, inference batch sizes, device, workers): left out
    of stage fingerprints by :func:`semantic_dump`, so changing it never recomputes a stage."""
    return Field(
        default, description=f"{description} (speed only)", json_schema_extra=SPEED_ONLY, **kwargs
    )


def is_speed_only(model: type[BaseModel], name: str) -> bool:
    extra = model.model_fields[name].json_schema_extra
    return isinstance(extra, dict) and extra.get("affects_output") is False


def semantic_dump(model: BaseModel) -> dict[str, Any]:
    """``model`` as JSON data without its speed-only fields (recursively): what decides a
    stage's output, and so what its fingerprint hashes."""
    dumped = model.model_dump(mode="json")
    for name in type(model).model_fields:
        if is_speed_only(type(model), name):
            dumped.pop(name, None)
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            dumped[name] = semantic_dump(value)
    return dumped


class WorldConfig(StrictModel):
    """The synthetic LAION world: metadata generator, image renderer, loopback server."""

    seed: int = 0
    rows: int = Field(20_000, ge=1, description="metadata rows to generate")
    parts: int = Field(1, ge=1, description="parquet files the rows are split over")
    counting_fraction: float = Field(0.05, ge=0, le=1, description="captions stating a count")
    distractor_fraction: float = Field(
        0.03, ge=0, le=1, description="captions with a number word that is not a count"
    )
    caption_noise: float = Field(
        0.2, ge=0, le=1, description="share of counting captions whose image shows another "
        "count (off by 1-2, one item for 'pack of six', a number of things not drawn)",
    )  # fmt: skip
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
    confirmatory_seed: int = Field(
        1, ge=0, lt=100_000, description="seed and ids of the confirmatory CountBench (final runs)"
    )
    port: int = Field(
        0, ge=0, le=65535, description="loopback image server port (0 = a random free port)"
    )
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality the server sends")
    zero_shot_per_class: int = Field(
        20, ge=1, description="images per class of the zero-shot shape/colour sets"
    )
    zero_shot_image_size: int = Field(
        64, ge=16, description="render size of the zero-shot images (match the download size)"
    )


LaionColumn = Literal[
    "SAMPLE_ID", "URL", "TEXT", "HEIGHT", "WIDTH", "LICENSE", "NSFW", "similarity"
]


class ExcludeList(StrictModel):
    """A URL blocklist: rows whose URL (or its md5/sha256 hex digest) it holds are dropped."""

    path: str = Field(description="local file or URL of the list")
    format: Literal["auto", "text", "csv", "parquet"] = Field("auto", description="auto: by suffix")
    column: str | None = Field(None, description="CSV/parquet key column (default url or hash)")
    hash: Literal["none", "md5", "sha256"] = "none"


class MetadataConfig(StrictModel):
    """Stage 1: DuckDB over LAION metadata parquet (docs/scale.md: remote sources, Re-LAION)."""

    source: str | list[str] = Field("", description="parquet file, glob or URL, or a list")
    columns: dict[LaionColumn, str | None] = Field(
        default_factory=dict, description="source column per LAION column; null = none"
    )
    exclude: list[ExcludeList | str] = Field(default_factory=list, description="URL blocklists")
    number_words: list[str] = Field(default_factory=lambda: list(NUMBER_WORDS.values()))
    include_digits: bool = Field(False, description="also prefilter digits 2..10")
    allowed_nsfw: list[str] | None = Field(
        default_factory=lambda: ["UNLIKELY"], description="null: no NSFW filter (columns.NSFW null)"
    )
    min_similarity: float = Field(0.28, description="LAION CLIP image-text similarity floor")
    min_width: int = Field(64, ge=0)
    min_height: int = Field(64, ge=0)
    common_ratio: float = Field(
        4.0, ge=0, description="non-counting rows sampled per counting candidate"
    )
    seed: int = 0
    threads: int = speed(2, "DuckDB threads", ge=1)
    memory_limit: str = speed("2GB", "DuckDB memory limit")
    timeout: float = speed(60.0, "seconds a remote read waits for the server", gt=0)


class CaptionConfig(StrictModel):
    """Stage 2: spaCy number-word filter and counterfactual captions."""

    spacy_model: str | None = Field(
        None, description="installed trained pipeline (e.g. en_core_web_sm); None = blank 'en'"
    )
    require_nummod: bool = Field(
        True, description="with a trained pipeline: the number must modify a noun (nummod)"
    )
    include_digits: bool = False
    count_threshold: float = Field(
        0.58,
        ge=0.0,
        le=1.0,
        description="operating point of the count classifier: a caption is kept when its best "
        "number word's probability of counting visible things reaches this (chosen by "
        "cross-validation on the tune split of the labelled LAION captions, see "
        "docs/captions.md; lower keeps more counts and more non-counts)",
    )
    batch_size: int = speed(2000, "captions per spaCy batch", ge=1)
    n_process: int = speed(1, "spaCy processes (1 is fastest on 2 cores)", ge=1)
    rows_per_chunk: int = speed(100_000, "rows read from parquet at a time", ge=1)


class DownloadConfig(StrictModel):
    """Stage 3: img2dataset into webdataset shards."""

    image_size: int = Field(64, ge=8)
    resize_mode: Literal["no", "border", "keep_ratio", "keep_ratio_largest", "center_crop"] = (
        "center_crop"
    )
    encode_format: Literal["jpg", "png", "webp"] = "jpg"
    encode_quality: int = Field(90, ge=1, le=100)
    processes_count: int = speed(2, "img2dataset processes", ge=1)
    thread_count: int = speed(32, "img2dataset threads per process", ge=1)
    timeout: float = Field(3.0, gt=0, description="seconds per image request")
    retries: int = Field(0, ge=0, description="img2dataset's own per-URL retries")
    retry_failed_passes: int = Field(
        1, ge=0, description="extra passes that re-queue only failed samples"
    )
    number_sample_per_shard: int = Field(1000, ge=1)
    distributor: Literal["multiprocessing", "ray"] = speed(
        "multiprocessing", "img2dataset distributor: where the download processes run")  # fmt: skip
    ray_address: str | None = speed(None, "distributor=ray: None = a local cluster of "
        "processes_count CPUs per pass; 'auto' or 'host:port' = a running cluster")  # fmt: skip
    stall_timeout: float = speed(
        300.0,
        "seconds img2dataset may go without writing anything before the pass is stopped and "
        "the stage fails (a hung child: full disk, dead NFS, stuck DNS)",
        gt=0,
    )
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


Detector = Literal[
    "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_resnet50_fpn", "fasterrcnn_mobilenet_v3_large_fpn",
    "retinanet_resnet50_fpn_v2", "retinanet_resnet50_fpn", "ssdlite320_mobilenet_v3_large",
]  # fmt: skip


class VerifyConfig(StrictModel):
    """Stage 3b: keep a counting sample only if its image shows the caption's count."""

    counter: Literal["classical", "torchvision", "none"] = Field(
        "classical", description="classical: segmentation + connected components (flat objects, "
        "the synthetic world); torchvision: a COCO detector (photos); none: keep all (naive)",
    )  # fmt: skip
    detector: Detector = "fasterrcnn_resnet50_fpn_v2"
    score_threshold: float = Field(0.5, ge=0, le=1, description="lower detector scores not counted")
    weights: str | None = Field(None, description="detector .pth state dict; None = torchvision's "
        "cache file (never downloaded); 'random' = untrained, for plumbing tests only")  # fmt: skip
    min_object_fraction: float = Field(
        0.002, ge=0, lt=1, description="classical: smaller blobs (share of the image) are noise"
    )
    classical_on_photos: bool = Field(
        False, description="allow the classical counter with synthetic: false (it counts blobs "
        "of rendered scenes, not objects in photographs); recorded in the verify manifest",
    )  # fmt: skip
    batch_size: int = speed(32, "images per counter batch", ge=1)
    device: str = speed("auto", "detector torch device: auto, cpu, cuda, cuda:1")


class LambdaConfig(StrictModel):
    """Stage 4: class frequencies of what was downloaded -> λ per count."""

    scheme: Literal["constant", "norm", "modal", "log"] = "log"
    lambda0: float = Field(1.0, ge=0)


class ModelConfig(StrictModel):
    name: str = Field(
        "countclip-tiny", description="open_clip model: countclip-tiny, countclip-small, ViT-B-32"
    )
    pretrained: str | None = Field(
        None, description="open_clip pretrained tag ('openai') or a checkpoint path"
    )
    quick_gelu: bool | None = Field(
        None, description="QuickGELU activations (OpenAI's CLIP weights were trained with them); "
        "None = what the pretrained tag was trained with",
    )  # fmt: skip
    lock_image: bool = False
    lock_image_unlocked_groups: int = 0
    lock_text: bool = False
    lock_text_unlocked_layers: int = 0


Augment = Literal["open_clip", "flip", "dihedral"]
"""Training image transforms (:mod:`countclip.training.augment`)."""


class TrainConfig(StrictModel):
    """Stage 5: fine-tuning with L = L_CLIP + λ·L_count (or L_count+)."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    count_loss: Literal["none", "count", "count_plus"] = Field(
        "count_plus", description="none = L_CLIP-only control; count = 1 cf; count_plus = 8 cfs"
    )
    lambda_scale: float = Field(
        1.0, ge=0, description="multiplies every λ_c; 0 gives the L_CLIP-only control"
    )
    lambda_mean: float | None = Field(
        None,
        gt=0,
        description="rescale λ so its expected value per counting sample, under this run's "
        "count sampling, is this (compares λ schemes at matched mean λ); None = as computed",
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
        "(dihedral), which never change the count (countclip.training.augment)",
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
    checkpoint_every: int = speed(100, "steps between resumable checkpoints", ge=1)
    workers: int = speed(0, "DataLoader worker processes", ge=0)
    seed: int = 0
    device: str = speed("auto", "torch device: auto, cpu, cuda, cuda:1")
    processes: int = speed(
        1, "training processes; > 1 runs the loop under torchrun (DDP), one process per GPU "
        "(gloo on CPU)", ge=1,
    )  # fmt: skip
    threads: int | None = speed(None, "torch CPU threads (None = torch default)")


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
    threads: int | None = speed(None, "torch CPU threads (None = torch default)")


class EvalConfig(StrictModel):
    """Stage 6: CountBench and the zero-shot sanity check."""

    countbench: str = Field("", description="CountBench.json path or URL")
    supplement: str | None = Field(None, description="replacement rows, same format")
    batch_size: int = speed(128, "images per encoder batch", ge=1)
    zero_shot: bool = True
    zero_shot_datasets: dict[str, str] = Field(
        default_factory=dict,
        description="zero-shot task name -> CLIP_benchmark-format folder; empty with the "
        "synthetic world = its shape and colour sets",
    )
    zero_shot_split: str = Field(
        "test", description="split of the zero-shot folders to score (tuning uses validation)"
    )
    min_images: float = Field(
        0.5, ge=0, le=1, json_schema_extra=SPEED_ONLY, description="smallest share of CountBench's "
        "rows that must be evaluated (dead links): below it the evaluation is an error, never a "
        "cached result (a check: it never changes what is written)",
    )  # fmt: skip
    device: str = speed("auto", "torch device: auto, cpu, cuda, cuda:1")


class DaskConfig(StrictModel):
    """The local Dask cluster of ``--runner dask`` (metadata + captions per parquet part)."""

    workers: int | None = speed(None, "worker processes (None = the machine's cores)", ge=1)
    threads_per_worker: int = speed(1, "threads per worker process", ge=1)
    memory_limit: str | None = speed(None, "per-worker memory limit, e.g. 4GB (None = auto)")


class PipelineConfig(StrictModel):
    """Everything a flow needs; configs/*.yaml are partial overrides of these defaults."""

    name: str = "demo"
    data_root: str = Field("data", description="local directory for stage outputs and the cache")
    lock_timeout: float | None = speed(
        None,
        "seconds a stage waits for another run that is writing the same stage directory; "
        "None = as long as it takes, 0 = fail at once",
        ge=0,
    )
    dask: DaskConfig = Field(default_factory=lambda: DaskConfig())
    synthetic: bool = Field(True, description="start the synthetic world (loopback server)")
    world: WorldConfig = Field(default_factory=WorldConfig)
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    captions: CaptionConfig = Field(default_factory=CaptionConfig)
    download: DownloadConfig = Field(default_factory=DownloadConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    lambdas: LambdaConfig = Field(default_factory=LambdaConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("data_root")
    @classmethod
    def _local_directory(cls, value: str) -> str:
        if "://" in value and not value.startswith("file://"):
            raise ValueError(
                f"data_root {value!r}: stages write and lock local directories; mount the "
                "bucket (s3fs, gcsfuse, NFS) and give its path instead"
            )
        return os.path.expanduser(value.removeprefix("file://"))

    @model_validator(mode="after")
    def _photographs_need_a_detector(self) -> PipelineConfig:
        classical = self.verify.counter == "classical" and not self.verify.classical_on_photos
        if classical and not self.synthetic:
            raise ValueError(
                "verify.counter: classical counts blobs of rendered scenes, not objects in "
                "photographs (synthetic: false); use verify.counter: torchvision, or set "
                "verify.classical_on_photos: true to count blobs anyway"
            )
        return self
