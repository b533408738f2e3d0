"""YAML config files -> :class:`countclip.config.PipelineConfig`.

Files in ``configs/`` are partial: they are deep-merged over the pydantic defaults, then
validated, so a typo in a key is an error that names the key (``extra="forbid"``). A file may
``extends: other.yaml`` to state only what it changes; a key given twice in one mapping is an
error naming the key and both lines (plain YAML would silently keep the last).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from countclip.config import PipelineConfig


class ConfigError(ValueError):
    """A config file that cannot be read or does not validate; the message names the file."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into ``base`` (mappings merge, everything else replaces)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice in one mapping (plain YAML keeps the last
    silently, so a section repeated further down a config would undo the first)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError(
                f"{key_node.start_mark.name}: line {line}: key {key!r} is given twice "
                f"(first on line {seen[key]})"
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _read_text(path: Path) -> str:
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a YAML config file")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): not a YAML config") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _read_yaml(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """One YAML config as a mapping; an ``extends: other.yaml`` key (relative to this file)
    merges this file over that one, so a variant config states only what it changes."""
    text = _read_text(path)
    try:
        loaded = yaml.load(_named(text, path), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, Mapping):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
    data = dict(loaded)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a file name, got {parent!r}")
    base_path = (path.parent / parent).resolve()
    if base_path in seen or base_path == path.resolve():
        raise ConfigError(f"{path}: 'extends' forms a cycle through {base_path}")
    try:
        base = _read_yaml(base_path, (*seen, path.resolve()))
    except ConfigError as exc:
        raise ConfigError(f"{path}: extends: {parent}: {exc}") from None
    return deep_merge(base, data)


def _named(text: str, path: Path) -> Any:
    """A stream whose ``name`` is the file path, so YAML marks (and errors) name the file."""
    stream = io.StringIO(text)
    stream.name = str(path)  # type: ignore[misc]
    return stream


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    overrides_from: str = "--set",
) -> PipelineConfig:
    """Load a YAML config (partial) over the defaults, then apply ``overrides``. A validation
    error names where the bad value came from: the file, or ``overrides_from`` (the CLI's
    ``--set``, a deployment's ``overrides``) when the file alone is valid."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        data = _read_yaml(path, seen=())
    merged = deep_merge(data, overrides) if overrides else data
    try:
        return PipelineConfig.model_validate(merged)
    except ValidationError as exc:
        where = str(path) if path is not None else "config"
        if overrides:
            try:
                PipelineConfig.model_validate(data)
            except ValidationError:
                pass
            else:
                where = overrides_from
        raise ConfigError(f"{where}: {_short(exc)}") from None


def _short(exc: ValidationError) -> str:
    """Pydantic's errors, one line each: ``train.steps: Input should be ... (got 'abc')``."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "config"
        got = (
            f" (got {error['input']!r})" if "input" in error and error["type"] != "missing" else ""
        )
        lines.append(f"{field}: {error['msg']}{got}")
    return "; ".join(lines)
