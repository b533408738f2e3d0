"""The real path, rehearsed: configs/laion400m.yaml end to end, offline, at toy scale, through
the command a user runs (``countclip rehearse``), with only the named substitutions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from countclip.synthetic.rehearsal import SUBSTITUTIONS

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_real_config_rehearses_every_stage_offline(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("countclip")
    config = REPO / "configs" / "laion400m.yaml"
    proc = subprocess.run(
        [str(exe), "rehearse", "--config", str(config), "--data-root", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    for number, substitution in enumerate(SUBSTITUTIONS, 1):
        assert f"substitution {number}: {substitution}" in proc.stderr
    result = json.loads(proc.stdout[proc.stdout.index("{") :])

    # metadata: Re-LAION's column names, over HTTP, through a brace range of parts
    metadata = result["metadata"]
    assert metadata["config"]["columns"]["TEXT"] == "caption"
    assert (
        "127.0.0.1" in metadata["config"]["source"]
        and "{00000..00002}" in (metadata["config"]["source"])
    )
    assert metadata["stats"]["source_files"] == 3 and metadata["stats"]["kept"] > 20
    # captions: real LAION text through the configured filter, with spans
    counting = pq.read_table(result["captions"]["outputs"]["counting"]).to_pylist()
    assert all(r["TEXT"][r["number_start"] : r["number_end"]] == r["number_word"] for r in counting)
    # downloads: real photographs; dead links recorded, not fatal
    assert result["counting"]["stats"]["successes"] > 10
    assert result["common"]["stats"]["failures_by_error"].get("http_404", 0) > 0
    # verify: the config's detector (random weights) decided every counting image
    checked = result["checked"]
    assert checked["config"]["counter"] == "torchvision"
    assert checked["config"]["detector"] == "fasterrcnn_resnet50_fpn_v2"
    assert checked["stats"]["samples"] == result["counting"]["stats"]["successes"]
    # training: the paper's model and loss, bf16 autocast, context 77, two steps
    train = result["train"]
    model = train["config"]["model"]
    assert (model["name"], model["quick_gelu"]) == ("ViT-B-32-quickgelu", True)
    assert train["config"]["count_loss"] == "count_plus" and train["config"]["precision"] == "bf16"
    assert train["stats"]["steps"] == 2 and train["stats"]["counting_train"] > 0
    # CountBench in its real format from the loopback server, one link dead
    bench = result["countbench"]["stats"]
    assert bench["dead_by_error"] == {"http_404": 1} and bench["evaluated_main"] >= 30
    report = Path(result["report"]["markdown"]).read_text()
    assert "countclip" in report and "base" in report
