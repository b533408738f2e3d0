"""Zero-shot classification sanity check, CLIP_benchmark style.

Counting bought by forgetting would show up here: a fine-tuned model should still classify what
it could before. The protocol is CLIP_benchmark's ``zeroshot_classification``: for each class,
every prompt template is filled with the class name, encoded, normalised and averaged into one
classifier vector; an image's prediction is the class with the highest similarity; metrics are
top-1 accuracy and mean per-class recall (balanced accuracy).

Datasets are CLIP_benchmark webdataset folders (``classnames.txt``, optional
``zeroshot_classification_templates.txt``, shards ``<split>/*.tar`` with ``cls`` and
``webp``/``png``/``jpg``): a real one (``clip_benchmark`` writes them) or the synthetic world's
shape and colour sets (:mod:`countclip.synthetic.zero_shot_sets`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {c}.",)


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
    datasets: Mapping[str, str | os.PathLike[str]],
    *,
    split: str = "test",
    batch_size: int = 128,
    device: str | torch.device = "cpu",
) -> dict:
    """Zero-shot results per task: ``{task: {"n", "accuracy", "mean_per_class_recall",
    "per_class_recall", "classes", "templates"}}`` for ``datasets`` (task name -> folder)."""
    device = torch.device(device)  # resolved once, by the caller
    was_training = getattr(model, "training", False)
    model.eval()
    results: dict[str, dict] = {}
    try:
        for task, folder in datasets.items():
            classnames, templates, samples = read_clip_benchmark_folder(folder, split)
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
