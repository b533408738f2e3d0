"""λ schemes against hand-computed values, their edge cases, and the λ stage over parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from countclip.config import LambdaConfig
from countclip.counts import COUNTS
from countclip.data.lambdas import class_frequencies, compute_lambdas, load_lambdas
from countclip.stages.lambdas import run_lambda_stage

# n = 100: n_2 = 60, n_3 = 30, n_4 = 10; counts 5..10 absent.
FREQ = {2: 60, 3: 30, 4: 10}


def test_constant_is_lambda0_everywhere():
    lam = compute_lambdas(FREQ, "constant", lambda0=2.0)
    assert lam == dict.fromkeys(COUNTS, 2.0)


def test_norm_hand_computed():
    # (1 - n_c/n): 1 - .6 = .4, 1 - .3 = .7, 1 - .1 = .9; λ0 = 1
    lam = compute_lambdas(FREQ, "norm")
    assert lam[2] == pytest.approx(0.4)
    assert lam[3] == pytest.approx(0.7)
    assert lam[4] == pytest.approx(0.9)


def test_modal_hand_computed_and_lambda0_scales():
    # n_modal = 60: 60/60 = 1, 60/30 = 2, 60/10 = 6; λ0 = 0.5 halves them
    lam = compute_lambdas(FREQ, "modal", lambda0=0.5)
    assert (lam[2], lam[3], lam[4]) == pytest.approx((0.5, 1.0, 3.0))


def test_log_hand_computed():
    # σ_2 = log2(log2(100/60)) = log2(0.736966) = -0.440331
    # σ_3 = log2(log2(100/30)) = log2(1.736966) =  0.796569
    # σ_4 = log2(log2(100/10)) = log2(3.321928) =  1.732021
    # λ_c = (σ_c - σ_min)/σ_max + 1: 1, 1.236900/1.732021 + 1, 2.172352/1.732021 + 1
    lam = compute_lambdas(FREQ, "log")
    assert lam[2] == pytest.approx(1.0, abs=1e-5)
    assert lam[3] == pytest.approx(1.714137, abs=1e-5)
    assert lam[4] == pytest.approx(2.254229, abs=1e-5)


@pytest.mark.parametrize("scheme", ["constant", "norm", "modal", "log"])
def test_missing_class_gets_the_largest_present_lambda(scheme):
    lam = compute_lambdas({**FREQ, 9: 0}, scheme, lambda0=1.5)
    assert set(lam) == set(COUNTS)
    present_max = max(lam[c] for c in FREQ)
    for c in (5, 6, 7, 8, 9, 10):
        assert lam[c] == pytest.approx(present_max)


@pytest.mark.parametrize("scheme", ["constant", "norm", "modal", "log"])
@pytest.mark.parametrize("freq", [{}, {2: 0, 3: 0}, {5: 40}, {5: 40, 7: 0}])
def test_zero_samples_or_single_class_give_lambda0(scheme, freq):
    # nothing to balance: the literal norm formula would give 0 for a single class (loss off),
    # log2(log2(n / n)) = log2(0) is undefined
    assert compute_lambdas(freq, scheme, lambda0=0.7) == dict.fromkeys(COUNTS, 0.7)


def test_sigma_max_zero_gives_lambda0():
    # two equal classes: n/n_c = 2, log2(2) = 1, σ = log2(1) = 0 for both -> σ_max = 0
    assert compute_lambdas({2: 50, 3: 50}, "log") == dict.fromkeys(COUNTS, 1.0)
    # the other schemes are defined there
    assert compute_lambdas({2: 50, 3: 50}, "norm")[2] == pytest.approx(0.5)
    assert compute_lambdas({2: 50, 3: 50}, "modal")[3] == pytest.approx(1.0)


def test_equal_classes_log_is_flat_and_json_keys_work():
    lam = compute_lambdas({str(c): 10 for c in (2, 3, 4, 5)}, "log")
    assert all(v == pytest.approx(1.0) for v in lam.values())


def test_bad_input_raises():
    with pytest.raises(ValueError, match="scheme"):
        compute_lambdas(FREQ, "sqrt")
    with pytest.raises(ValueError, match="negative"):
        compute_lambdas({2: -1}, "norm")
    with pytest.raises(ValueError, match="lambda0"):
        compute_lambdas(FREQ, "norm", lambda0=-1)


def _results(path: Path) -> Path:
    """A results.parquet like the download stage writes: status per sample, count column."""
    rows = [
        (2, "success"),
        (2, "success"),
        (2, "success"),
        (2, "failed_to_download"),
        (3, "success"),
        (3, "failed_to_resize"),
        (4, "success"),
        (10, "success"),
        (1, "success"),
        (11, "success"),
        (None, "success"),
        (7, "missing"),
    ]
    table = pa.table(
        {
            "SAMPLE_ID": list(range(len(rows))),
            "count": pa.array([c for c, _ in rows], pa.int64()),
            "status": [s for _, s in rows],
        }
    )
    pq.write_table(table, path)
    return path


def test_class_frequencies_successes_only_counts_2_to_10(tmp_path):
    path = _results(tmp_path / "results.parquet")
    expected = dict.fromkeys(COUNTS, 0) | {2: 3, 3: 1, 4: 1, 10: 1}
    assert class_frequencies(path) == expected
    assert class_frequencies({"outputs": {"results": str(path)}}) == expected
    # a directory of img2dataset-like parquet files (every pass) works too
    shards = tmp_path / "shards" / "pass-0"
    shards.mkdir(parents=True)
    _results(shards / "00000.parquet")
    assert class_frequencies(tmp_path / "shards") == expected


def test_class_frequencies_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet"):
        class_frequencies(tmp_path / "nope.parquet")
    pq.write_table(pa.table({"status": ["success"]}), tmp_path / "common.parquet")
    with pytest.raises(ValueError, match="'count'"):
        class_frequencies(tmp_path / "common.parquet")


def test_lambda_stage_writes_json_png_manifest_and_resumes(tmp_path):
    results = _results(tmp_path / "results.parquet")
    download = {"fingerprint": "abc123", "outputs": {"results": str(results)}}
    cfg = LambdaConfig(scheme="modal", lambda0=1.0)
    manifest = run_lambda_stage(download, cfg, str(tmp_path / "data"))
    body = json.loads(Path(manifest["outputs"]["lambdas"]).read_text())
    assert body["scheme"] == "modal" and body["lambda0"] == 1.0
    assert body["frequencies"]["2"] == 3 and body["frequencies"]["7"] == 0
    assert body["lambdas"]["2"] == pytest.approx(1.0)
    assert body["lambdas"]["3"] == pytest.approx(3.0)
    assert body["lambdas"]["7"] == pytest.approx(3.0)  # missing: largest present λ
    png = Path(manifest["outputs"]["plot"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert manifest["stage"] == "lambdas" and manifest["inputs"] == {"download": "abc123"}
    assert load_lambdas(manifest)[3] == pytest.approx(3.0)
    # resume: same fingerprint -> the same manifest, nothing rewritten
    mtime = png.stat().st_mtime_ns
    assert run_lambda_stage(download, cfg, str(tmp_path / "data")) == manifest
    assert png.stat().st_mtime_ns == mtime
