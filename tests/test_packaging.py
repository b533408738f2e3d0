"""The project installs as a wheel a stranger can use: every package folder is listed, the SQL
ships inside it, the pipeline layer installs under non-generic names, and the installed wheel
(not the checkout) runs ``countclip build`` from a directory outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_package_folder_is_listed() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    mapping = setuptools["package-dir"]
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "countclip").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found <= listed, sorted(found - listed)
    for package, folder in mapping.items():
        assert (REPO / folder / "__init__.py").is_file(), (package, folder)
    assert mapping["countclip_tasks"] == "tasks" and mapping["countclip_flows"] == "flows"
    assert not {"tasks", "flows", "sql"} & listed  # never generic top-level names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout (setuptools reuses an in-tree ``build/``, which
    could carry modules that no longer exist)."""
    source = tmp_path_factory.mktemp("source") / "countclip"
    local = {".git", ".venv", ".pytest-tmp", "build", "data", "results"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == REPO
        return {n for n in names if (top and n in local) or n == "__pycache__"}

    shutil.copytree(REPO, source, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    wheels = list(out.glob("countclip-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_holds_the_queries_and_no_generic_names(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"countclip", "countclip_tasks", "countclip_flows", "countclip_experiments"}
    sql = {Path(n).name for n in names if n.startswith("countclip/sql/")}
    assert {p.name for p in (REPO / "countclip" / "sql").glob("*.sql")} <= sql


@pytest.mark.slow
def test_installed_wheel_runs_a_build_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    """A venv that holds the wheel (its dependencies come from this venv's site-packages,
    added by a .pth file, which does not carry this checkout's editable install) runs the
    console script from a directory with no repository in it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    where = subprocess.run(
        [str(python), "-c", "import countclip, countclip.sql as s; print(countclip.__file__); "
         "print(s.path('candidates.sql'))"],
        check=True, capture_output=True, text=True, cwd=tmp_path,
    ).stdout.split()  # fmt: skip
    assert all(w.startswith(str(site)) for w in where), where
    config = tmp_path / "small.yaml"
    config.write_text((REPO / "configs" / "synthetic-small.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(python), "-m", "countclip_flows.cli", "build", "--config", str(config),
         "--data-root", str(tmp_path / "data"), "--set", "world.rows=300",
         "--set", "download.retry_failed_passes=0", "--json"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifests = json.loads(proc.stdout)
    assert manifests["counting"]["stats"]["successes"] > 0
    assert Path(manifests["lambdas"]["outputs"]["lambdas"]).is_file()
    assert manifests["lambdas"]["directory"].startswith(str(tmp_path / "data"))
