"""Measuring a caption filter on the hand-labelled LAION captions
(``tests/data/laion_number_captions.jsonl``; the rule is in docs/captions.md).

Used by ``scripts/train_caption_classifier.py`` (training and the operating point, on the tune
split only) and by ``benchmarks/bench_captions.py --quality`` (the report, test split first).

- **recall**: counting captions (label N) kept with the right count N;
- **rejection**: non-counts (label 0) rejected;
- **precision**: of the labelled captions kept (N and 0 rows), the share kept with the right
  count (a count kept with a wrong N is not precise);
- ``?`` rows are never scored: only how many of them a filter keeps is reported.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from countclip.data.captions.words import NUMBER_WORDS, WORD_COUNTS

__all__ = [
    "NAIVE",
    "Labelled",
    "file_sha256",
    "load_labelled",
    "naive_first_match",
    "score",
]

#: The naive baseline: the first whole-word number two..ten, whatever it says.
NAIVE = re.compile(r"\b(?:" + "|".join(NUMBER_WORDS.values()) + r")\b", re.IGNORECASE)

#: ``(count, start, end)`` of the number a filter keeps, or None when it rejects the caption.
Kept = tuple[int, int, int] | None


@dataclass(frozen=True)
class Labelled:
    """One labelled caption: ``label`` is N (2..10), 0 (not a count) or None (``"?"``)."""

    id: int
    text: str
    label: int | None
    word: str | None
    occurrence: int | None
    kind: str | None
    split: str
    source: str

    @property
    def is_count(self) -> bool:
        return self.label is not None and self.label > 0

    @property
    def is_noncount(self) -> bool:
        return self.label == 0

    def span(self) -> tuple[int, int] | None:
        """Character span of the labelled number word (its ``occurrence``-th whole-word match)."""
        if not self.is_count or self.occurrence is None:
            return None
        matches = list(NAIVE.finditer(self.text))
        if self.occurrence >= len(matches):
            return None
        m = matches[self.occurrence]
        return m.start(), m.end()


def load_labelled(path: str | Path, split: str | None = None) -> list[Labelled]:
    """The labelled captions of ``path`` (one JSON object a line), optionally one split."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            r = json.loads(line)
            label = None if r["label"] == "?" else int(r["label"])
            row = Labelled(
                id=int(r["id"]),
                text=r["text"],
                label=label,
                word=r.get("word"),
                occurrence=r.get("occurrence"),
                kind=r.get("kind"),
                split=r["split"],
                source=r["source"],
            )
            if split is None or row.split == split:
                rows.append(row)
    return rows


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def naive_first_match(text: str) -> Kept:
    """The baseline filter: keep every caption with a number word, counting the first one."""
    m = NAIVE.search(text)
    if m is None:
        return None
    return WORD_COUNTS[m.group(0).lower()], m.start(), m.end()


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def score(rows: Iterable[Labelled], kept: Callable[[str], Kept]) -> dict[str, Any]:
    """Recall, rejection and precision of a filter (``kept(text)``) on labelled rows; the
    ``?`` rows are only counted. Also lists the ids it gets wrong (for review, not tuning)."""
    n_pos = n_neg = right = right_span = wrong_count = rejected = kept_neg = 0
    n_unsure = kept_unsure = 0
    missed: list[int] = []
    false_kept: list[int] = []
    for row in rows:
        result = kept(row.text)
        if row.label is None:
            n_unsure += 1
            kept_unsure += result is not None
        elif row.is_count:
            n_pos += 1
            if result is not None and result[0] == row.label:
                right += 1
                right_span += row.span() == (result[1], result[2])
            else:
                wrong_count += result is not None
                missed.append(row.id)
        else:
            n_neg += 1
            if result is None:
                rejected += 1
            else:
                kept_neg += 1
                false_kept.append(row.id)
    kept_total = right + wrong_count + kept_neg
    return {
        "counts": n_pos,
        "kept_right_count": right,
        "kept_right_span": right_span,
        "kept_wrong_count": wrong_count,
        "recall": _ratio(right, n_pos),
        "noncounts": n_neg,
        "noncounts_rejected": rejected,
        "rejection": _ratio(rejected, n_neg),
        "precision": _ratio(right, kept_total),
        "unsure": n_unsure,
        "unsure_kept": kept_unsure,
        "missed_ids": missed,
        "false_kept_ids": false_kept,
    }


# -- the report (benchmarks/bench_captions.py --quality) ---------------------------------------

#: The filters the report compares, in its order.
FILTERS: dict[str, str] = {
    "classifier": "this filter: vetoes, then the classifier at captions.count_threshold",
    "rules": "the previous hand-written rules, with this change's fixes: every number must "
    "pass every rule",
    "naive": "the first number word two..ten, every caption with one kept",
}
SPLITS = ("test", "tune")
MARKERS = ("<!-- caption-quality:start -->", "<!-- caption-quality:end -->")


def _kept_by(parser: Any) -> Callable[[str], Kept]:
    def kept(text: str) -> Kept:
        cc, _reason = parser.parse(text)
        return None if cc is None else (cc.count, cc.start, cc.end)

    return kept


def quality_report(data: str | Path) -> dict[str, Any]:
    """Every number of the quality report, from the labelled file ``data``: per split (test
    first; tune is where the model was trained and its operating point chosen), per filter of
    :data:`FILTERS`, the :func:`score`; the classifier's rejection reasons; how often each veto
    fired on a labelled count and on a non-count. Deterministic: no dates, no timings."""
    from countclip.config import CaptionConfig
    from countclip.data.captions.classifier import MODEL_FILE, load_classifier
    from countclip.data.captions.parser import CaptionParser

    cfg = CaptionConfig()
    parser = CaptionParser.from_config(cfg)
    rules = CaptionParser(method="rules")
    model = load_classifier(None).model
    model_bytes = resources.files("countclip.data.captions").joinpath(MODEL_FILE).read_bytes()
    filters: dict[str, Callable[[str], Kept]] = {
        "classifier": _kept_by(parser),
        "rules": _kept_by(rules),
        "naive": naive_first_match,
    }
    splits: dict[str, Any] = {}
    for split in SPLITS:
        rows = load_labelled(data, split)
        reasons: dict[str, int] = {}
        vetoes: dict[str, dict[str, int]] = {}
        for row in rows:
            if row.label is None:
                continue
            cc, why = parser.parse(row.text)
            if cc is None and row.label == 0:
                reasons[why or "?"] = reasons.get(why or "?", 0) + 1
            doc = parser.nlp(row.text)
            span = row.span()
            for occ in parser.occurrences(doc):
                if occ.features or occ.reason is None:
                    continue  # not vetoed
                tally = vetoes.setdefault(occ.reason, {"on_counts": 0, "on_noncounts": 0})
                if row.is_count and span is not None and doc[occ.index].idx == span[0]:
                    tally["on_counts"] += 1
                elif row.is_noncount:
                    tally["on_noncounts"] += 1
        splits[split] = {
            "rows": len(rows),
            "filters": {name: score(rows, kept) for name, kept in filters.items()},
            "noncount_rejection_reasons": dict(sorted(reasons.items())),
            "vetoes": dict(sorted(vetoes.items())),
        }
    data = Path(data)
    return {
        "data": {"file": data.name, "sha256": file_sha256(data)},
        "model": {
            "file": f"countclip/data/captions/{MODEL_FILE}",
            "sha256": hashlib.sha256(model_bytes).hexdigest(),
            "bytes": len(model_bytes),
            "weights": len(model["weights"]),
            "C": model["trainer"]["C"],
            "trained_on": model["training_data"]["split"],
            "training_data_sha256": model["training_data"]["sha256"],
            "operating_point": model["operating_point"],
            "count_threshold": cfg.count_threshold,
        },
        "filters": FILTERS,
        "splits": splits,
    }


def _cell(ratio: float | None, num: int, den: int) -> str:
    return "-" if ratio is None else f"{100 * ratio:.1f}% ({num}/{den})"


def _table(res: dict[str, Any]) -> list[str]:
    lines = [
        "| filter | recall: counts kept with the right count | non-counts rejected | "
        "precision | `?` rows kept (not scored) |",
        "|---|---|---|---|---|",
    ]
    for name, about in FILTERS.items():
        m = res["filters"][name]
        kept = m["kept_right_count"] + m["kept_wrong_count"] + m["noncounts"]
        kept -= m["noncounts_rejected"]
        lines.append(
            f"| {name} ({about}) | {_cell(m['recall'], m['kept_right_count'], m['counts'])} | "
            f"{_cell(m['rejection'], m['noncounts_rejected'], m['noncounts'])} | "
            f"{_cell(m['precision'], m['kept_right_count'], kept)} | "
            f"{m['unsure_kept']}/{m['unsure']} |"
        )
    return lines


def render_section(report: dict[str, Any]) -> str:
    """The generated block of docs/captions.md (between :data:`MARKERS`) for ``report``."""
    model = report["model"]
    op = model["operating_point"]
    out = [
        MARKERS[0],
        "<!-- generated by scripts/render_caption_doc.py from results/captions/quality.json "
        "(benchmarks/bench_captions.py --quality): edit those, not this block -->",
        "",
        f"Labelled data: `tests/data/{report['data']['file']}` (sha256 "
        f"`{report['data']['sha256'][:16]}...`). Model: `{model['file']}`, "
        f"{model['weights']:,} weights, {model['bytes']:,} bytes (sha256 "
        f"`{model['sha256'][:16]}...`), logistic regression with C = {model['C']} trained on "
        f"the **{model['trained_on']}** split.",
        "",
        f"Operating point: `captions.count_threshold` = **{model['count_threshold']}** "
        f"({op['rule']}). Cross-validated on tune there: recall {100 * op['cv_recall']:.1f}%, "
        f"non-counts rejected {100 * op['cv_rejection']:.1f}%, precision "
        f"{100 * op['cv_precision']:.1f}%.",
    ]
    for split in SPLITS:
        res = report["splits"][split]
        if split == "test":
            title = f"Test split ({res['rows']} captions): never trained or tuned on"
        else:
            title = (
                f"Tune split ({res['rows']} captions): trained and tuned here, so optimistic "
                "for the classifier"
            )
        vetoes = ", ".join(
            f"{k} {v['on_counts']}/{v['on_noncounts']}" for k, v in res["vetoes"].items()
        )
        reasons = ", ".join(f"{k} {v}" for k, v in res["noncount_rejection_reasons"].items())
        out += [
            "",
            f"### {title}",
            "",
            *_table(res),
            "",
            f"Vetoes fired (on the labelled count / on non-counts): {vetoes}.",
            "",
            f"Why the classifier's filter rejected the non-counts: {reasons}.",
        ]
    out.append(MARKERS[1])
    return "\n".join(out) + "\n"


def render_doc(doc: str, report: dict[str, Any]) -> str:
    """``doc`` with its block between :data:`MARKERS` replaced by :func:`render_section`."""
    start, end = doc.find(MARKERS[0]), doc.find(MARKERS[1])
    if start < 0 or end < start:
        raise ValueError(f"docs/captions.md lacks the markers {MARKERS[0]} ... {MARKERS[1]}")
    rest = doc[end + len(MARKERS[1]) :]
    return doc[:start] + render_section(report) + rest.removeprefix("\n")
