"""Settings of the data stages: metadata, captions, download, verify, λ."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from countclip.config.fields import SPEED_ONLY, StrictModel, speed
from countclip.counts import NUMBER_WORDS

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
    count_threshold: float = Field(0.56, ge=0, le=1, description="operating point of the count "
        "classifier: a caption is kept when its best number word's probability of counting "
        "visible things reaches this (chosen by cross-validation on the tune split of the "
        "labelled LAION captions, docs/captions.md); lower keeps more of both kinds")  # fmt: skip
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
    min_success: float = Field(
        0.5, ge=0, le=1, json_schema_extra=SPEED_ONLY, description="smallest share of a table's "
        "URLs that must download: below it the stage is an error naming the failure classes, "
        "never a cached result (a check: it never changes what is written)",
    )  # fmt: skip
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
    min_size: int | None = Field(None, ge=32, description="torchvision: the shorter image side "
        "the detector sees (None = its own, 800 for Faster R-CNN: a 224 px download is "
        "upsampled, as in COCO evaluation); smaller is faster, misses small objects")  # fmt: skip
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
