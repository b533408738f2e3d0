"""Settings of the model, the fine-tuning and the synthetic baseline's pretraining."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from countclip.config.fields import StrictModel, speed


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
    wise_ft_alpha: float | None = Field(
        None,
        ge=0,
        le=1,
        exclude_if=lambda value: value is None,  # unset: configs dump (and hash) as before
        description="WiSE-FT (Wortsman et al. 2022): the saved model is (1 - α)·θ_start + "
        "α·θ_fine-tuned, θ_start the run's starting weights (model.pretrained: the baseline, or "
        "OpenAI's). Its own stage after training (wise_ft), so an α sweep reuses the "
        "fine-tune; None or 1 = the plain fine-tune",
    )
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
    report_to: list[Literal["tensorboard", "wandb"]] = speed(
        ["tensorboard"], "where training metrics go besides metrics.jsonl: TensorBoard event "
        "files in the run's tensorboard/ folder; W&B when installed and not disabled",
    )  # fmt: skip


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
