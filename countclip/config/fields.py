"""The base of every config model, and the marker that keeps speed settings out of stage
fingerprints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
