"""Watching a long run: progress on the console (a log line every so often when the console
is no terminal, with the time left), and W&B left as the user set it up on the real path."""

from __future__ import annotations

import logging
import os

import pytest

from countclip.offline import apply_offline_env


def test_progress_is_logged_with_the_time_left_when_no_terminal(
    prefect_harness, monkeypatch, caplog
) -> None:
    from prefect import flow, task

    from countclip_tasks import artifacts

    monkeypatch.setattr(artifacts, "LOG_EVERY", 0.0)

    @task
    def slow_stage() -> None:
        progress = artifacts.ProgressReporter("watch-test", "download counting")
        for i in range(1, 5):
            progress(i / 4, f"pass-0: {i}/4 shards, ~{25 * i}/100 URLs (50/s)")

    @flow
    def watched() -> None:
        slow_stage()

    prefect_logger = logging.getLogger("prefect")  # the tests run Prefect at WARNING
    level = prefect_logger.level
    prefect_logger.setLevel(logging.INFO)
    prefect_logger.addHandler(caplog.handler)
    try:
        watched()
    finally:
        prefect_logger.removeHandler(caplog.handler)
        prefect_logger.setLevel(level)
    lines = [r.getMessage() for r in caplog.records if "download counting:" in r.getMessage()]
    assert any("50% pass-0: 2/4 shards" in line and "left)" in line for line in lines), lines
    assert any("download counting: 100%" in line for line in lines), lines


@pytest.mark.parametrize(("online", "wandb"), [(True, None), (False, "disabled")])
def test_only_the_offline_path_disables_wandb(monkeypatch, online: bool, wandb: str | None):
    """The real path (online) leaves W&B as the user set it up; the synthetic path turns it off."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    apply_offline_env(online=online)
    assert os.environ.get("WANDB_MODE") == wandb
    assert os.environ.get("HF_HUB_OFFLINE") == (None if online else "1")
