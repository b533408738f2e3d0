"""The preflight: a run that would fail on a missing resource fails in seconds, before its
first stage, with one message naming every setting to change."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from countclip.config import PipelineConfig
from countclip.preflight import PreflightError, preflight
from countclip.yamlconfig import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_weight_caches(tmp_path, monkeypatch) -> None:
    """Nothing cached: the checks must not find weights a developer downloaded once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(exc: pytest.ExceptionInfo[PreflightError]) -> set[str]:
    return {p.setting for p in exc.value.problems}


def test_the_real_config_offline_names_every_missing_resource_in_seconds(tmp_path) -> None:
    cfg = load_config(REPO / "configs" / "laion400m.yaml", {"data_root": str(tmp_path / "d")})
    started = time.monotonic()
    with pytest.raises(PreflightError) as info:
        preflight(cfg, "retrain")
    assert time.monotonic() - started < 30
    assert {
        "metadata.source",  # hf:// with HF_HUB_OFFLINE=1
        "verify.weights",  # no detector weights in torchvision's cache
        "train.model.pretrained",  # OpenAI's weights not cached, hub offline
        "evaluate.countbench",  # the public URL does not answer offline
        "train.device",  # cuda on a machine without a GPU
    } <= _settings(info)
    text = str(info.value)
    assert text.startswith("preflight:") and "ViT-B-32-quickgelu 'openai'" in text


def test_missing_detector_weights_and_unknown_tag_are_named(tmp_path) -> None:
    cfg = PipelineConfig(
        data_root=str(tmp_path),
        verify={"counter": "torchvision", "weights": str(tmp_path / "detector.pth")},
        train={"model": {"name": "ViT-B-32", "pretrained": "no-such-tag"}},
    )
    with pytest.raises(PreflightError) as info:
        preflight(cfg, "train")
    assert _settings(info) == {"verify.weights", "train.model.pretrained"}
    assert "detector.pth" in str(info.value) and "no pretrained tag of ViT-B-32" in str(info.value)


def test_an_unreachable_countbench_and_an_unwritable_data_root(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    url = f"http://127.0.0.1:{_closed_port()}/CountBench.json"
    cfg = PipelineConfig(data_root=str(blocker / "data"), evaluate={"countbench": url})
    with pytest.raises(PreflightError) as info:
        preflight(cfg, "evaluate")
    assert _settings(info) == {"evaluate.countbench", "data_root"}


def test_what_a_command_does_not_use_is_not_checked(tmp_path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/CountBench.json"
    cfg = PipelineConfig(data_root=str(tmp_path), evaluate={"countbench": url})
    preflight(cfg, "build")  # building never reads CountBench


def test_the_cli_fails_before_any_server_starts(tmp_path) -> None:
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"extends: {REPO / 'configs' / 'synthetic-small.yaml'}\n"
        f"data_root: {tmp_path / 'data'}\n"
        f"verify: {{counter: torchvision, weights: {tmp_path / 'missing.pth'}}}\n"
    )
    exe = Path(sys.executable).with_name("countclip")
    started = time.monotonic()
    proc = subprocess.run(
        [str(exe), "build", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert time.monotonic() - started < 30
    assert "verify.weights" in proc.stderr and "missing.pth" in proc.stderr
    assert "temporary server" not in proc.stderr and not (tmp_path / "data").exists()
