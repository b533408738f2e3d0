"""The project's PNGs: each function writes a real PNG atomically (no temp file left behind)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from countclip.plots import (
    plot_class_frequencies,
    plot_confusion_matrix,
    plot_loss_curves,
    plot_per_count_accuracy,
)


def _is_png(path: Path) -> bool:
    with Image.open(path) as image:
        return image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def _no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_class_frequencies_png(tmp_path: Path) -> None:
    out = plot_class_frequencies(
        {2: 650, 3: 200, 4: 80, 10: 5}, {2: 0.35, 3: 1.1, 4: 1.4, 10: 2.0}, tmp_path / "f.png"
    )
    assert out == tmp_path / "f.png"
    assert _is_png(out)
    assert _no_temp_files(tmp_path)


def test_loss_curves_png_with_sparse_validation_and_torn_last_line(tmp_path: Path) -> None:
    rows = [{"step": s, "contrastive_loss": 3.0 / s, "count_loss": 2.0 / s} for s in range(1, 21)]
    rows[9]["val_count_acc"] = 0.25
    rows[19]["val_count_acc"] = 0.4
    metrics = tmp_path / "metrics.jsonl"
    # A crashed writer can leave a torn last line: the plot still renders.
    metrics.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 21, "contr')
    assert _is_png(plot_loss_curves(metrics, tmp_path / "loss.png"))
    without_val = tmp_path / "m2.jsonl"
    without_val.write_text("\n".join(json.dumps(r) for r in rows[:5] if "val_count_acc" not in r))
    assert _is_png(plot_loss_curves(without_val, tmp_path / "loss2.png"))


def test_loss_curves_rejects_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.jsonl"):
        plot_loss_curves(empty, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_confusion_matrix_png_and_shape_check(tmp_path: Path) -> None:
    counts = list(range(2, 11))
    matrix = np.eye(9, dtype=int) * 50 + 1
    assert _is_png(plot_confusion_matrix(matrix, counts, tmp_path / "cm.png", title="tiny"))
    with pytest.raises(ValueError, match="shape"):
        plot_confusion_matrix(np.zeros((3, 3)), counts, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    assert _no_temp_files(tmp_path)


def test_per_count_accuracy_png(tmp_path: Path) -> None:
    per_model = {
        "baseline": {c: 0.1 for c in range(2, 11)},
        "countclip": {c: c / 10 for c in range(2, 11)},
        "partial": {2: 1.0, 3: 0.5},
    }
    assert _is_png(plot_per_count_accuracy(per_model, tmp_path / "pc.png"))
    with pytest.raises(ValueError):
        plot_per_count_accuracy({}, tmp_path / "none.png")
