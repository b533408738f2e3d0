"""What a stage's output is a function of, as short stable digests.

A stage directory is named by :func:`fingerprint` of three things
(see :mod:`countclip.stages.base`):

* the **semantic** config: pydantic models are dumped with :func:`countclip.config.semantic_dump`,
  which leaves out speed-only settings (processes, threads, batch sizes for inference, device);
* the upstream stages' fingerprints;
* the **code version** of the stage (:func:`code_version`): a digest of the code (the syntax
  tree without docstrings, comments and layout) of every ``countclip`` module the stage's
  entry module imports, directly or not (imports inside functions included), and of every
  ``sql/*.sql`` file those modules name. It is derived from
  the source, so no list of modules has to be kept up to date by hand: editing a module a stage
  runs gives the stage, and through the upstream fingerprints everything downstream of it, a new
  directory.

Two modules are left out of every code version because their effect on outputs is already in
the fingerprint by other means: :mod:`countclip.config` (the values it validates are hashed) and
the stage bookkeeping itself (:mod:`countclip.stages.base`, :mod:`countclip.atomic`, this module),
whose on-disk layout is versioned by :data:`countclip.stages.base.LAYOUT_VERSION`.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import re
import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT_PACKAGE = "countclip"
NEUTRAL_MODULES: frozenset[str] = frozenset(
    {
        "countclip",
        "countclip.config",
        "countclip.stages",
        "countclip.stages.base",
        "countclip.progress",
        "countclip.atomic",
        "countclip.fingerprints",
    }
)
"""Never part of a code version (see the module docstring for why)."""


def _neutral(name: str) -> bool:
    """:data:`NEUTRAL_MODULES` and the config package's own modules."""
    return name in NEUTRAL_MODULES or name.startswith("countclip.config.")


_SQL_NAME = re.compile(r"^[\w.-]+\.sql$")


def canonical(obj: Any) -> Any:
    """``obj`` as stable, JSON-serialisable data: pydantic models by their semantic dump,
    mappings with sorted string keys, sets sorted, paths as strings."""
    if isinstance(obj, BaseModel):
        from countclip.config import semantic_dump

        return canonical(semantic_dump(obj))
    if isinstance(obj, Mapping):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, list | tuple):
        return [canonical(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return sorted(canonical(v) for v in obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def fingerprint(*parts: Any, length: int = 16) -> str:
    """A short, stable hex digest of any mix of config models, mappings and strings."""
    payload = json.dumps([canonical(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:length]


def file_fingerprint(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Content hash of a file (sha256, first 16 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- code versions


@cache
def _source_file(module: str) -> Path | None:
    """The source file of ``module``, found on disk without importing it or its siblings (the
    import machinery is asked only for packages mapped elsewhere, such as ``countclip.sql``,
    which imports just the light parent package)."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    origin, locations = Path(spec.origin), list(spec.submodule_search_locations or [])
    for depth, part in enumerate(parts[1:], start=2):
        if not locations:  # the parent is a plain module: ``part`` is an attribute
            return None
        hits = [
            candidate
            for location in locations
            for candidate in (Path(location, part + ".py"), Path(location, part, "__init__.py"))
            if candidate.is_file()
        ]
        if hits:
            origin = hits[0]
            locations = [str(origin.parent)] if origin.name == "__init__.py" else []
            continue
        try:
            spec = importlib.util.find_spec(".".join(parts[:depth]))
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.origin:
            return None
        origin, locations = Path(spec.origin), list(spec.submodule_search_locations or [])
    return origin if origin.suffix == ".py" else None


def _is_module(name: str) -> bool:
    return _source_file(name) is not None


def _imports_of(module: str, tree: ast.AST) -> set[str]:
    """``countclip`` modules named by the imports in ``tree`` (any depth, relative resolved)."""
    package = module if _is_package(module) else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if not _in_package(base):
                continue  # never look inside other packages (finding a name there imports it)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if _is_module(child) else base)
    return {name for name in found if _in_package(name)}


def _in_package(name: str) -> bool:
    return name == ROOT_PACKAGE or name.startswith(ROOT_PACKAGE + ".")


def _is_package(module: str) -> bool:
    path = _source_file(module)
    return path is not None and path.name == "__init__.py"


def _code_only(tree: ast.AST) -> str:
    """The module's code without its docstrings, comments and layout: a reworded docstring
    or a reformatted line does not move a stage, a changed statement or constant does."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def _sql_names(tree: ast.AST) -> set[str]:
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _SQL_NAME.match(node.value)
    }


_PARSING = threading.Lock()
"""``ast.parse`` from two threads at once can fail in CPython 3.11 ("AST constructor recursion
depth mismatch"), and two stages plan at once when the demo's fine-tunes start together."""


def stage_code(module: str) -> dict[str, str]:
    """``{module or sql file: sha256}`` of everything the code version of ``module`` covers."""
    with _PARSING:
        return _stage_code(module)


@cache
def _stage_code(module: str) -> dict[str, str]:
    from countclip import sql

    todo, seen = [module], set()
    digests: dict[str, str] = {}
    sql_files: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _source_file(name)
        if path is None:
            raise ImportError(f"code version: module {name!r} has no source file")
        if _neutral(name) and name != module:
            continue  # neither it nor what it imports (bookkeeping, config)
        source = path.read_bytes()
        tree = ast.parse(source, filename=str(path))
        digests[name] = hashlib.sha256(_code_only(tree).encode()).hexdigest()
        sql_files |= _sql_names(tree)
        todo.extend(_imports_of(name, tree) - seen)
    for name in sorted(sql_files):
        file = sql.path(name)
        if file.is_file():
            digests[f"sql/{name}"] = hashlib.sha256(file.read_bytes()).hexdigest()
    return dict(sorted(digests.items()))


def code_version(module: str) -> str:
    """Digest of the source a stage runs: ``module`` and its transitive ``countclip`` imports
    (but :data:`NEUTRAL_MODULES`), plus the SQL files they name. Cached per process."""
    return fingerprint(stage_code(module))
