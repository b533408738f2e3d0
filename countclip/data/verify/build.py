"""The counter a config names, built (or checked) on demand.

Apart from :mod:`countclip.data.verify.counters` so that the counters import the interface and
never the other way round; the concrete counters are imported here only when asked for (the
detector pulls in torchvision, seconds of import that a classical run never needs).
"""

from __future__ import annotations

from countclip.config import VerifyConfig
from countclip.data.verify.counters import ObjectCounter


def check_counter(cfg: VerifyConfig) -> None:
    """Raise the clear error a counter would raise on construction, without building it (a
    missing detector weights file), so a stage fails before it writes anything."""
    if cfg.counter == "torchvision":
        from countclip.data.verify.detector import weights_file

        weights_file(cfg.detector, cfg.weights)


def build_counter(cfg: VerifyConfig) -> ObjectCounter | None:
    """The counter ``cfg`` names; None for ``counter: none`` (keep every sample)."""
    if cfg.counter == "none":
        return None
    if cfg.counter == "classical":
        from countclip.data.verify.classical import ClassicalCounter

        return ClassicalCounter(min_object_fraction=cfg.min_object_fraction)
    from countclip.data.verify.detector import TorchvisionCounter

    return TorchvisionCounter(
        cfg.detector,
        weights=cfg.weights,
        score_threshold=cfg.score_threshold,
        batch_size=cfg.batch_size,
        device=cfg.device,
        min_size=cfg.min_size,
    )
