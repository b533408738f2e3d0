"""Settings of CountBench and the zero-shot check."""

from __future__ import annotations

from pydantic import Field

from countclip.config.fields import SPEED_ONLY, StrictModel, speed


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
