"""Train the caption count classifier on the tune split of the labelled LAION captions and write
it as package data (``countclip/data/captions/count_classifier.json``).

    .venv/bin/python scripts/train_caption_classifier.py            # the shipped model
    .venv/bin/python scripts/train_caption_classifier.py --out DIR  # DIR/count_classifier.json

Only the ``tune`` rows of ``tests/data/laion_number_captions.jsonl`` are read (``?`` rows are
skipped); the ``test`` rows are never looked at here. Each number word of a caption that no veto
rule rules out is one example: the labelled number word of a count is positive, every number
word of a non-count is negative, another number word of a count is negative when it has another
value (the same value said twice is left out: it is neither).

The regularisation strength C and the operating point are chosen by cross-validation on the tune
split (5 folds, stratified by label, 10 seeded shuffles; a fold's captions are never trained on):
for each C, every caption's out-of-fold decision is the parser's own (best number word,
vetoes, the "other count" check) at each threshold 0.01..0.99; the operating point is the lowest
threshold whose pooled out-of-fold rejection of non-counts is at least
:data:`TARGET_REJECTION` (that is, the highest recall that still rejects 90% of non-counts), and
C the one whose recall there is highest. The final model is fit on the whole tune split.

Deterministic: fixed seeds, liblinear (no BLAS, no random state in the primal solver), a sorted
vocabulary, weights rounded to 4 decimals; the output is byte-for-byte the same on every run
(``tests/test_caption_classifier.py`` rebuilds it and compares).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from spacy.tokens import Token

from countclip.data.captions.classifier import (
    FEATURE_VERSION,
    MODEL_FILE,
    CountClassifier,
    Occurrence,
)
from countclip.data.captions.parser import CaptionParser
from countclip.data.captions.quality import Labelled, file_sha256, load_labelled

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "laion_number_captions.jsonl"
OUT = ROOT / "countclip" / "data" / "captions"

TARGET_REJECTION = 0.90
C_GRID = (0.1, 0.3, 1.0, 3.0)
MIN_FEATURE_COUNT = 2
FOLDS = 5
SEEDS = tuple(range(10))
THRESHOLDS = tuple(round(t / 100, 2) for t in range(1, 100))
DECIMALS = 4


@dataclass
class Example:
    """One tune caption, tokenized once: its number words' features and training targets."""

    row: Labelled
    toks: list[Token]
    low: list[str]
    occurrences: list[Occurrence]
    targets: list[int | None]  # per occurrence: 1, 0, or None (not an example)


def examples(parser: CaptionParser, rows: list[Labelled]) -> list[Example]:
    out = []
    for row in rows:
        doc = parser.nlp(row.text)
        toks = list(doc)
        low = [t.lower_ for t in toks]
        occs = parser.occurrences(doc, toks, low)
        span = row.span()
        targets: list[int | None] = []
        for occ in occs:
            tok = toks[occ.index]
            if not occ.features:
                targets.append(None)  # vetoed: the model never sees it
            elif not row.is_count:
                targets.append(0)
            elif span is not None and tok.idx == span[0]:
                targets.append(1)
            elif occ.value == row.label:
                targets.append(None)  # the same count said again: neither
            else:
                targets.append(0)
        out.append(Example(row, toks, low, occs, targets))
    return out


def fit(train: list[Example], c: float) -> dict[str, Any]:
    """A logistic regression on the examples' binary features; returns the model's JSON parts."""
    freq: Counter[str] = Counter()
    for ex in train:
        for occ, y in zip(ex.occurrences, ex.targets, strict=True):
            if y is not None:
                freq.update(set(occ.features))
    vocab = sorted(f for f, k in freq.items() if k >= MIN_FEATURE_COUNT)
    index = {f: i for i, f in enumerate(vocab)}
    rows, cols, ys = [], [], []
    for ex in train:
        for occ, y in zip(ex.occurrences, ex.targets, strict=True):
            if y is None:
                continue
            r = len(ys)
            for f in sorted({index[f] for f in occ.features if f in index}):
                rows.append(r)
                cols.append(f)
            ys.append(y)
    x = sparse.csr_matrix(
        (np.ones(len(rows)), (np.array(rows), np.array(cols))), shape=(len(ys), len(vocab))
    )
    model = LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=0)
    model.fit(x, np.array(ys))
    weights = {
        f: round(float(w), DECIMALS)
        for f, w in zip(vocab, model.coef_[0], strict=True)
        if round(float(w), DECIMALS) != 0.0
    }
    return {
        "feature_version": FEATURE_VERSION,
        "bias": round(float(model.intercept_[0]), DECIMALS),
        "weights": weights,
        "operating_point": {"threshold": 0.5},
        "examples": len(ys),
        "positives": int(sum(ys)),
    }


def decisions(parser: CaptionParser, model: dict[str, Any], held: list[Example]) -> list[tuple]:
    """Per caption: (best value, best start, its probability, the other count's probability)."""
    parser.classifier = CountClassifier(model)
    out = []
    for ex in held:
        best, p = parser.best(ex.occurrences)
        if best is None:
            out.append((0, -1, -1.0, -1.0))
            continue
        blocking = parser.other_count(ex.toks, ex.low, best, ex.occurrences)
        out.append((best.value, ex.toks[best.index].idx, p, blocking))
    return out


def sweep(exs: list[Example], decided: list[tuple]) -> list[dict[str, float]]:
    """Recall, rejection, precision of the decisions at every threshold of :data:`THRESHOLDS`."""
    label = np.array([ex.row.label for ex in exs])
    value = np.array([d[0] for d in decided])
    p = np.array([d[2] for d in decided])
    block = np.array([d[3] for d in decided])
    pos, neg = label > 0, label == 0
    out = []
    for t in THRESHOLDS:
        kept = (p >= t) & (block < t)
        right = kept & pos & (value == label)
        out.append(
            {
                "threshold": t,
                "recall": round(float(right.sum() / pos.sum()), DECIMALS),
                "rejection": round(float((~kept & neg).sum() / neg.sum()), DECIMALS),
                "precision": round(float(right.sum() / max(kept.sum(), 1)), DECIMALS),
            }
        )
    return out


def cross_validate(parser: CaptionParser, exs: list[Example], c: float) -> list[dict[str, float]]:
    """Pooled out-of-fold sweep over :data:`SEEDS` x :data:`FOLDS` (stratified by label)."""
    y = np.array([1 if ex.row.is_count else 0 for ex in exs])
    pooled_exs: list[Example] = []
    pooled: list[tuple] = []
    for seed in SEEDS:
        folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
        for train_idx, held_idx in folds.split(np.zeros(len(y)), y):
            model = fit([exs[i] for i in train_idx], c)
            held = [exs[i] for i in held_idx]
            pooled_exs.extend(held)
            pooled.extend(decisions(parser, model, held))
    return sweep(pooled_exs, pooled)


def operating_point(curve: list[dict[str, float]]) -> dict[str, float]:
    """The lowest threshold (highest recall) whose rejection reaches the target."""
    ok = [pt for pt in curve if pt["rejection"] >= TARGET_REJECTION]
    return ok[0] if ok else curve[-1]


def train(data: Path = DATA) -> dict[str, Any]:
    rows = [r for r in load_labelled(data, "tune") if r.label is not None]
    parser = CaptionParser()
    exs = examples(parser, rows)
    grid = []
    for c in C_GRID:
        point = operating_point(cross_validate(parser, exs, c))
        grid.append({"C": c, **point})
    chosen = max(grid, key=lambda g: (g["recall"], g["rejection"], -g["C"]))
    model = fit(exs, chosen["C"])
    positives = sum(r.is_count for r in rows)
    return {
        "about": "caption count classifier: logistic regression over the features of "
        "countclip.data.captions.classifier.occurrence_features; rebuilt by "
        "scripts/train_caption_classifier.py",
        "feature_version": FEATURE_VERSION,
        "training_data": {
            "path": data.relative_to(ROOT).as_posix() if data.is_relative_to(ROOT) else data.name,
            "sha256": file_sha256(data),
            "split": "tune",
            "captions": len(rows),
            "counts": positives,
            "noncounts": len(rows) - positives,
            "number_word_examples": model["examples"],
            "positive_examples": model["positives"],
        },
        "trainer": {
            "model": "scikit-learn LogisticRegression(solver='liblinear', penalty='l2')",
            "C": chosen["C"],
            "min_feature_count": MIN_FEATURE_COUNT,
            "weight_decimals": DECIMALS,
            "cross_validation": {"folds": FOLDS, "stratified_by": "label", "seeds": list(SEEDS)},
        },
        "operating_point": {
            "rule": f"lowest threshold whose cross-validated rejection of non-counts on the "
            f"tune split is >= {TARGET_REJECTION}, at the C with the highest recall there",
            "threshold": chosen["threshold"],
            "cv_recall": chosen["recall"],
            "cv_rejection": chosen["rejection"],
            "cv_precision": chosen["precision"],
        },
        "cv_grid": grid,
        "bias": model["bias"],
        "weights": model["weights"],
    }


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="folder for count_classifier.json")
    ap.add_argument("--data", type=Path, default=DATA, help="labelled captions (jsonl)")
    args = ap.parse_args(argv)
    model = train(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / MODEL_FILE
    path.write_text(render(model), encoding="utf-8")
    op = model["operating_point"]
    print(
        f"wrote {path} ({path.stat().st_size:,} bytes, {len(model['weights']):,} weights): "
        f"C={model['trainer']['C']}, threshold {op['threshold']}, cross-validated on tune: "
        f"recall {op['cv_recall']:.3f}, rejection {op['cv_rejection']:.3f}, "
        f"precision {op['cv_precision']:.3f}"
    )
    for g in model["cv_grid"]:
        print(f"  C={g['C']:<5} threshold {g['threshold']:.2f} recall {g['recall']:.3f} "
              f"rejection {g['rejection']:.3f} precision {g['precision']:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
