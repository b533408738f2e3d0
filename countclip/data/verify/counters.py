"""The one interface every object counter has, and the rule that turns counts into a decision.

A counter sees decoded RGB images and answers, per image, how many objects of each *kind* it
found (``{"dog": 3, "cat": 1}``; the classical counter names kinds by colour). A sample is kept
when the count of its most frequent kind equals the caption's number: the rule of the
reproduction's YOLOv8 check ("the largest per-class detection count"), which tolerates a
stray detection of another class but not a missed or extra object of the counted one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

Counts = dict[str, int]
"""Objects found in one image, per kind."""

KEPT_REASONS: tuple[str, ...] = ("match", "not_verified")
DROP_REASONS: tuple[str, ...] = ("count_mismatch", "nothing_detected", "undecodable")
"""Why a sample was dropped: the most frequent kind has another count; no object at all; the
image bytes do not decode."""


class ObjectCounter(Protocol):
    """Counts objects per kind in a batch of ``H x W x 3`` uint8 RGB images."""

    name: str

    def count(self, images: Sequence[np.ndarray]) -> list[Counts]:
        """One :data:`Counts` per image, in order."""
        ...


def dominant_count(counts: Mapping[str, int]) -> int:
    """Objects of the most frequent kind (0 when nothing was found)."""
    return max(counts.values(), default=0)


def decide(caption_count: int, counts: Mapping[str, int]) -> tuple[bool, str]:
    """``(kept, reason)`` for a sample whose caption states ``caption_count``."""
    detected = dominant_count(counts)
    if detected == 0:
        return False, "nothing_detected"
    if detected != caption_count:
        return False, "count_mismatch"
    return True, "match"
