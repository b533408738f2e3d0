"""Shards -> batches: mixing, counterfactual ids, λ, validation split, determinism, cropping."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import open_clip
import pytest
import torch
import webdataset as wds

from countclip.counts import COUNTS
from countclip.data.captions.words import NUMBER_WORDS
from countclip.synthetic.shards import write_synthetic_shards
from countclip.training.loader import (
    Samples,
    ShardError,
    TrainBatches,
    build_train_loader,
    index_shard,
    is_validation,
    load_samples,
    stream_indices,
)
from countclip.training.model import TINY_MODEL
from countclip.training.shard_index import ShardReader
from countclip.training.tokens import crop_span, crop_to_context, token_count
from countclip.training.validation import build_val_loader

torch.set_num_threads(1)
WORDS = {n: NUMBER_WORDS[n] for n in COUNTS}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_synthetic_shards(tmp_path_factory.mktemp("shards"), 60, 120, per_shard=40)


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer(TINY_MODEL)


@pytest.fixture(scope="module")
def transform():
    import torchvision.transforms as T

    return T.Compose([T.Resize(32), T.ToTensor()])


@pytest.fixture(scope="module")
def samples(shards):
    return load_samples(*shards, val_fraction=0.2)


def _dataset(samples, tokenizer, transform, **kw):
    args = dict(lambdas=None, batch_size=10, counting_fraction=0.2, seed=3)
    args.update(kw)
    return TrainBatches(samples, tokenizer, transform, **args)


def test_index_reads_img2dataset_fields(shards, samples):
    counting, common = shards
    assert len(counting) == 2 and len(common) == 3
    assert len(samples.train_counting) + len(samples.val_counting) == 60
    assert len(samples.common) == 120
    ref = samples.train_counting[0]
    assert ref.count in COUNTS
    assert ref.caption[ref.start : ref.end].lower() == WORDS[ref.count]
    assert all(r.count == 0 for r in samples.common)


def test_validation_split_is_stable_hash_of_sample_id(shards, samples):
    again = load_samples(*shards, val_fraction=0.2)
    assert [r.sample_id for r in again.val_counting] == [r.sample_id for r in samples.val_counting]
    assert all(is_validation(r.sample_id, 0.2) for r in samples.val_counting)
    assert not any(is_validation(r.sample_id, 0.2) for r in samples.train_counting)
    share = sum(is_validation(str(i), 0.1) for i in range(20_000)) / 20_000
    assert 0.09 < share < 0.11


def test_batches_mix_at_the_counting_fraction(samples, tokenizer, transform):
    ds = _dataset(samples, tokenizer, transform, batch_size=10, counting_fraction=0.2)
    batch = ds[0]
    assert batch["images"].shape == (10, 3, 32, 32) and batch["texts"].shape == (10, 16)
    assert batch["count_index"].tolist() == [0, 1]
    counting_ids = {r.sample_id for r in samples.train_counting}
    assert [sid in counting_ids for sid in batch["sample_ids"]] == [True] * 2 + [False] * 8
    paper = _dataset(samples, tokenizer, transform, batch_size=64, counting_fraction=1 / 32)
    assert paper.n_counting == 2 and paper.n_common == 62


def test_counterfactual_token_ids(samples, tokenizer, transform):
    number_ids = {n: tokenizer.encode(w)[0] for n, w in WORDS.items()}
    batch = _dataset(samples, tokenizer, transform)[1]
    assert batch["cf_texts"].shape == (2, 8, 16)
    for k in range(2):
        count = int(batch["counts"][k])
        caption = batch["texts"][k]
        cf_counts = batch["cf_counts"][k].tolist()
        assert sorted([*cf_counts, count]) == list(COUNTS)
        position = (caption == number_ids[count]).nonzero()
        assert len(position) == 1
        for j, n in enumerate(cf_counts):
            cf = batch["cf_texts"][k, j]
            differs = (cf != caption).nonzero().flatten().tolist()
            assert differs == position.flatten().tolist()  # only the number token changed
            assert int(cf[position]) == number_ids[n]
    one = _dataset(samples, tokenizer, transform, count_loss="count")
    b1 = one[1]
    assert b1["cf_texts"].shape == (2, 1, 16)
    assert all(b1["cf_counts"][k, 0] != b1["counts"][k] for k in range(2))
    assert torch.equal(b1["cf_counts"], one[1]["cf_counts"])  # seeded by (seed, step, rank)
    drawn = {int(one[s]["cf_counts"][0, 0]) for s in range(30)}
    assert len(drawn) >= 5  # uniform over the other counts, not a fixed pick


def test_lambdas_weights_and_missing_count(samples, tokenizer, transform):
    lambdas = {c: float(c) for c in COUNTS}
    ds = _dataset(samples, tokenizer, transform, lambdas=lambdas, lambda_scale=0.5)
    batch = ds[2]
    assert batch["weights"].tolist() == [0.5 * c for c in batch["counts"].tolist()]
    with pytest.raises(ValueError, match="lambdas"):
        _dataset(samples, tokenizer, transform, lambdas={2: 1.0})


def test_data_order_is_a_function_of_seed_and_step(samples, tokenizer, transform):
    a = _dataset(samples, tokenizer, transform)
    b = _dataset(samples, tokenizer, transform)
    for step in (0, 7):
        x, y = a[step], b[step]
        assert x["sample_ids"] == y["sample_ids"]
        assert torch.equal(x["images"], y["images"]) and torch.equal(x["texts"], y["texts"])
    assert a[0]["sample_ids"] != a[1]["sample_ids"]
    r0 = _dataset(samples, tokenizer, transform, world_size=2, rank=0)[0]["sample_ids"]
    r1 = _dataset(samples, tokenizer, transform, world_size=2, rank=1)[0]["sample_ids"]
    assert not set(r0) & set(r1)
    # each epoch is a permutation: every sample once, then a fresh order
    n = 17
    first, second = stream_indices(0, 0, n, 0, n), stream_indices(0, 0, n, n, n)
    assert sorted(first) == sorted(second) == list(range(n)) and first != second


def test_loader_with_a_worker_matches_in_process(samples, tokenizer, transform):
    kw = dict(batch_size=10, counting_fraction=0.2, seed=3, steps=3)
    plain = list(build_train_loader(samples, tokenizer, transform, None, workers=0, **kw))
    forked = list(build_train_loader(samples, tokenizer, transform, None, workers=1, **kw))
    assert [b["step"] for b in forked] == [0, 1, 2]
    for x, y in zip(plain, forked, strict=True):
        assert torch.equal(x["images"], y["images"]) and torch.equal(x["cf_texts"], y["cf_texts"])
    resumed = list(build_train_loader(samples, tokenizer, transform, None, start_step=2, **kw))
    assert len(resumed) == 1 and resumed[0]["sample_ids"] == plain[2]["sample_ids"]


def test_val_loader_nine_variants(samples, tokenizer, transform):
    batches = list(build_val_loader(samples, tokenizer, transform, batch_size=4))
    assert sum(len(b["counts"]) for b in batches) == len(samples.val_counting)
    b = batches[0]
    assert b["variant_texts"].shape == (len(b["counts"]), 9, 16)
    for k, count in enumerate(b["counts"].tolist()):
        # the true count's variant is the caption itself: number token two..ten in order
        ids = [tokenizer.encode(w)[0] for w in WORDS.values()]
        for j, token in enumerate(ids):
            assert token in b["variant_texts"][k, j].tolist()
        assert count in COUNTS


def test_crop_keeps_the_number_in_a_100_word_caption(tokenizer):
    words = [f"word{i}" for i in range(100)]
    words[80] = "Seven"
    text = " ".join(words)
    start = text.index("Seven")
    cropped, s, e = crop_span(text, start, start + 5, tokenizer)
    assert cropped[s:e] == "Seven" and cropped in text
    assert token_count(cropped, tokenizer) <= 16
    assert token_count(cropped, tokenizer) >= 14  # it uses the context, not just the word
    assert tokenizer.encode("seven")[0] in tokenizer([cropped])[0].tolist()
    # the number right at the end and right at the start
    end_text = " ".join([*words[:99], "three"])
    assert crop_to_context(end_text, len(end_text) - 5, len(end_text), tokenizer).endswith("three")
    assert crop_to_context(text.replace("word0", "two", 1), 0, 3, tokenizer).startswith("two")
    short = "Set of three red stars"
    assert crop_to_context(short, 7, 12, tokenizer) == short
    assert crop_to_context(text, start, start + 5, tokenizer, context_length=77) != text


def _tar(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_bad_counting_json_names_file_and_field(tmp_path):
    path = tmp_path / "bad.tar"
    with wds.TarWriter(str(path)) as sink:
        sink.write(
            {
                "__key__": "000000001",
                "jpg": b"x",
                "txt": "two cats",
                "json": {"SAMPLE_ID": 1, "number_start": 0, "number_end": 3},
            }
        )
    with pytest.raises(ShardError, match=r"bad\.tar.*000000001.*'count'"):
        index_shard(str(path), "counting")
    _tar(
        tmp_path / "span.tar",
        {
            "k.jpg": b"x",
            "k.txt": b"two cats",
            "k.json": json.dumps(
                {"SAMPLE_ID": 1, "count": 2, "number_start": 5, "number_end": 40}
            ).encode(),
        },
    )
    with pytest.raises(ShardError, match="number_start"):
        index_shard(str(tmp_path / "span.tar"), "counting")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 10)
    with pytest.raises(ShardError, match=r"junk\.tar"):
        index_shard(str(tmp_path / "junk.tar"), "common")


def _skewed(samples, rare: int = 3):
    """The same common pool, counting samples skewed 20:1 between two counts; returns the
    samples and the scarce count."""
    by_count: dict[int, list] = {}
    for ref in samples.train_counting:
        by_count.setdefault(ref.count, []).append(ref)
    frequent, scarce = sorted(by_count, key=lambda c: -len(by_count[c]))[:2]
    counting = [by_count[frequent][i % len(by_count[frequent])] for i in range(20 * rare)]
    counting += by_count[scarce][:rare]
    return Samples(counting, samples.val_counting, samples.common), scarce


def test_count_sampling_power_rebalances_counts(samples, tokenizer, transform):
    skewed, scarce = _skewed(samples)
    share = {}
    for power in (1.0, 0.5, 0.0):
        ds = _dataset(skewed, tokenizer, transform, count_sampling_power=power)
        drawn = [ds.counting[i].count for s in range(400) for i in ds.counting_indices(s)]
        share[power] = drawn.count(scarce) / len(drawn)
    # as downloaded: 1 in 21; square-root: 1/(1+sqrt(20)) ~ 0.18; balanced: 1/2
    assert abs(share[1.0] - 1 / 21) < 0.01
    assert abs(share[0.5] - 1 / (1 + 20**0.5)) < 0.04
    assert abs(share[0.0] - 0.5) < 0.05
    # a pure function of (seed, slot): a resumed run or another rank draws the same samples
    again = _dataset(skewed, tokenizer, transform, count_sampling_power=0.0)
    assert again.counting_indices(5) == ds.counting_indices(5) != ds.counting_indices(6)
    # power 1 keeps the paper's reshuffled stream exactly
    plain = _dataset(skewed, tokenizer, transform)
    assert plain.counting_indices(3) == stream_indices(3, 0, len(skewed.train_counting), 6, 2)


def test_augmentation_depends_on_the_step_only_even_across_threads(samples, tokenizer):
    """Prefect's thread runner trains the control and CountCLIP in one process, and torchvision's
    random transforms draw from torch's process-wide generator: a batch must still be a function
    of (seed, step, rank) alone, whatever another run's thread draws meanwhile."""
    import threading

    import torchvision.transforms as T

    augment = T.Compose([T.RandomResizedCrop(32, scale=(0.2, 1.0)), T.ToTensor()])
    image = ShardReader().image(samples.train_counting[0])
    torch.manual_seed(0)
    first = augment(image)
    torch.manual_seed(1)
    assert not torch.equal(first, augment(image))  # the transform really draws random numbers
    steps = range(3)
    expected = {s: _dataset(samples, tokenizer, augment)[s]["images"] for s in steps}
    mismatches: list[tuple[int, int]] = []

    def run(seed: int) -> None:
        ds = _dataset(samples, tokenizer, augment, seed=seed)
        for _ in range(15):
            for s in steps:
                images = ds[s]["images"]
                if seed == 3 and not torch.equal(images, expected[s]):
                    mismatches.append((seed, s))

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (3, 3, 5, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not mismatches


def test_sample_order_is_the_key_order_not_the_tar_order(
    shards, samples, tokenizer, transform, tmp_path
):
    """img2dataset writes samples as its threads finish: the same download twice must still
    give the same batches."""
    counting, common = shards
    shuffled = []
    for path in counting:
        with tarfile.open(path) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar if m.isfile()]
        out = tmp_path / Path(path).name
        with tarfile.open(out, "w") as tar:
            for member, data in reversed(members):
                tar.addfile(member, io.BytesIO(data))
        shuffled.append(str(out))
    again = load_samples(shuffled, common, val_fraction=0.2)
    assert [r.key for r in again.train_counting] == [r.key for r in samples.train_counting]
    a, b = _dataset(samples, tokenizer, transform)[2], _dataset(again, tokenizer, transform)[2]
    assert a["sample_ids"] == b["sample_ids"] and torch.equal(a["images"], b["images"])


@pytest.mark.parametrize("power", [0.0, 1.0])
def test_lambda_mean_matches_the_expected_lambda_under_the_sampling(
    samples, tokenizer, transform, power
) -> None:
    """Schemes compared at matched mean λ: E[λ] of a counting slot equals ``lambda_mean``,
    and the ratios between counts stay the scheme's."""
    from countclip.data.lambdas import compute_lambdas

    freqs: dict[int, int] = {}
    for ref in samples.train_counting:
        freqs[ref.count] = freqs.get(ref.count, 0) + 1
    lambdas = compute_lambdas(freqs, "log")
    kw = dict(lambdas=lambdas, count_sampling_power=power)
    plain = _dataset(samples, tokenizer, transform, **kw).weight_of
    matched_ds = _dataset(samples, tokenizer, transform, lambda_mean=0.5, **kw)
    matched = matched_ds.weight_of
    p = matched_ds.count_probabilities()
    assert sum(p.values()) == pytest.approx(1.0)
    assert sum(p[c] * matched[c] for c in p) == pytest.approx(0.5)
    assert sum(p[c] * plain[c] for c in p) != pytest.approx(0.5)
    ratios = {c: matched[c] / plain[c] for c in plain}
    assert max(ratios.values()) == pytest.approx(min(ratios.values()))
