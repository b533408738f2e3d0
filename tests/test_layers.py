"""The library layer stays plain: nothing under countclip/ imports Prefect."""

from __future__ import annotations

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "countclip"


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_library_never_imports_prefect_tasks_or_flows() -> None:
    modules = sorted(LIBRARY.rglob("*.py"))
    assert len(modules) > 20
    offenders = {
        str(path.relative_to(LIBRARY.parent)): sorted(roots & {"prefect", "prefect_dask"})
        for path in modules
        if (roots := _imported_roots(path)) & {"prefect", "prefect_dask"}
    }
    assert offenders == {}
    leaking = [
        str(p.relative_to(LIBRARY.parent))
        for p in modules
        if p.name != "cli.py" and _imported_roots(p) & {"tasks", "flows"}
    ]
    assert leaking == []
