"""Documents rendered from data are what the committed data renders to: the config reference
(from the models), the results and the README's table (from results/), the scale plan (from
benchmarks/results/). Edit the data or the script, never the page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "script", ["render_config_reference.py", "render_results.py", "render_scale_doc.py"]
)
def test_rendered_document_is_current(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
