"""docker/Dockerfile builds: checked against the repository, since no Docker engine runs here.

The checks: every path it COPYs exists; every ``python -m X`` names a module this environment
imports, and every ``python path.py`` a file the Dockerfile copied there; every extra it installs
is one pyproject.toml defines; CMD/ENTRYPOINT runs this project's console scripts or modules;
the runtime working directory holds no source folder that would hide the installed package; the
build context leaves out secrets and the venv. Each check also runs on a broken Dockerfile, to
show it reports what it should. The slow test lays out the image's working directory from the
COPY instructions, installs the wheel beside this venv's dependencies, and loads every
deployment's flow from there the way Prefect's worker does.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import posixpath
import re
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from dockerfile_model import (
    Instruction,
    args,
    commands,
    copies,
    ignored,
    lay_out,
    origin,
    parse,
    placements,
)

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
EXTRAS = set(PYPROJECT["project"]["optional-dependencies"])
# Import names the wheel installs (countclip, countclip_tasks, countclip_flows).
INSTALLED = {name.split(".")[0] for name in PYPROJECT["tool"]["setuptools"]["packages"]}
VENV_BIN = Path(sys.executable).parent
NEVER_IN_CONTEXT = (".env", ".venv", ".git", "data", "results")


def copy_problems(instructions: list[Instruction], repo: Path) -> list[str]:
    return [
        f"line {copy.instruction.line}: COPY {source}: not in the repository"
        for copy in copies(instructions)
        if copy.from_context
        for source in copy.sources
        if not (repo / source).exists() and not list(repo.glob(source))
    ]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _extras(words: tuple[str, ...]) -> list[str]:
    targets = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
    return [
        extra.strip()
        for target in targets
        for group in re.findall(r"\[([^\]]*)\]$", target)
        for extra in group.split(",")
    ]


def command_problems(instructions: list[Instruction], repo: Path) -> list[str]:
    """Modules, scripts and console scripts that RUN, CMD and ENTRYPOINT name."""
    problems, copy_list = [], copies(instructions)
    for ins in instructions:
        if ins.kind not in {"RUN", "CMD", "ENTRYPOINT"}:
            continue
        earlier = [
            c
            for c in copy_list
            if c.instruction.stage == ins.stage and c.instruction.line < ins.line
        ]
        for cmd in commands(ins):
            program, rest = posixpath.basename(cmd.words[0]), list(cmd.words[1:])
            where = f"line {ins.line}: {' '.join(cmd.words)[:80]}"
            if re.fullmatch(r"python[0-9.]*", program):
                if rest[:1] == ["-m"] and not _importable(rest[1]):
                    problems.append(f"{where}: module {rest[1]} does not import here")
                elif rest and not rest[0].startswith("-"):
                    script = posixpath.join(cmd.cwd, rest[0])
                    source = origin(script, earlier, repo)
                    if source is None or not source.is_file():
                        problems.append(f"{where}: {script} is not copied from the repository")
            elif program == "pip" and "install" in cmd.words:
                problems += [
                    f"{where}: extra [{e}] is not in pyproject.toml"
                    for e in _extras(cmd.words)
                    if e not in EXTRAS
                ]
            elif ins.kind != "RUN" and not (VENV_BIN / program).exists():
                problems.append(f"{where}: {program} is not a console script of the project's venv")
    for name, value in args(instructions).items():
        if name.endswith("EXTRAS"):
            problems += [
                f"ARG {name}: extra [{e}] is not in pyproject.toml"
                for e in re.split(r"[\s,]+", value)
                if e and e not in EXTRAS
            ]
    final = [i for i in instructions if i.stage == instructions[-1].stage]
    if not any(i.kind in {"CMD", "ENTRYPOINT"} for i in final):
        problems.append("the image has no CMD or ENTRYPOINT")
    return problems


def shadow_problems(instructions: list[Instruction], repo: Path) -> list[str]:
    """Prefect puts the working directory first on sys.path when it loads a flow: a folder there
    named like an installed package hides it."""
    workdir, problems = instructions[-1].workdir, []
    for copy in copies(instructions):
        if copy.instruction.stage != instructions[-1].stage or not copy.from_context:
            continue
        tops = {
            posixpath.relpath(target, workdir).split("/")[0]
            for _, target in placements(copy, repo)
            if (target + "/").startswith(workdir.rstrip("/") + "/")
        }
        problems += [
            f"line {copy.instruction.line}: {workdir}/{name} would hide the installed package"
            for name in sorted(tops & INSTALLED)
        ]
    return problems


def context_problems(repo: Path) -> list[str]:
    patterns = ignored(repo)
    return [
        f".dockerignore does not leave out {name}"
        for name in NEVER_IN_CONTEXT
        if not any(fnmatch.fnmatch(name, p) for p in patterns)
    ]


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def test_every_copied_path_exists(dockerfile: list[Instruction]) -> None:
    assert copy_problems(dockerfile, REPO) == []


def test_every_command_module_script_and_extra_exists(dockerfile: list[Instruction]) -> None:
    assert command_problems(dockerfile, REPO) == []


def test_nothing_in_the_workdir_hides_the_installed_package(dockerfile) -> None:
    assert shadow_problems(dockerfile, REPO) == []


def test_build_context_leaves_out_secrets_and_the_venv() -> None:
    assert context_problems(REPO) == []


def test_the_image_installs_a_wheel_and_checks_it(dockerfile: list[Instruction]) -> None:
    runs = [" ".join(c.words) for i in dockerfile if i.kind == "RUN" for c in commands(i)]
    installs = [r for r in runs if r.startswith("pip install") and "-r" not in r.split()]
    assert installs and not any(" -e" in r or "--editable" in r for r in installs), installs
    assert "python scripts/selfcheck.py" in runs
    copied = {s for c in copies(dockerfile) for s in c.sources}
    assert {"countclip", "tasks", "flows"} <= copied  # the wheel needs all three


BROKEN = """\
FROM python:3.11-slim
ARG EXTRAS="dask nosuchextra"
WORKDIR /src
COPY pyproject.toml nosuchdir ./
RUN pip install '.[dask,gpu]' && python -m countclip.nosuchmodule && python scripts/selfcheck.py
WORKDIR /opt/countclip
COPY countclip ./countclip
COPY . .
CMD ["sh", "-c", "python -m countclip_flows.server_preflight && exec nosuch-server start"]
"""


def test_each_check_reports_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = parse(BROKEN)
    assert copy_problems(broken, REPO) == ["line 4: COPY nosuchdir: not in the repository"]
    problems = "\n".join(command_problems(broken, REPO))
    assert "extra [gpu] is not in pyproject.toml" in problems
    assert "ARG EXTRAS: extra [nosuchextra]" in problems
    assert "module countclip.nosuchmodule does not import here" in problems
    assert "/src/scripts/selfcheck.py is not copied" in problems
    assert "nosuch-server is not a console script" in problems
    assert "server_preflight" not in problems and "[dask]" not in problems
    shadows = shadow_problems(broken, REPO)
    assert any(p.startswith("line 7: /opt/countclip/countclip") for p in shadows), shadows
    assert any(p.startswith("line 8:") for p in shadows), shadows  # `COPY . .` brings it too
    (tmp_path / ".dockerignore").write_text(".git\n.venv/\n")
    assert context_problems(tmp_path) == [
        ".dockerignore does not leave out .env",
        ".dockerignore does not leave out data",
        ".dockerignore does not leave out results",
    ]


LOAD_FLOWS = """
import json, sys
from prefect.utilities.importtools import load_script_as_module
import prefect
loaded = {}
for entrypoint in sys.argv[1:]:
    path, name = entrypoint.split(":")
    flow = getattr(load_script_as_module(path), name)
    assert isinstance(flow, prefect.Flow), (entrypoint, flow)
    loaded[entrypoint] = flow.name
import countclip, countclip.sql
print(json.dumps({"flows": loaded, "countclip": countclip.__file__,
                  "query": countclip.sql.load("candidates.sql")}))
"""


@pytest.mark.slow
def test_image_workdir_loads_every_deployment_flow(dockerfile, tmp_path: Path) -> None:
    copy_list = copies(dockerfile)
    src, work = tmp_path / "src", tmp_path / "work"
    lay_out("/src", [c for c in copy_list if c.instruction.stage == 0], REPO, src)
    lay_out(dockerfile[-1].workdir, copy_list, REPO, work)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # this venv's dependencies, without its editable install of the checkout
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    zipfile.ZipFile(next(wheels.glob("countclip-*.whl"))).extractall(site)
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    entrypoints = sorted({d["entrypoint"] for d in deployments})
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", LOAD_FLOWS, *entrypoints],
        cwd=work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(result["flows"]) == set(entrypoints)
    assert Path(result["countclip"]).is_relative_to(site), result["countclip"]
    assert result["query"] == (REPO / "countclip" / "sql" / "candidates.sql").read_text()
