"""Zero-shot classification sanity check, CLIP_benchmark style.

Counting bought by forgetting would show up here: a fine-tuned model should still tell the
synthetic world's shapes and colours apart as well as before. The protocol is CLIP_benchmark's
``zeroshot_classification``: for each class, every prompt template is filled with the class name,
encoded, normalised and averaged into one classifier vector; an image's prediction is the class
with the highest similarity; metrics are top-1 accuracy and mean per-class recall (balanced
accuracy).

Two sources of images:
- the synthetic world, rendered in-process (no server, no download): ``task`` "shape" (label =
  shape, colour random) and "colour" (label = colour, shape random), ``per_class`` images each;
- a CLIP_benchmark-format folder (``classnames.txt``, optional
  ``zeroshot_classification_templates.txt``, webdataset shards ``<split>/*.tar`` with ``cls`` and
  ``webp``/``png``/``jpg``) — :func:`write_clip_benchmark_folder` writes the synthetic set in
  that format.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

ZERO_SHOT_ID_BASE = 2_000_000_000_000
"""Zero-shot scenes use ids far above training (0..rows) and CountBench (10**12 + ...)."""

TEST_SEED = 0
"""The evaluation stage's zero-shot scenes (the reported check)."""
VALIDATION_SEED = 1
"""Other scenes of the same tasks, for tuning: a recipe that keeps zero-shot is chosen on these,
never on the reported check's."""

SHAPE_TEMPLATES: tuple[str, ...] = (
    "a photo of {c}.",
    "a set of {c}.",
    "{c} vector icon.",
    "a drawing of {c}.",
)
COLOUR_TEMPLATES: tuple[str, ...] = (
    "a photo of {c} shapes.",
    "a set of {c} objects.",
    "{c} vector icon.",
    "a drawing of {c} things.",
)
DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {c}.",)


def synthetic_task(task: str) -> tuple[list[str], list[str], tuple[str, ...]]:
    """``(class names used in prompts, class keys, templates)`` of a synthetic task."""
    from countclip.synthetic.world import COLOURS, PLURALS, SHAPES

    if task == "shape":
        return [PLURALS[s] for s in SHAPES], list(SHAPES), SHAPE_TEMPLATES
    if task == "colour":
        return list(COLOURS), list(COLOURS), COLOUR_TEMPLATES
    raise ValueError(f"zero-shot task must be 'shape' or 'colour', got {task!r}")


def synthetic_samples(
    task: str, per_class: int, image_size: int = 64, seed: int = TEST_SEED
) -> Iterator[tuple[Any, int]]:
    """``(PIL image, class index)`` pairs of a synthetic task, deterministic in ``seed``.

    Counts are drawn from 1..6 so the check is about kind, not number; the other attribute is
    random so the classifier cannot lean on it.
    """
    from countclip.synthetic import Scene, render_scene
    from countclip.synthetic.world import COLOURS, SHAPES

    _, keys, _ = synthetic_task(task)
    rng = random.Random(f"zero-shot/{task}/{seed}")
    offset = {"shape": 0, "colour": 1}[task]
    for i in range(per_class * len(keys)):
        label = i % len(keys)
        shape = keys[label] if task == "shape" else rng.choice(SHAPES)
        colour = keys[label] if task == "colour" else rng.choice(COLOURS)
        scene = Scene(
            ZERO_SHOT_ID_BASE + 10_000_000 * offset + 100_000 * seed + i,
            rng.randint(1, 6),
            shape,
            colour,
        )
        yield render_scene(scene, image_size), label


def read_clip_benchmark_folder(
    folder: str | os.PathLike[str], split: str = "test"
) -> tuple[list[str], tuple[str, ...], Iterator[tuple[Any, int]]]:
    """``(class names, templates, samples)`` of a CLIP_benchmark webdataset folder."""
    import webdataset as wds

    folder = Path(folder)
    names_file = folder / "classnames.txt"
    if not names_file.is_file():
        raise FileNotFoundError(f"{folder}: not a CLIP_benchmark folder (no classnames.txt)")
    classnames = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    templates_file = folder / "zeroshot_classification_templates.txt"
    templates = DEFAULT_TEMPLATES
    if templates_file.is_file():
        templates = tuple(
            line.strip() for line in templates_file.read_text().splitlines() if line.strip()
        )
    shards = sorted(str(p) for p in (folder / split).glob("*.tar"))
    if not shards:
        raise FileNotFoundError(f"{folder / split}: no .tar shards")
    dataset = (
        wds.WebDataset(shards, shardshuffle=False, empty_check=False)
        .decode("pil")
        .to_tuple("webp;png;jpg;jpeg", "cls")
    )
    return classnames, templates, ((image, int(label)) for image, label in dataset)


def write_clip_benchmark_folder(
    folder: str | os.PathLike[str],
    task: str = "shape",
    per_class: int = 20,
    image_size: int = 64,
    seed: int = TEST_SEED,
    split: str = "test",
) -> Path:
    """Write a synthetic task as a CLIP_benchmark webdataset folder (what
    ``clip_benchmark.webdataset_builder.convert_dataset`` produces) and return the folder."""
    import webdataset as wds

    folder = Path(folder)
    (folder / split).mkdir(parents=True, exist_ok=True)
    names, _, templates = synthetic_task(task)
    (folder / "classnames.txt").write_text("\n".join(names) + "\n")
    (folder / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
    with wds.TarWriter(str(folder / split / "0.tar")) as sink:
        for index, (image, label) in enumerate(
            synthetic_samples(task, per_class, image_size, seed)
        ):
            buffer = io.BytesIO()
            image.save(buffer, format="png")
            sink.write({"__key__": f"s{index:07d}", "png": buffer.getvalue(), "cls": label})
    (folder / split / "nshards.txt").write_text("1\n")
    return folder


@torch.inference_mode()
def zero_shot_classifier(
    model: Any,
    tokenizer: Any,
    classnames: Sequence[str],
    templates: Sequence[str],
    device: torch.device,
) -> torch.Tensor:
    """(D, C) classifier: per class, the re-normalised mean of its normalised prompt embeddings."""
    texts = [t.replace("{c}", name) for name in classnames for t in templates]
    tokens = tokenizer(texts).to(device)
    emb = model.encode_text(tokens, normalize=True).float()
    emb = emb.view(len(classnames), len(templates), -1).mean(dim=1)
    return torch.nn.functional.normalize(emb, dim=-1).T.cpu()


def classification_metrics(
    logits: torch.Tensor, labels: torch.Tensor, classnames: Sequence[str]
) -> dict:
    """Top-1 accuracy and mean per-class recall (over classes that have samples)."""
    pred = logits.argmax(dim=1)
    correct = pred == labels
    per_class: dict[str, float | None] = {}
    for c, name in enumerate(classnames):
        mask = labels == c
        per_class[name] = correct[mask].float().mean().item() if mask.any() else None
    present = [v for v in per_class.values() if v is not None]
    n = int(labels.numel())
    return {
        "n": n,
        "accuracy": correct.float().mean().item() if n else None,
        "mean_per_class_recall": sum(present) / len(present) if present else None,
        "per_class_recall": per_class,
    }


@torch.inference_mode()
def _classify(
    model: Any,
    preprocess: Callable[[Any], torch.Tensor],
    classifier: torch.Tensor,
    samples: Iterable[tuple[Any, int]],
    batch_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    logits, labels, images, batch_labels = [], [], [], []

    def flush() -> None:
        feats = model.encode_image(torch.stack(images).to(device), normalize=True).float().cpu()
        logits.append(feats @ classifier)
        labels.append(torch.tensor(batch_labels))
        images.clear()
        batch_labels.clear()

    for image, label in samples:
        images.append(preprocess(image.convert("RGB")))
        batch_labels.append(label)
        if len(images) == batch_size:
            flush()
    if images:
        flush()
    if not logits:
        return torch.zeros(0, classifier.shape[1]), torch.zeros(0, dtype=torch.long)
    return torch.cat(logits), torch.cat(labels)


def zero_shot_eval(
    model: Any,
    preprocess: Callable[[Any], torch.Tensor],
    tokenizer: Any,
    *,
    tasks: Sequence[str] = ("shape", "colour"),
    per_class: int = 20,
    image_size: int = 64,
    seed: int = TEST_SEED,
    dataset_dir: str | os.PathLike[str] | None = None,
    split: str = "test",
    batch_size: int = 128,
    device: str | torch.device = "cpu",
) -> dict:
    """Zero-shot results per task: ``{task: {"n", "accuracy", "mean_per_class_recall",
    "per_class_recall", "classes", "templates"}}``. With ``dataset_dir`` the one task is that
    CLIP_benchmark folder (keyed by its folder name) instead of the synthetic tasks."""
    device = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if str(device) == "auto"
        else torch.device(device)
    )
    was_training = getattr(model, "training", False)
    model.eval()
    results: dict[str, dict] = {}
    try:
        if dataset_dir:
            classnames, templates, samples = read_clip_benchmark_folder(dataset_dir, split)
            jobs = [(Path(dataset_dir).name, classnames, templates, samples)]
        else:
            jobs = []
            for task in tasks:
                names, _, templates = synthetic_task(task)
                jobs.append(
                    (task, names, templates, synthetic_samples(task, per_class, image_size, seed))
                )
        for task, classnames, templates, samples in jobs:
            classifier = zero_shot_classifier(model, tokenizer, classnames, templates, device)
            logits, labels = _classify(model, preprocess, classifier, samples, batch_size, device)
            results[task] = {
                **classification_metrics(logits, labels, classnames),
                "classes": list(classnames),
                "templates": list(templates),
            }
    finally:
        if was_training:
            model.train()
    return results
