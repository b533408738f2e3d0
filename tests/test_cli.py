"""The ``countclip`` console script: documented options, --set parsing, config errors, a run."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from countclip.yamlconfig import ConfigError, load_config
from countclip_flows.cli import build_parser, parse_set

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ("build", "train", "evaluate", "demo")


def test_help_documents_every_option(capsys) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    assert set(SUBCOMMANDS) <= set(sub.choices)
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        for action in sub.choices[name]._actions:
            for flag in action.option_strings:
                assert flag in text, f"{name}: {flag} not in --help"
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name}: {action.option_strings} has no help text"


def test_parse_set_nests_and_parses_yaml() -> None:
    assert parse_set(["train.steps=200", "synthetic=false", "train.model.name=ViT-B-32"]) == {
        "train": {"steps": 200, "model": {"name": "ViT-B-32"}},
        "synthetic": False,
    }
    with pytest.raises(ConfigError):
        parse_set(["no-equals-sign"])


def test_bad_config_key_is_a_clear_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "countclip_flows.cli", "build", "--config",
         str(REPO / "configs" / "synthetic-small.yaml"), "--set", "captions.batch_sise=3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "batch_sise" in proc.stderr


def test_library_layer_does_not_import_prefect() -> None:
    code = "import sys, countclip_flows.cli; print('prefect' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.slow
def test_build_runs_locally(tmp_path) -> None:
    """`countclip build` runs the flow in-process on a temporary Prefect server, and leaves no
    process behind (the server is stopped, no img2dataset child outlives its pass)."""
    exe = Path(sys.executable).with_name("countclip")
    proc = subprocess.Popen(
        [str(exe), "build", "--config", str(REPO / "configs" / "synthetic-small.yaml"),
         "--data-root", str(tmp_path / "data"), "--set", "world.rows=200",
         "--set", "download.retry_failed_passes=0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr[-3000:]
    result = json.loads(stdout[stdout.index("{") :])
    assert {"metadata", "captions", "counting", "common", "lambdas"} <= set(result)
    assert (tmp_path / "data" / ".prefect-results").is_dir()
    assert "Error logging to API" not in stderr  # logs were sent before the server stopped
    left = []
    for other in psutil.process_iter():
        with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
            if os.getsid(other.pid) == proc.pid and other.status() != psutil.STATUS_ZOMBIE:
                left.append(" ".join(other.cmdline())[:100])
    assert left == []


def test_config_extends_merges_over_its_base(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("name: base\ntrain:\n  steps: 100\n  lr: 0.001\n")
    variant = "extends: base.yaml\nname: variant\ntrain:\n  steps: 7\n"
    (tmp_path / "variant.yaml").write_text(variant)
    cfg = load_config(tmp_path / "variant.yaml")
    assert (cfg.name, cfg.train.steps, cfg.train.lr) == ("variant", 7, 0.001)


def test_config_extends_cycle_and_missing_base_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"nowhere\.yaml"):
        load_config(tmp_path / "c.yaml")


def test_shipped_bench_config_extends_the_demo() -> None:
    demo = load_config(REPO / "configs" / "demo.yaml")
    bench = load_config(REPO / "configs" / "bench-counting.yaml")
    assert bench.world.rows > demo.world.rows
    assert bench.train.model == demo.train.model
    assert bench.train.count_loss == demo.train.count_loss


@pytest.mark.slow
def test_a_stage_error_is_one_line_naming_the_stage_with_the_traceback_in_a_log(
    tmp_path: Path,
) -> None:
    """A corrupt source parquet: exit 1, a short console (Prefect's progress lines and one line
    naming the stage, its settings, the cause and the log file), the traceback in the log."""
    (tmp_path / "bad.parquet").write_text("not parquet")
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"synthetic: false\ndata_root: {tmp_path / 'data'}\n"
        f"metadata: {{source: {tmp_path / 'bad.parquet'}}}\nverify: {{counter: none}}\n"
    )
    exe = Path(sys.executable).with_name("countclip")
    proc = subprocess.run(
        [str(exe), "build", "--config", str(config)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) <= 15, proc.stderr
    last = proc.stderr.strip().splitlines()
    assert (
        "countclip build: stage metadata failed (settings: metadata.*): MetadataError" in last[-2]
    )
    assert "bad.parquet" in last[-2]
    log = Path(last[-1].split("full traceback: ")[1])
    assert log.parent == tmp_path / "data" / "logs" and "Traceback" in log.read_text()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--set", "train.steps=abc"], "countclip: --set: train.steps: Input should be a valid"),
        (["--set", "train.steps=[1,"], "countclip: --set 'train.steps=[1,': the value is not YAML"),
    ],
)
def test_a_bad_set_value_is_one_line_blaming_the_set(args: list[str], says: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "countclip_flows.cli", "build", "--config",
         str(REPO / "configs" / "synthetic-small.yaml"), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and says in proc.stderr


def test_a_missing_extends_names_the_config_that_points_to_it(tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("extends: base.yaml\n")
    proc = subprocess.run(
        [sys.executable, "-m", "countclip_flows.cli", "build", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert f"{config}: extends: base.yaml: config file not found: {tmp_path / 'base.yaml'}" in (
        proc.stderr
    )
