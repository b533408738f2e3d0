"""The caption count classifier: the shipped model is what its script rebuilds from the labelled
data, the configured operating point is the one chosen on the tune split, the committed quality
result is what the code measures and docs/captions.md shows it, several numbers in a caption
give the right count and span, and the vetoes never rule out a labelled count of the tune split.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from countclip.config import CaptionConfig
from countclip.data.captions.classifier import FEATURE_VERSION, MODEL_FILE, VETOES
from countclip.data.captions.parser import (
    NUMBER_WORDS,
    REJECT_REASONS,
    CaptionParser,
    parse_captions,
)
from countclip.data.captions.quality import (
    file_sha256,
    load_labelled,
    quality_report,
    render_doc,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "laion_number_captions.jsonl"
MODEL = REPO / "countclip" / "data" / "captions" / MODEL_FILE
QUALITY = REPO / "results" / "captions" / "quality.json"


@pytest.fixture(scope="module")
def model() -> dict:
    return json.loads(MODEL.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def report() -> dict:
    return quality_report(DATA)


def test_shipped_model_rebuilds_bit_for_bit(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "train_caption_classifier.py"), "--out", tmp_path],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / MODEL_FILE).read_bytes() == MODEL.read_bytes(), (
        "the shipped model is not what scripts/train_caption_classifier.py builds: rerun it"
    )


def test_model_records_its_training_data_and_is_small_json(model: dict) -> None:
    data = model["training_data"]
    assert data["sha256"] == file_sha256(DATA)
    assert data["path"] == "tests/data/laion_number_captions.jsonl"
    assert data["split"] == "tune"
    tune = [r for r in load_labelled(DATA, "tune") if r.label is not None]
    assert data["captions"] == len(tune)
    assert model["feature_version"] == FEATURE_VERSION
    assert MODEL.stat().st_size <= 10 * 2**20
    assert list(model["weights"]) == sorted(model["weights"])
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    assert "*.json" in package_data["countclip.data.captions"]


def test_configured_operating_point_is_the_one_chosen_on_tune(model: dict) -> None:
    chosen = model["operating_point"]["threshold"]
    assert CaptionConfig().count_threshold == chosen
    assert CaptionParser().threshold == chosen
    assert model["operating_point"]["cv_rejection"] >= 0.90
    for path in sorted((REPO / "configs").glob("*.yaml")):
        captions = (yaml.safe_load(path.read_text()) or {}).get("captions") or {}
        if "count_threshold" in captions:
            assert captions["count_threshold"] == chosen, path.name


def test_committed_quality_result_is_what_the_code_measures(report: dict) -> None:
    committed = json.loads(QUALITY.read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(report)), (
        "results/captions/quality.json is stale: rerun benchmarks/bench_captions.py --quality"
    )


def test_docs_show_the_committed_result() -> None:
    doc = (REPO / "docs" / "captions.md").read_text(encoding="utf-8")
    assert render_doc(doc, json.loads(QUALITY.read_text(encoding="utf-8"))) == doc
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "render_caption_doc.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the labelling rule stays above the generated block, as written
    assert doc.index("## The labelling rule") < doc.index("<!-- caption-quality:start -->")


def test_the_filter_beats_the_naive_regex_on_the_test_split(report: dict) -> None:
    """Reported, and held: on the test split the classifier rejects most non-counts (the naive
    first match rejects none) and is more precise than both baselines."""
    test = report["splits"]["test"]["filters"]
    assert test["naive"]["rejection"] == 0.0
    assert test["classifier"]["rejection"] > test["rules"]["rejection"] + 0.15
    assert test["classifier"]["precision"] > test["rules"]["precision"]
    assert test["classifier"]["precision"] > test["naive"]["precision"]
    for split in report["splits"].values():  # "?" rows are counted, never scored
        for scores in split["filters"].values():
            assert scores["counts"] + scores["noncounts"] + scores["unsure"] == split["rows"]


def test_vetoes_never_rule_out_a_labelled_count_of_the_tune_split(report: dict) -> None:
    """A veto is a rule that is certainly right; on the tune split (where the rules may be
    looked at) none fires on a labelled count. The test split's are only reported."""
    vetoes = report["splits"]["tune"]["vetoes"]
    assert set(vetoes) <= VETOES | {"title"}
    assert {k: v["on_counts"] for k, v in vetoes.items() if v["on_counts"]} == {}
    assert sum(v["on_noncounts"] for v in vetoes.values()) > 50


def test_every_rejection_of_a_labelled_caption_names_a_reason() -> None:
    texts = [r.text for r in load_labelled(DATA)]
    reasons = {why for cc, why in parse_captions(texts, with_reasons=True) if cc is None}
    assert reasons <= set(REJECT_REASONS)
    assert "classifier" in reasons


@pytest.mark.parametrize(
    ("text", "count", "word"),
    [
        ("ten eggs in two rows of five", 10, "ten"),
        ("Three little kittens - three kittens mug", 3, "Three"),
        ("Season Two: three friends on a sofa", 3, "three"),
        ("Two red roses. two red roses on a black background", 2, "Two"),
        ("Two apples — Stock Photo", 2, "Two"),
    ],
)
def test_several_numbers_take_the_counting_one_and_only_its_span_changes(
    text: str, count: int, word: str
) -> None:
    cc, why = CaptionParser().parse(text)
    assert why is None and cc is not None, (text, why)
    assert (cc.count, cc.word) == (count, word)
    assert cc.start == text.index(word)
    for n in NUMBER_WORDS:
        cf = cc.counterfactual(n)
        assert cf[: cc.start] == text[: cc.start]
        assert cf[len(cf) - (len(text) - cc.end) :] == text[cc.end :]
        assert cf[cc.start : len(cf) - (len(text) - cc.end)].lower() == NUMBER_WORDS[n]


def test_the_counterfactual_of_a_caption_with_several_numbers() -> None:
    cc = CaptionParser().parse("ten eggs in two rows of five")[0]
    assert cc.counterfactual(7) == "seven eggs in two rows of five"
    cc = CaptionParser().parse("Season Two: three friends on a sofa")[0]
    assert cc.counterfactual(2) == "Season Two: two friends on a sofa"


@pytest.mark.parametrize(
    "text",
    [
        "two cats and three dogs in the yard",
        "Two men and one woman in lab coats",
        "two cats and two dogs playing",
        "three chairs and twelve plates on the table",
    ],
)
def test_another_count_joined_to_the_count_rejects(text: str) -> None:
    assert CaptionParser().parse(text) == (None, "multiple_counts")


def test_threshold_moves_the_operating_point() -> None:
    text = "Wall Decals Two Red Circles"
    assert CaptionParser(threshold=0.0).parse(text)[0] is not None
    assert CaptionParser(threshold=1.0).parse(text) == (None, "classifier")
    with pytest.raises(ValueError, match="threshold"):
        CaptionParser(threshold=1.5)
    assert CaptionParser.from_config(CaptionConfig(count_threshold=1.0)).threshold == 1.0
