"""Offline hygiene: environment settings that stop the stack from phoning home.

Measured on this project's machines: albumentations asks PyPI for updates at every import (in every
img2dataset worker), open_clip's hub lookups retry for ~46 s before failing offline, wandb and
Prefect send telemetry. Defaults only: a user who sets a variable keeps their value.
"""

from __future__ import annotations

import os

OFFLINE_ENV: dict[str, str] = {
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "TOKENIZERS_PARALLELISM": "false",
}


def apply_offline_env(online: bool = False) -> None:
    """Set the offline defaults in ``os.environ`` (without overriding the user's values).

    ``online=True`` (the real LAION path) leaves the hub reachable so ``pretrained="openai"``
    can download weights, and W&B as the user set it up (a long GPU run is watched there); it
    only silences telemetry and update checks.
    """
    for key, value in OFFLINE_ENV.items():
        if online and key in ("HF_HUB_OFFLINE", "WANDB_MODE"):
            continue
        os.environ.setdefault(key, value)
