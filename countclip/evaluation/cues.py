"""Cue-only baselines: how well the count of a scene can be guessed WITHOUT counting.

A counting benchmark only measures counting when the obvious non-numerical cues (how big the
objects are, how much of the picture they cover, how far they spread) do not give the count
away. This module scores that: a simple classifier, fit on one set of scenes and tested on
another, sees only one cue (or all of them together) and predicts the count. A cue whose
classifier beats chance by a wide margin is a shortcut a model could take instead of counting;
the benchmark prints these rows beside the models so a reader can tell the two apart.

The classifier is a multinomial logistic regression on standardised log-features (every cue is
a size or an area, so ratios, not differences, are what vary), from scikit-learn. In one
dimension its decision regions are intervals, which is exactly the "threshold on object size"
shortcut we want to measure. The features arrive as plain rows (``{cue: value}``), so this
module knows nothing about where the scenes came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

ALL_CUES = "all cues"
"""The key of the classifier that sees every cue at once."""


def _matrix(rows: Sequence[Mapping[str, float]], cues: Sequence[str], what: str) -> np.ndarray:
    """``rows`` as a (scenes, cues) matrix of log-values, with errors that name the bad cue."""
    if not rows:
        raise ValueError(f"cue classifiers: {what} has no rows")
    out = np.empty((len(rows), len(cues)), dtype=np.float64)
    for i, row in enumerate(rows):
        missing = [c for c in cues if c not in row]
        if missing:
            raise ValueError(f"cue classifiers: {what} row {i} lacks cue(s) {missing}")
        for j, cue in enumerate(cues):
            value = float(row[cue])
            if not np.isfinite(value) or value <= 0:
                raise ValueError(
                    f"cue classifiers: {what} row {i}, cue {cue!r} must be a finite value > 0 "
                    f"(sizes and areas are logged), got {value!r}"
                )
            out[i, j] = value
    return np.log(out)


def cue_predictions(
    train_features: Sequence[Mapping[str, float]],
    train_counts: Sequence[int],
    test_features: Sequence[Mapping[str, float]],
    *,
    cues: Sequence[str] | None = None,
) -> dict[str, list[int]]:
    """The count each cue-only classifier (and the one on all cues) predicts for every test row.

    Fit on ``train_features`` (scenes drawn like the test scenes, never the test scenes
    themselves). Per-row predictions, not only accuracies, so a report can ask which images a
    model gets right that no single cue does. Returns ``{cue: [count per test row], ...,
    ALL_CUES: [...]}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cues = list(cues if cues is not None else (train_features[0] if train_features else []))
    if not cues:
        raise ValueError("cue classifiers: no cues (empty rows and no `cues` given)")
    if ALL_CUES in cues:
        raise ValueError(f"cue classifiers: {ALL_CUES!r} is reserved for the combined classifier")
    x_train = _matrix(train_features, cues, "train_features")
    x_test = _matrix(test_features, cues, "test_features")
    y_train = np.asarray(train_counts)
    if len(y_train) != len(x_train):
        raise ValueError(
            f"cue classifiers: counts and feature rows differ in length (train {len(y_train)} vs "
            f"{len(x_train)})"
        )
    if len(np.unique(y_train)) < 2:
        raise ValueError("cue classifiers: train_counts need at least two different counts")

    def predict(columns: list[int]) -> list[int]:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(x_train[:, columns], y_train)
        return [int(c) for c in model.predict(x_test[:, columns])]

    out = {cue: predict([j]) for j, cue in enumerate(cues)}
    out[ALL_CUES] = predict(list(range(len(cues))))
    return out


def cue_accuracies(predicted: Mapping[str, Sequence[int]], true: Sequence[int]) -> dict[str, float]:
    """``{cue: share of rows whose predicted count is the true one}`` for predictions of
    :func:`cue_predictions`."""
    truth = np.asarray(true)
    return {cue: float((np.asarray(p) == truth).mean()) for cue, p in predicted.items()}


def _single_cue_guesses(scenes: Mapping[str, Any]) -> list[Sequence[int]]:
    return [guesses for cue, guesses in scenes["predicted"].items() if cue != ALL_CUES]


def cue_blind_rows(scenes: Mapping[str, Any]) -> set[int]:
    """The test rows whose count no single-cue classifier guesses, for ``scenes`` =
    ``{"true": [count per row], "predicted": {cue: [guess per row]}}`` (the combined classifier,
    :data:`ALL_CUES`, is not a single cue). On these rows a model that reads one non-numerical
    property instead of counting earns nothing, so a gain there is not that property."""
    singles = _single_cue_guesses(scenes)
    return {i for i, t in enumerate(scenes["true"]) if all(g[i] != t for g in singles)}


def best_single_cue_recall(scenes: Mapping[str, Any]) -> dict[int, float]:
    """Per true count, the highest recall any single-cue classifier reaches on its rows: where
    the cues are informative (a one-cue classifier is, mostly, at the ends of the range)."""
    truth, singles = list(scenes["true"]), _single_cue_guesses(scenes)
    out = {}
    for count in sorted(set(truth)):
        rows = [i for i, t in enumerate(truth) if t == count]
        out[int(count)] = max(sum(g[i] == count for i in rows) / len(rows) for g in singles)
    return out
