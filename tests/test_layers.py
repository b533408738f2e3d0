"""The layers of the design, checked on the source: imports go down only.

flows -> tasks -> countclip. Inside countclip: pipeline.py uses stages/; stages/ use the work
folders (data/, training/, evaluation/) and, for the offline world, synthetic/; synthetic/ may
use the work folders; the work folders import neither synthetic/ nor stages/ (the real path
never needs the synthetic world). Nothing in countclip imports Prefect. tasks/ mirror stages/
one to one and take nothing else from the library. Imports made inside functions count as
much as module-level ones: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from countclip.pipeline import STAGE_NAMES

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "countclip"
INSTALLED = {
    "tasks": "countclip_tasks",
    "flows": "countclip_flows",
    "countclip_experiments": "countclip_experiments",
}
ORCHESTRATION = {"prefect", "prefect_dask", "countclip_tasks", "countclip_flows", "tasks", "flows"}
WORK = ("data", "training", "evaluation")
TASK_HELPERS = {"__init__", "artifacts", "caching", "retrying"}
"""tasks/ modules that are no stage's task: artifacts, the cache policy, the retry rule."""
TASKS_MAY_IMPORT = ("countclip.config", "countclip.stages")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    parts[0] = INSTALLED.get(parts[0], parts[0])
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Absolute module names imported by ``path`` (relative imports resolved); with
    ``top_level_only`` only the module's own statements, else every import in it."""
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


def _library_part(path: Path) -> str:
    """``data``, ``stages``, ``pipeline``... : the first folder (or module) under countclip/."""
    return path.relative_to(LIBRARY).parts[0].removesuffix(".py")


def _offenders(paths: list[Path], forbidden) -> dict[str, list[str]]:
    found = {
        str(p.relative_to(REPO)): sorted(n for n in _imports(p) if forbidden(n)) for p in paths
    }
    return {k: v for k, v in found.items() if v}


def test_library_imports_no_orchestration() -> None:
    modules = _sources(LIBRARY)
    assert len(modules) > 30
    assert _offenders(modules, lambda n: n.split(".")[0] in ORCHESTRATION) == {}


def test_work_folders_import_neither_the_world_nor_the_stages() -> None:
    work = [p for p in _sources(LIBRARY) if _library_part(p) in WORK]
    assert len(work) > 20
    wrong = ("countclip.synthetic", "countclip.stages", "countclip.pipeline")
    assert _offenders(work, lambda n: n.startswith(wrong)) == {}


def test_the_world_and_the_stages_never_reach_up() -> None:
    synthetic = [p for p in _sources(LIBRARY) if _library_part(p) == "synthetic"]
    stages = [p for p in _sources(LIBRARY) if _library_part(p) == "stages"]
    up = ("countclip.stages", "countclip.pipeline")
    assert _offenders(synthetic, lambda n: n.startswith(up)) == {}
    assert _offenders(stages, lambda n: n.startswith("countclip.pipeline")) == {}


def test_the_stage_order_is_written_once() -> None:
    """The pipeline's steps are exactly the stage modules, and nothing else spells out which
    stage function follows which: flows and experiments call :mod:`countclip.pipeline`."""
    stages = {p.stem for p in (LIBRARY / "stages").glob("*.py")} - {"__init__", "base"}
    assert set(STAGE_NAMES) == stages
    runners = [*_sources(REPO / "flows"), *_sources(REPO / "countclip_experiments")]
    calls_stage_functions = _offenders(
        runners, lambda n: n.startswith("countclip.stages.") and ".run_" in n
    )
    assert calls_stage_functions == {}


def test_tasks_mirror_the_stages_one_to_one() -> None:
    stages = {p.stem for p in (LIBRARY / "stages").glob("*.py")} - {"__init__", "base"}
    tasks = {p.stem for p in (REPO / "tasks").glob("*.py")} - TASK_HELPERS
    assert tasks == stages
    for name in tasks:
        used = {
            n
            for n in _imports(REPO / "tasks" / f"{name}.py")
            if n.startswith("countclip.") and n.count(".") >= 1
        }
        own = f"countclip.stages.{name}"
        assert {n for n in used if n.startswith("countclip.stages.")} <= {
            n for n in used if n == own or n.startswith(own + ".")
        }, f"tasks/{name}.py imports another stage's module"
    library = _offenders(
        _sources(REPO / "tasks"),
        lambda n: n.startswith("countclip.") and not n.startswith(TASKS_MAY_IMPORT),
    )
    assert library == {}


@pytest.mark.parametrize("folder", ["tasks", "flows"])
def test_pipeline_uses_installed_names_and_goes_down_only(folder: str) -> None:
    forbidden = {"tasks", "flows"} | ({"countclip_flows"} if folder == "tasks" else set())
    assert _offenders(_sources(REPO / folder), lambda n: n.split(".")[0] in forbidden) == {}


def test_no_sys_path_edits_anywhere() -> None:
    """What imports the project is installed: no script, test or benchmark edits sys.path."""
    folders = ["countclip", "tasks", "flows", "countclip_experiments", "benchmarks", "scripts"]
    paths = [p for f in folders for p in _sources(REPO / f)] + _sources(REPO / "tests")
    edits = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("insert", "append", "extend")
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "path"
                and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "sys"
            ):
                edits.setdefault(str(path.relative_to(REPO)), []).append(node.lineno)
    assert edits == {}


def test_no_import_cycles_in_the_library() -> None:
    """Imports between countclip modules form no cycle, counting imports inside functions (a
    lazy import hides a cycle from Python, not from a reader: that is how classical.py,
    counters.py and detector.py once leaned on each other)."""
    modules = {_module_name(p): p for p in _sources(LIBRARY)}
    graph = {
        name: {imported for imported in _imports(path) if imported in modules and imported != name}
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
    folders = [LIBRARY, REPO / "tasks", REPO / "flows", REPO / "countclip_experiments"]
    long = {
        str(p.relative_to(REPO)): n
        for p in [p for f in folders for p in _sources(f)]
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}
