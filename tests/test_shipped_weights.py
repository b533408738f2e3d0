"""The demo's baseline ships as countclip-tiny's ``synthetic-demo`` tag: its file is what its
provenance says, it loads by tag, it was made from the demo's own world and pretraining, and
``countclip pretrain --export`` makes it again byte for byte (on a machine like the one that
made it: another CPU's floating point trains other weights)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from countclip.config import ModelConfig
from countclip.training.model import create_model
from countclip.training.shipped import machine, provenance, shipped_path
from countclip.yamlconfig import load_config

REPO = Path(__file__).resolve().parents[1]
NAME, TAG = "countclip-tiny", "synthetic-demo"


def test_the_shipped_weights_are_what_their_provenance_says() -> None:
    path = shipped_path(NAME, TAG)
    record = provenance(NAME, TAG)
    assert path is not None and path.is_file() and path.stat().st_size < 20_000_000
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["sha256"]
    demo = load_config(REPO / "configs" / "demo.yaml")
    # Also the guard of README's demo numbers: every world setting, even a new one at a default
    # that changes nothing drawn, moves the world's port (countclip.synthetic.serving), so its
    # URLs, so the common sample (ranked by a hash of SAMPLE_ID and URL) and the demo's numbers.
    assert record["made_from"]["world"] == demo.world.model_dump(mode="json"), (
        "the demo's world settings changed: its URLs and common sample move with them; make "
        "the shipped baseline and README's demo numbers again (docs/contributing.md)"
    )
    assert record["made_from"]["pretrain"]["steps"] == 600
    assert demo.train.model.pretrained == TAG and not demo.pretrain.enabled


def test_the_tag_loads_into_the_tiny_model() -> None:
    model = create_model(ModelConfig(name=NAME, pretrained=TAG))[0]
    weights = next(iter(model.parameters()))
    assert weights.dtype.is_floating_point and float(weights.abs().sum()) > 0


@pytest.mark.slow
@pytest.mark.rebuild
def test_countclip_pretrain_makes_the_shipped_weights_again(tmp_path: Path) -> None:
    made_on, here = provenance(NAME, TAG)["machine"], machine()
    if made_on != here:
        pytest.skip(f"made on {made_on}, this is {here}: another CPU trains other weights")
    exe = Path(sys.executable).with_name("countclip")
    proc = subprocess.run(
        [str(exe), "pretrain", "--config", str(REPO / "configs" / "demo.yaml"),
         "--data-root", str(tmp_path / "data"), "--export", str(tmp_path)],
        capture_output=True, text=True, timeout=1800, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = tmp_path / shipped_path(NAME, TAG).name
    assert again.read_bytes() == shipped_path(NAME, TAG).read_bytes()
