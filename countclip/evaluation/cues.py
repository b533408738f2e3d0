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

import numpy as np

ALL_CUES = "all cues"
"""The key of the classifier that sees every cue at once."""


def _matrix(rows: Sequence[Mapping[str, float]], cues: Sequence[str], what: str) -> np.ndarray:
    """``rows`` as a (scenes, cues) matrix of log-values, with errors that name the bad cue."""
    if not rows:
        raise ValueError(f"cue_baselines: {what} has no rows")
    out = np.empty((len(rows), len(cues)), dtype=np.float64)
    for i, row in enumerate(rows):
        missing = [c for c in cues if c not in row]
        if missing:
            raise ValueError(f"cue_baselines: {what} row {i} lacks cue(s) {missing}")
        for j, cue in enumerate(cues):
            value = float(row[cue])
            if not np.isfinite(value) or value <= 0:
                raise ValueError(
                    f"cue_baselines: {what} row {i}, cue {cue!r} must be a finite value > 0 "
                    f"(sizes and areas are logged), got {value!r}"
                )
            out[i, j] = value
    return np.log(out)


def cue_baselines(
    train_features: Sequence[Mapping[str, float]],
    train_counts: Sequence[int],
    test_features: Sequence[Mapping[str, float]],
    test_counts: Sequence[int],
    *,
    cues: Sequence[str] | None = None,
) -> dict[str, float]:
    """Accuracy of predicting the count from each cue alone, and from all cues together.

    Fit on ``train_features`` (scenes drawn like the test scenes, never the test scenes
    themselves), score on ``test_features``. ``cues`` defaults to the keys of the first training
    row. Returns ``{cue: accuracy, ..., ALL_CUES: accuracy}``, accuracies in [0, 1]; chance is
    ``1 / len(set(test_counts))`` for a balanced test set.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cues = list(cues if cues is not None else (train_features[0] if train_features else []))
    if not cues:
        raise ValueError("cue_baselines: no cues (empty rows and no `cues` given)")
    if ALL_CUES in cues:
        raise ValueError(f"cue_baselines: {ALL_CUES!r} is reserved for the combined classifier")
    x_train = _matrix(train_features, cues, "train_features")
    x_test = _matrix(test_features, cues, "test_features")
    y_train, y_test = np.asarray(train_counts), np.asarray(test_counts)
    if len(y_train) != len(x_train) or len(y_test) != len(x_test):
        raise ValueError(
            "cue_baselines: counts and feature rows differ in length "
            f"(train {len(y_train)} vs {len(x_train)}, test {len(y_test)} vs {len(x_test)})"
        )
    if len(np.unique(y_train)) < 2:
        raise ValueError("cue_baselines: train_counts need at least two different counts")

    def accuracy(columns: list[int]) -> float:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(x_train[:, columns], y_train)
        return float((model.predict(x_test[:, columns]) == y_test).mean())

    out = {cue: accuracy([j]) for j, cue in enumerate(cues)}
    out[ALL_CUES] = accuracy(list(range(len(cues))))
    return out
