"""The stage helper: identity (config, upstream, code version), done on disk, one writer."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import shutil
import sys
import time
from pathlib import Path

import pytest

from countclip.config import DownloadConfig, LambdaConfig
from countclip.fingerprints import stage_code
from countclip.stages.base import (
    LOCK_TIMEOUT_ENV,
    MANIFEST_KEYS,
    Stage,
    StageBusy,
    StageOutput,
)

REPO = Path(__file__).resolve().parents[1]
STAGE = Stage("thing", "countclip.data.lambdas")


def _build(text: str = "x"):
    def build(work: Path) -> StageOutput:
        (work / "out.txt").write_text(text)
        return StageOutput(outputs={"out": work / "out.txt"}, stats={"n": 1})

    return build


def test_manifest_has_the_same_keys_and_final_paths(tmp_path: Path) -> None:
    plan = STAGE.plan(tmp_path, config=LambdaConfig())
    manifest = plan.run(_build())
    assert set(manifest) == set(MANIFEST_KEYS) == {
        "stage", "fingerprint", "code_version", "run_id", "directory", "outputs", "inputs",
        "upstream_runs", "upstream_content", "content", "files", "config", "stats", "seconds",
        "written_at",
    }  # fmt: skip
    assert manifest["files"] == {"out.txt": [1, hashlib.sha256(b"x").hexdigest()]}
    assert Path(manifest["outputs"]["out"]) == plan.directory / "out.txt"
    assert Path(manifest["outputs"]["out"]).read_text() == "x"
    assert json.loads((plan.directory / "manifest.json").read_text()) == manifest
    assert plan.run(_build("y")) == manifest  # done: not rebuilt
    assert not [p for p in plan.directory.parent.iterdir() if p.name.endswith(".tmp")]


def test_identity_is_semantic_config_and_upstream(tmp_path: Path) -> None:
    stage = Stage("download-x", "countclip.data.download.passes")
    up = {"fingerprint": "a", "run_id": "1"}
    base = stage.plan(tmp_path, config=DownloadConfig(), upstream={"source": up}).fingerprint
    speed = DownloadConfig(processes_count=9, thread_count=3, stall_timeout=5)
    assert stage.plan(tmp_path, config=speed, upstream={"source": up}).fingerprint == base
    other = DownloadConfig(image_size=128)
    assert stage.plan(tmp_path, config=other, upstream={"source": up}).fingerprint != base
    moved = {"fingerprint": "b", "run_id": "1"}
    assert (
        stage.plan(tmp_path, config=DownloadConfig(), upstream={"source": moved}).fingerprint
        != base
    )


def test_a_stage_is_done_only_while_its_outputs_and_upstream_run_last(tmp_path: Path) -> None:
    up = {"fingerprint": "a", "run_id": "first"}
    plan = STAGE.plan(tmp_path, config=LambdaConfig(), upstream={"up": up})
    first = plan.run(_build())
    Path(first["outputs"]["out"]).unlink()  # an output is gone
    assert plan.completed() is None
    second = plan.run(_build())
    assert second["run_id"] != first["run_id"] and plan.completed() == second
    rerun = {"fingerprint": "a", "run_id": "second"}  # the upstream was recomputed
    stale = STAGE.plan(tmp_path, config=LambdaConfig(), upstream={"up": rerun})
    assert stale.fingerprint == plan.fingerprint and stale.completed() is None
    assert stale.run(_build())["upstream_runs"] == {"up": "second"}


def _hold(root: str, seconds: float, started) -> None:
    stage = Stage("thing", "countclip.data.lambdas")

    def slow(work: Path) -> StageOutput:
        started.set()
        time.sleep(seconds)
        return _build()(work)

    stage.plan(root, config=LambdaConfig()).run(slow)


def test_a_second_writer_waits_then_reuses_or_fails_at_once(tmp_path, monkeypatch) -> None:
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), 4.0, started))
    holder.start()
    try:
        assert started.wait(60)
        plan = STAGE.plan(tmp_path, config=LambdaConfig())
        monkeypatch.setenv(LOCK_TIMEOUT_ENV, "0")
        with pytest.raises(StageBusy, match=r"another run .*pid"):
            plan.run(_build("mine"))
        monkeypatch.delenv(LOCK_TIMEOUT_ENV)
        calls = []
        manifest = plan.run(lambda work: calls.append(1) or _build("mine")(work))
        assert calls == []  # it waited, then found the stage done by the other run
        assert Path(manifest["outputs"]["out"]).read_text() == "x"
    finally:
        holder.join(30)


def _edited_copy(tmp_path: Path, old: str, new: str) -> dict:
    site = tmp_path / "site"
    shutil.copytree(
        REPO / "countclip", site / "countclip", ignore=shutil.ignore_patterns("__pycache__")
    )
    path = site / "countclip" / "data" / "lambdas.py"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    import subprocess

    code = (
        "import json; from countclip.fingerprints import stage_code; "
        "print(json.dumps(stage_code('countclip.data.lambdas')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(site)}, capture_output=True,
        text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_code_version_follows_code_not_prose(tmp_path: Path) -> None:
    here = stage_code("countclip.data.lambdas")
    assert "countclip.data.lambdas" in here and "sql/class_frequencies.sql" in here
    assert "countclip.config" not in here  # its values are hashed, not its source
    reworded = _edited_copy(
        tmp_path / "a", '"""Class frequencies', '"""Class frequencies (reworded)'
    )
    assert reworded == here
    changed = _edited_copy(tmp_path / "b", "    return {c: float(lam.get(c, missing))",
                           "    return {c: 2 * float(lam.get(c, missing))")  # fmt: skip
    assert changed["countclip.data.lambdas"] != here["countclip.data.lambdas"]
    assert {k: v for k, v in changed.items() if k != "countclip.data.lambdas"} == {
        k: v for k, v in here.items() if k != "countclip.data.lambdas"
    }


def test_code_versions_are_computed_safely_from_many_threads() -> None:
    """Two stages plan at once when the demo's fine-tunes start together; CPython 3.11's
    ``ast.parse`` is not safe to run from two threads at once (it failed the demo with "AST
    constructor recursion depth mismatch"), so the code versions are parsed one at a time."""
    from concurrent.futures import ThreadPoolExecutor

    from countclip import fingerprints

    modules = [f"countclip.stages.{name}" for name in ("train", "evaluate", "verify", "world")]
    for _ in range(3):
        fingerprints._stage_code.cache_clear()
        with ThreadPoolExecutor(8) as pool:
            versions = list(pool.map(fingerprints.code_version, modules * 4))
        assert len(set(versions)) == len(modules)
