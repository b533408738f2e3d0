"""The layers of the design, checked on the source: imports go down only.

flows -> tasks -> countclip; inside countclip, only synthetic/ may use the synthetic world, and
nothing imports Prefect. No exemptions: the CLI lives with the flows.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "countclip"
PIPELINE = {"tasks": "countclip_tasks", "flows": "countclip_flows"}
ORCHESTRATION = {"prefect", "prefect_dask", "countclip_tasks", "countclip_flows", "tasks", "flows"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[0] in PIPELINE:
        parts[0] = PIPELINE[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Absolute module names imported by ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = _module_name(path).rpartition(".")[0]
    if path.name == "__init__.py":
        package = _module_name(path)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_library_imports_no_orchestration() -> None:
    modules = _sources(LIBRARY)
    assert len(modules) > 30
    offenders = {
        str(p.relative_to(REPO)): sorted(
            {name.split(".")[0] for name in _imports(p)} & ORCHESTRATION
        )
        for p in modules
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_synthetic_world_imports_the_synthetic_world() -> None:
    leaking = {
        str(p.relative_to(REPO)): sorted(
            name for name in _imports(p) if name.startswith("countclip.synthetic")
        )
        for p in _sources(LIBRARY)
        if "synthetic" not in p.relative_to(LIBRARY).parts
    }
    assert {k: v for k, v in leaking.items() if v} == {}


@pytest.mark.parametrize("folder", ["tasks", "flows"])
def test_pipeline_uses_installed_names_and_goes_down_only(folder: str) -> None:
    forbidden = {"tasks", "flows"} | ({"countclip_flows"} if folder == "tasks" else set())
    offenders = {
        str(p.relative_to(REPO)): sorted({name.split(".")[0] for name in _imports(p)} & forbidden)
        for p in _sources(REPO / folder)
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycles_in_the_library() -> None:
    """Module-level imports between countclip modules form no cycle (a cycle is what made
    train.py and train_stage.py import each other)."""
    modules = {_module_name(p): p for p in _sources(LIBRARY)}
    graph = {
        name: {
            imported
            for imported in _imports(path, top_level_only=True)
            if imported in modules and imported != name
        }
        for name, path in modules.items()
    }
    # a package's own __init__ imported by its children is not a cycle worth failing on
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    visiting, done, cycles = set(), set(), []

    def visit(node: str, trail: list[str]) -> None:
        if node in done:
            return
        if node in visiting:
            cycles.append([*trail[trail.index(node) :], node])
            return
        visiting.add(node)
        for nxt in sorted(graph[node]):
            visit(nxt, [*trail, node])
        visiting.discard(node)
        done.add(node)

    for name in sorted(graph):
        visit(name, [])
    assert cycles == []


def test_every_library_module_is_under_400_lines() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in [*_sources(LIBRARY), *_sources(REPO / "tasks"), *_sources(REPO / "flows")]
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}
