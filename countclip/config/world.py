"""The synthetic LAION world's settings."""

from __future__ import annotations

from pydantic import Field

from countclip.config.fields import StrictModel


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
    dev2_seed: int = Field(
        1, ge=0, lt=100_000, description="seed and ids of the second development CountBench "
        "(dev2: the confirmatory CountBench of the runs before issue 32, unchanged)",
    )  # fmt: skip
    confirmatory_seed: int = Field(
        32, ge=0, lt=100_000, description="seed and ids of the confirmatory CountBench (final "
        "runs of a registered recipe; an id range and rng stream no other CountBench uses)",
    )  # fmt: skip
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
