"""CountBench metrics (exact, on hand-made embeddings), caption rewriting, zero-shot, the report,
and an end-to-end evaluation of a real tiny open_clip model on the synthetic CountBench served
over loopback and downloaded by img2dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from countclip.counts import COUNTS
from countclip.evaluation.countbench_scores import metrics_from_similarities
from countclip.evaluation.report import comparison_table, write_comparison_report

torch.set_num_threads(1)


def countbench_metrics(images: torch.Tensor, captions: torch.Tensor, true: list[int]) -> dict:
    """The scoring rule on embeddings: cosine similarity of each image (N, D) with its row's
    nine captions (N, 9, D), then :func:`metrics_from_similarities` (what the stage does)."""
    img = torch.nn.functional.normalize(images.double(), dim=-1)
    cap = torch.nn.functional.normalize(captions.double(), dim=-1)
    return metrics_from_similarities(torch.einsum("nd,nkd->nk", img, cap), true)


def _onehot(index: list[int], dim: int = 9) -> torch.Tensor:
    return torch.eye(dim)[torch.tensor(index)]


# --------------------------------------------------------------------------- metrics


def test_metrics_exact_on_hand_made_embeddings() -> None:
    # Caption for count c points along axis c-2 (the same for every row); each image points
    # at the count we want it to be predicted as.
    captions = torch.eye(9).expand(5, 9, 9)
    true = [2, 2, 3, 4, 10]
    predicted = [2, 3, 3, 2, 10]
    images = _onehot([p - 2 for p in predicted]) * 3.0 + 0.01  # scale/offset must not matter
    m = countbench_metrics(images, captions, true)
    assert m["n"] == 5
    assert m["predictions"] == predicted
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["per_count_accuracy"] == {
        2: 0.5,
        3: 1.0,
        4: 0.0,
        5: None,
        6: None,
        7: None,
        8: None,
        9: None,
        10: 1.0,
    }
    assert m["mean_per_class_recall"] == pytest.approx((0.5 + 1.0 + 0.0 + 1.0) / 4)
    expected = [[0] * 9 for _ in range(9)]
    expected[0][0] = 1  # true 2 -> 2
    expected[0][1] = 1  # true 2 -> 3
    expected[1][1] = 1  # true 3 -> 3
    expected[2][0] = 1  # true 4 -> 2
    expected[8][8] = 1  # true 10 -> 10
    assert m["confusion"] == expected
    assert m["support"] == {2: 2, 3: 1, 4: 1, 5: 0, 6: 0, 7: 0, 8: 0, 9: 0, 10: 1}
    assert m["counts"] == list(COUNTS)


def test_metrics_per_row_captions_and_balanced_recall() -> None:
    # Per-row caption features differ: row k's captions are a random rotation, and the image
    # equals the caption of its predicted count in that row's own frame.
    gen = torch.Generator().manual_seed(0)
    n, d = 90, 16
    captions = torch.randn(n, 9, d, generator=gen)
    true = [COUNTS[i % 9] for i in range(n)]
    # Perfect on counts 2..4 (30 rows), always "two" on the rest (60 rows).
    pred_idx = [i % 9 if i % 9 < 3 else 0 for i in range(n)]
    images = torch.stack([captions[i, pred_idx[i]] for i in range(n)])
    m = countbench_metrics(images, captions, true)
    assert m["accuracy"] == pytest.approx(30 / 90)
    assert m["mean_per_class_recall"] == pytest.approx(3 / 9)
    assert m["confusion"][5][0] == 10 and m["confusion"][5][5] == 0
    assert sum(map(sum, m["confusion"])) == 90


def test_ties_go_to_the_smallest_count_and_errors() -> None:
    m = metrics_from_similarities(torch.zeros(2, 9), [5, 2])
    assert m["predictions"] == [2, 2]
    assert m["accuracy"] == 0.5
    empty = metrics_from_similarities(torch.zeros(0, 9), [])
    assert empty["accuracy"] is None and empty["mean_per_class_recall"] is None
    with pytest.raises(ValueError, match="not among the evaluated counts"):
        metrics_from_similarities(torch.zeros(1, 9), [11])
    with pytest.raises(ValueError, match=r"\(N, 9\)"):
        metrics_from_similarities(torch.zeros(1, 8), [2])
    with pytest.raises(ValueError, match="similarity rows"):
        metrics_from_similarities(torch.zeros(2, 9), [2])
    # A subset of counts works too (e.g. 2..4 only).
    sub = metrics_from_similarities(torch.tensor([[0.0, 1.0, 0.0]]), [3], counts=[2, 3, 4])
    assert sub["accuracy"] == 1.0 and sub["confusion"] == [[0, 0, 0], [0, 1, 0], [0, 0, 0]]


# --------------------------------------------------------------------------- report


def _fake_result(label: str, acc: list[float], zs: float) -> dict:
    per = dict(zip(COUNTS, acc, strict=True))
    return {
        "label": label,
        "model": {"name": "countclip-tiny", "checkpoint": None, "pretrained": None},
        "countbench": {
            "accuracy": sum(acc) / 9,
            "mean_per_class_recall": sum(acc) / 9,
            "per_count_accuracy": {str(k): v for k, v in per.items()},  # as read from JSON
            "evaluated": 500,
            "evaluated_main": 500,
            "rows_main": 540,
            "message": "evaluated 500 of 540",
            "timing": {"images_per_second": 100.0, "text_share": 0.1},
        },
        "zero_shot": {"shape": {"accuracy": zs, "mean_per_class_recall": zs}},
    }


def test_comparison_report(tmp_path: Path) -> None:
    base = _fake_result("baseline", [0.5] + [0.0] * 8, 0.9)
    ours = _fake_result("countclip", [0.5, 0.25] + [0.125] * 7, 0.8)
    table = comparison_table({"baseline": base, "countclip": ours})
    lines = table.splitlines()
    assert lines[0] == "| metric | baseline | countclip | Δ countclip − baseline |"
    assert "| accuracy, count 3 | 0.0% | 25.0% | +25.0 pp |" in lines
    assert "| zero-shot shape: accuracy | 90.0% | 80.0% | -10.0 pp |" in lines
    assert "| images evaluated | 500 of 540 | 500 of 540 |  |" in lines
    out = write_comparison_report({"baseline": base, "countclip": ours}, tmp_path / "report")
    text = Path(out["markdown"]).read_text()
    assert table in text and "per_count.png" in text
    assert Path(out["per_count_png"]).stat().st_size > 1000
    summary = json.loads(Path(out["json"]).read_text())
    assert summary["models"]["countclip"]["per_count_accuracy"]["3"] == 0.25
    with pytest.raises(ValueError):
        comparison_table({})


# --------------------------------------------------------------------------- captions


@pytest.fixture(scope="module")
def tiny():
    from countclip.training.model import TINY_MODEL, load_model

    torch.manual_seed(0)
    return load_model(TINY_MODEL, None, "cpu")


LONG = (
    "In this wonderfully detailed illustration drawn by a talented artist for a children's "
    "picture book we can clearly see Seven purple hexagons and two dogs scattered around."
)


def test_long_caption_keeps_its_number_word(tiny) -> None:
    from countclip.evaluation.countbench_scores import count_captions

    _, _, tokenizer = tiny
    assert len(tokenizer.encode(LONG)) + 2 > tokenizer.context_length  # would be truncated
    captions = count_captions(LONG, 7, tokenizer)
    assert captions is not None and len(captions) == 9
    words = ["Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten"]
    for word, caption in zip(words, captions, strict=True):
        assert f"{word} purple hexagons" in caption  # the labelled word, case kept
        assert len(tokenizer.encode(caption)) + 2 <= tokenizer.context_length
        assert caption in LONG.replace("Seven", word)  # a crop of the rewritten caption
    assert len(set(captions)) == 9
    # The other number ("two dogs") is left alone; the labelled one is what changes.
    short = count_captions("Three cats and two dogs", 3, tokenizer)
    assert short[0] == "Two cats and two dogs" and short[8] == "Ten cats and two dogs"
    assert count_captions("a cat", 3, tokenizer) is None


def test_trimmed_text_encoding_is_exact(tiny) -> None:
    from countclip.training.encoders import encode_texts

    model, _, tokenizer = tiny
    texts = ["two stars", LONG, "x", "Nine red circles on the table."] * 3
    fast = encode_texts(model, tokenizer, texts, 5, torch.device("cpu"))
    slow = encode_texts(model, tokenizer, texts, 5, torch.device("cpu"), trim=False)
    assert fast.shape == (12, 128)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- zero-shot


def test_zero_shot_on_the_worlds_clip_benchmark_folders(tiny, tmp_path: Path) -> None:
    from countclip.evaluation.zeroshot import zero_shot_eval
    from countclip.synthetic.zero_shot_sets import synthetic_samples, write_zero_shot_sets

    model, preprocess, tokenizer = tiny
    datasets = write_zero_shot_sets(tmp_path / "zs", per_class=2, image_size=48)
    assert set(datasets) == {"shape", "colour", "shape_colour"}
    assert (Path(datasets["shape"]) / "classnames.txt").read_text().splitlines()[0] == "circles"
    res = zero_shot_eval(model, preprocess, tokenizer, datasets)
    for task in res.values():
        classes = len(task["classes"])
        assert classes in (8, 64) and task["n"] == 2 * classes
        assert 0.0 <= task["accuracy"] <= 1.0
        recalls = [v for v in task["per_class_recall"].values() if v is not None]
        assert task["mean_per_class_recall"] == pytest.approx(sum(recalls) / len(recalls))
    # the folder holds exactly the rendered test scenes (PNG is lossless)
    import webdataset as wds

    shards = sorted(str(p) for p in (Path(datasets["shape"]) / "test").glob("*.tar"))
    stored = [s["png"] for s in wds.WebDataset(shards, shardshuffle=False, empty_check=False)]
    assert len(stored) == 16
    first, _ = next(synthetic_samples("shape", 2, 48))
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(stored[0])).tobytes() == first.tobytes()
    validation = zero_shot_eval(model, preprocess, tokenizer, datasets, split="validation")
    assert validation["shape"]["n"] == 16
    with pytest.raises(FileNotFoundError, match=r"classnames\.txt"):
        zero_shot_eval(model, preprocess, tokenizer, {"nothing": tmp_path})


def test_zero_shot_validation_scenes_are_not_the_test_scenes() -> None:
    """Tuning on the validation scenes must not see the reported check's images."""
    from countclip.synthetic.zero_shot_sets import TEST_SEED, VALIDATION_SEED, synthetic_samples

    for task in ("shape", "colour"):
        test = list(synthetic_samples(task, 3, 32, TEST_SEED))
        val = list(synthetic_samples(task, 3, 32, VALIDATION_SEED))
        assert [label for _, label in test] == [label for _, label in val]
        test_pixels = {image.tobytes() for image, _ in test}
        assert not test_pixels & {image.tobytes() for image, _ in val}


# --------------------------------------------------------------------------- end to end


SLOW = pytest.mark.slow  # img2dataset start-up (~8 s) + download: > 20 s on a loaded machine


@pytest.fixture(scope="module")
def countbench_manifest(tmp_path_factory):
    """Synthetic CountBench (3 per count) served on loopback, plus a dead URL, a long caption
    and a supplement row, downloaded by the real img2dataset stage."""
    from countclip.config import DownloadConfig, EvalConfig, WorldConfig
    from countclip.stages.countbench import run_countbench_stage
    from countclip.synthetic import ImageServer, write_countbench

    root = tmp_path_factory.mktemp("countbench")
    world = WorldConfig(countbench_per_count=3, misbehave_fraction=0.0)
    with ImageServer(world) as srv:
        path = write_countbench(root / "CountBench.json", world, srv.base_url)
        rows = json.loads(path.read_text())
        rows[0]["image_url"] += "&fail=404"  # a dead link
        rows[1]["text"] = LONG.replace("Seven", "Two")  # row 1 is a count-2 row; crop kept
        rows.append({**rows[5], "text": "A caption without its number"})  # unlocated
        path.write_text(json.dumps(rows))
        supplement = root / "supplement.json"
        supplement.write_text(json.dumps([{**rows[0], "image_url": rows[2]["image_url"]}]))
        cfg = EvalConfig(countbench=str(path), supplement=str(supplement), batch_size=8)
        # Generous timeout: the machine is shared and loaded; 404s fail at once anyway.
        dl = DownloadConfig(processes_count=1, thread_count=8, timeout=30, retry_failed_passes=1)
        manifest = run_countbench_stage(cfg, dl, str(root / "data"))
        again = run_countbench_stage(cfg, dl, str(root / "data"))  # resume = cache hit
    assert again == manifest
    return manifest, cfg, root


@SLOW
def test_countbench_stage_reports_dead_urls(countbench_manifest) -> None:
    manifest, _, _ = countbench_manifest
    assert manifest["stage"] == "countbench"
    assert manifest["stats"]["rows"] == 29 and manifest["stats"]["rows_main"] == 28
    assert manifest["stats"]["rows_supplement"] == 1
    assert manifest["stats"]["unlocated"] == [27]
    assert manifest["stats"]["dead_urls"] == 1 and manifest["stats"]["dead_by_error"] == {
        "http_404": 1
    }
    assert manifest["stats"]["evaluated"] == 27 and manifest["stats"]["evaluated_main"] == 26
    assert manifest["stats"]["message"].startswith("evaluated 26 of 28 (+1 of 1 supplement rows)")
    dead = pq.read_table(manifest["outputs"]["dead_urls"]).to_pylist()
    assert [(d["SAMPLE_ID"], d["error_class"]) for d in dead] == [(0, "http_404")]
    assert "fail=404" in dead[0]["URL"]
    rows = pq.read_table(manifest["outputs"]["rows"])
    assert rows.column_names[:4] == ["SAMPLE_ID", "URL", "TEXT", "number"]
    first = rows.slice(2, 1).to_pylist()[0]
    assert first["TEXT"][first["number_start"] : first["number_end"]].lower() == "two"


@SLOW
def test_evaluate_tiny_model_end_to_end(countbench_manifest, tiny, tmp_path: Path) -> None:
    from countclip.evaluation.countbench_scores import evaluate_countbench
    from countclip.stages.evaluate import run_evaluation_stage
    from countclip.training.model import TINY_MODEL, save_checkpoint_for_open_clip

    manifest, cfg, root = countbench_manifest
    model, preprocess, tokenizer = tiny
    res = evaluate_countbench(model, preprocess, tokenizer, manifest, tmp_path / "a", batch_size=8)
    assert res["evaluated"] == 27 and res["n"] == 27
    assert res["message"] == "evaluated 26 of 28 (+1 supplement)"
    assert sum(map(sum, res["confusion"])) == 27
    assert res["cropped_captions"] == 1  # the long caption, cropped around its number
    assert res["timing"]["captions"] == 27 * 9
    assert res["timing"]["encoded_captions"] <= 27 * 9
    preds = pq.read_table(res["outputs"]["predictions"]).to_pandas()
    assert len(preds) == 27 and preds["correct"].mean() == pytest.approx(res["accuracy"])
    sims = torch.from_numpy(np.stack(preds["similarities"].to_numpy())).float()
    assert (torch.tensor(COUNTS)[sims.argmax(1)] == torch.tensor(preds["predicted"])).all()
    for name in ("confusion_png", "per_count_png", "results"):
        assert Path(res["outputs"][name]).stat().st_size > 0
    # Deduplication and trimming change the cost, not the answer.
    naive = evaluate_countbench(
        model, preprocess, tokenizer, manifest, tmp_path / "b", dedupe=False, trim=False
    )
    assert naive["timing"]["encoded_captions"] == 27 * 9
    naive_sims = pq.read_table(naive["outputs"]["predictions"]).column("similarities")
    torch.testing.assert_close(torch.tensor(naive_sims.to_pylist()), sims, atol=1e-5, rtol=0)

    # The stage: a random-init model and a checkpoint, then the side-by-side report.
    data = str(root / "data")
    ckpt = save_checkpoint_for_open_clip(model, tmp_path / "tiny.pt")
    from countclip.synthetic.zero_shot_sets import write_zero_shot_sets

    datasets = write_zero_shot_sets(tmp_path / "zs", per_class=2, image_size=48)
    small = cfg.model_copy(update={"zero_shot_datasets": datasets})
    a = run_evaluation_stage(
        {"name": TINY_MODEL, "checkpoint": str(ckpt), "label": "tiny-ckpt"}, manifest, small, data
    )
    b = run_evaluation_stage(
        {"name": TINY_MODEL, "checkpoint": None, "label": "random", "seed": 1},
        manifest,
        small,
        data,
    )
    assert a["stage"] == "evaluate" and a["fingerprint"] != b["fingerprint"]
    assert a["stats"]["accuracy"] == pytest.approx(
        res["accuracy"]
    )  # the checkpoint is the same model
    assert a["stats"]["evaluated"] == 27 and set(a["stats"]["zero_shot"]) == set(datasets)
    assert (
        run_evaluation_stage(
            {"name": TINY_MODEL, "checkpoint": str(ckpt), "label": "tiny-ckpt"},
            manifest,
            small,
            data,
        )
        == a
    )
    results = {
        m["stats"]["label"]: json.loads(Path(m["outputs"]["results"]).read_text()) for m in (a, b)
    }
    # a single cue that guesses the odd rows only: the even ones are "cue-blind"
    cue_scenes = {
        "true": [2] * 40,
        "predicted": {"spread": [3 if i % 2 == 0 else 2 for i in range(40)]},
    }
    report = write_comparison_report(
        results,
        tmp_path / "report",
        pairs=[("random", "tiny-ckpt")],
        cues={"spread": 0.125},
        cue_scenes=cue_scenes,
    )
    assert "| metric | tiny-ckpt | random | Δ random − tiny-ckpt |" in report["table"]
    assert "| images evaluated | 26 of 28 (+1) | 26 of 28 (+1) |  |" in report["table"]
    # The Prefect tasks pass stage manifests: they stand for the results.json they point to.
    assert report["table"].startswith(comparison_table({"tiny-ckpt": a, "random": b}))
    # the paired comparison is computed on the same images, from the predictions
    preds = {
        label: pq.read_table(r["countbench"]["outputs"]["predictions"]).to_pydict()
        for label, r in results.items()
    }
    diff = np.mean(preds["random"]["correct"]) - np.mean(preds["tiny-ckpt"]["correct"])
    same_images = f"**random − tiny-ckpt** on the same 27 images: {100 * diff:+.1f} points"
    assert same_images in report["table"]
    even = {
        label: [ok for i, ok in zip(p["SAMPLE_ID"], p["correct"], strict=True) if i % 2 == 0]
        for label, p in preds.items()
    }
    blind_diff = np.mean(even["random"]) - np.mean(even["tiny-ckpt"])
    blind = f"On the {len(even['random'])} of them whose count no single-cue classifier guesses"
    assert f"{blind}: {100 * blind_diff:+.1f} points" in report["table"]
    assert "McNemar p = " in report["table"] and "| spread | 12.5% |" in report["table"]


def test_model_ref_from_train_manifest() -> None:
    from countclip.evaluation.countbench_scores import model_ref_from_train_manifest

    manifest = {
        "stage": "train",
        "fingerprint": "abc",
        "outputs": {"checkpoint": "/x/best.pt", "last": "/x/last.pt"},
        "config": {"model": {"name": "countclip-tiny", "pretrained": "openai"}},
    }
    assert model_ref_from_train_manifest(manifest, "ours") == {
        "name": "countclip-tiny",
        "checkpoint": "/x/best.pt",
        "pretrained": None,
        "label": "ours",
        "fingerprint": "abc",
    }


@SLOW
def test_an_evaluation_of_too_few_images_is_an_error_and_never_cached(tmp_path: Path) -> None:
    """Every CountBench URL dead: the stage raises naming evaluate.min_images and writes no
    manifest, so the rerun after the links are back downloads them instead of a cache hit."""
    from countclip.config import DownloadConfig, EvalConfig, WorldConfig
    from countclip.evaluation.countbench import TooFewImages
    from countclip.stages.base import read_manifest
    from countclip.stages.countbench import plan_countbench_stage, run_countbench_stage
    from countclip.synthetic import ImageServer, write_countbench

    world = WorldConfig(countbench_per_count=2, misbehave_fraction=0.0)
    dl = DownloadConfig(processes_count=1, thread_count=8, timeout=30, retry_failed_passes=0)
    with ImageServer(world) as srv:
        path = write_countbench(tmp_path / "CountBench.json", world, srv.base_url)
        good = json.loads(path.read_text())
        path.write_text(
            json.dumps([{**r, "image_url": r["image_url"] + "&fail=404"} for r in good])
        )
        dead = EvalConfig(countbench=str(path))
        with pytest.raises(TooFewImages, match=r"evaluate.min_images: 0 of 18"):
            run_countbench_stage(dead, dl, str(tmp_path / "data"))
        assert (
            read_manifest(plan_countbench_stage(dead, dl, str(tmp_path / "data")).directory) is None
        )
        path.write_text(json.dumps(good))  # the links are back
        manifest = run_countbench_stage(
            EvalConfig(countbench=str(path)), dl, str(tmp_path / "data")
        )
    assert manifest["stats"]["evaluated_main"] == 18


@SLOW
def test_evaluation_below_the_minimum_share_is_an_error(countbench_manifest, tmp_path) -> None:
    from countclip.evaluation.countbench import TooFewImages
    from countclip.stages.evaluate import plan_evaluation_stage, run_evaluation_stage
    from countclip.training.model import TINY_MODEL

    manifest, cfg, _ = countbench_manifest  # 26 of 28 main rows evaluated
    strict = cfg.model_copy(update={"min_images": 1.0, "zero_shot": False})
    ref = {"name": TINY_MODEL, "checkpoint": None, "pretrained": None, "label": "base"}
    with pytest.raises(TooFewImages, match="26 of 28"):
        run_evaluation_stage(ref, manifest, strict, str(tmp_path))
    assert plan_evaluation_stage(ref, manifest, strict, str(tmp_path)).completed() is None
