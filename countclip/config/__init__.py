"""Pydantic models for every stage (one module per part of the pipeline, all importable from
here).

Every stage function takes its own config model; flows take :class:`PipelineConfig` (or a part of
it) as a parameter, which Prefect renders as a form in the UI. YAML files in ``configs/`` are
partial: they are deep-merged over the defaults below, then validated, so a typo in a key is an
error that names the key (``extra="forbid"``).
"""

from __future__ import annotations

import os

from pydantic import Field, field_validator, model_validator

from countclip.config.data import (
    CaptionConfig,
    Detector,
    DownloadConfig,
    ExcludeList,
    LaionColumn,
    LambdaConfig,
    MetadataConfig,
    VerifyConfig,
)
from countclip.config.evaluation import EvalConfig
from countclip.config.fields import (
    SPEED_ONLY,
    StrictModel,
    is_speed_only,
    semantic_dump,
    speed,
)
from countclip.config.training import Augment, ModelConfig, PretrainConfig, TrainConfig
from countclip.config.world import WorldConfig

__all__ = [
    "SPEED_ONLY",
    "Augment",
    "CaptionConfig",
    "DaskConfig",
    "Detector",
    "DownloadConfig",
    "EvalConfig",
    "ExcludeList",
    "LaionColumn",
    "LambdaConfig",
    "MetadataConfig",
    "ModelConfig",
    "PipelineConfig",
    "PretrainConfig",
    "StrictModel",
    "TrainConfig",
    "VerifyConfig",
    "WorldConfig",
    "is_speed_only",
    "semantic_dump",
    "speed",
]


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
