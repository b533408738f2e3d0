"""Stage 2 benchmark: the caption filter's speed (captions/s against a plain ``re`` scan) and,
with ``--quality``, its precision and recall on real LAION captions labelled by hand.

    .venv/bin/python benchmarks/bench_captions.py [--n 200000] [--repeat 2] [--record]
    .venv/bin/python benchmarks/bench_captions.py --method rules   # the previous rules' speed
    .venv/bin/python benchmarks/bench_captions.py --quality   # writes results/captions/quality.json
    .venv/bin/python benchmarks/bench_captions.py --smoke     # tiny sizes, seconds, records nothing

Speed: three measurements on the same captions, interleaved in one run so machine load hits
all alike:
- ``re``: a compiled number-word regex searched over every caption (the floor: no language work);
- ``tokenize``: a bare blank-English ``nlp.pipe`` (spaCy's own cost);
- ``parse``: :func:`countclip.data.captions.parser.parse_captions`: the prefilter, vetoes and
  the classifier on every number word.
Two caption sets: *candidates* (every caption holds a number word, what stage 2 reads after the
DuckDB prefilter) and a *LAION mix* (~4 % number words, where the ``re`` prefilter lets most
captions skip spaCy and the classifier). Goal: >= 100k captions/s on the LAION mix.

Quality (``--quality``): on ``tests/data/laion_number_captions.jsonl``, the **test** split first
(never trained or tuned on), then the tune split (where the classifier was trained and its
operating point chosen, so its numbers are optimistic), for the classifier, the previous rules
and the naive first-match regex: recall (counts kept with the right count), rejection of
non-counts, precision; ``?`` rows only counted. The result goes to
``results/captions/quality.json``; ``scripts/render_caption_doc.py`` renders docs/captions.md's
section from it.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

from ratios import ratio
from scale_record import record, snapshot

from countclip.data.captions.parser import CaptionParser, parse_captions
from countclip.data.captions.quality import FILTERS, SPLITS, quality_report

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT / "tests" / "data" / "laion_number_captions.jsonl"
QUALITY = ROOT / "results" / "captions" / "quality.json"
GOAL_PER_S = 100_000

SUBJECTS = [
    "cats",
    "dogs",
    "apples",
    "chairs",
    "women",
    "men",
    "birds",
    "stars",
    "cups",
    "roses",
    "puppies",
    "candles",
]
ADJ = ["red", "small", "vintage", "wooden", "cute", "white", "happy", "old"]
NUMBER_TEMPLATES = [
    "Set of {n} {a} {o} vector icon",
    "{N} {o} sitting on a bench in the park - stock photo",
    "Close-up of {n} {a} {o} on a white background",
    "Vintage {a} {o}, lot of {n}, free shipping",
    "{N} Ways To Decorate Your Home With {o}",
    "a {n}-year-old boy playing with {o}",
    "open {n} days a week, {a} {o} for sale",
    "{N} {a} {o} and {n2} {o2} in the garden",
    "one of the {n} {o} sleeping",
    "Portrait of {n} {a} {o} in a basket, studio shot",
    "{n}-tone {a} leather jacket",
    "Seven Seas {a} {o} capsules",
    "about {n} {o} at the party",
    "Happy family of {n} at the beach",
]
PLAIN_TEMPLATES = [
    "a {a} bicycle leaning on a brick wall",
    "Modern living room interior with {a} sofa and plants",
    "Beautiful sunset over the ocean - stock photo",
    "Women's summer dress, {a} floral print, size M",
    "{a} {o} on a wooden table, top view",
    "Mountain landscape in autumn, Switzerland",
    "open 24 hours sign in neon",
    "Often the tone of the evening is calm",
]
WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def make_captions(n: int, number_share: float, seed: int = 0) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        w, w2 = rnd.choice(WORDS), rnd.choice(WORDS)
        fields = {
            "n": w,
            "N": w.title(),
            "n2": w2,
            "a": rnd.choice(ADJ),
            "o": rnd.choice(SUBJECTS),
            "o2": rnd.choice(SUBJECTS),
        }
        pool = NUMBER_TEMPLATES if rnd.random() < number_share else PLAIN_TEMPLATES
        out.append(rnd.choice(pool).format(**fields) + f" #{rnd.randrange(10**6)}")
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(name: str, captions: list[str], parser: CaptionParser, repeat: int) -> dict:
    pattern = parser.prefilter
    nlp = parser.nlp
    t_re, t_tok, t_parse, cpu_parse = [], [], [], []
    for _ in range(repeat):
        t_re.append(timed(lambda: [pattern.search(c) for c in captions]))
        t_tok.append(timed(lambda: [len(d) for d in nlp.pipe(captions, batch_size=2000)]))
        c0 = time.process_time()
        t_parse.append(
            timed(lambda: list(parse_captions(captions, batch_size=2000, parser=parser)))
        )
        cpu_parse.append(time.process_time() - c0)
    n = len(captions)
    r, t, p = n / min(t_re), n / min(t_tok), n / min(t_parse)
    kept = sum(cc is not None for cc in parse_captions(captions, parser=parser))
    print(
        f"{name:10} n={n:,} kept={kept:,}: re {r:,.0f}/s | bare nlp.pipe {t:,.0f}/s | "
        f"parse ({parser.method}) {p:,.0f}/s  ->  parse/re = {p / r:.3f}, "
        f"parse/bare-tokenizer = {p / t:.2f}"
    )
    return {
        "n": n,
        "kept": kept,
        "re_per_s": round(r),
        "tokenize_per_s": round(t),
        "parse_per_s": round(p),
        "ratio_parse_over_re": round(p / r, 3),
        "parse_cpu_ms_per_caption": round(min(cpu_parse) / n * 1e3, 4),
    }


def speed(n: int, repeat: int, method: str = "classifier") -> dict:
    parser = CaptionParser(method=method)
    candidates = bench("candidates", make_captions(n, 1.0), parser, repeat)
    mix = bench("LAION mix", make_captions(n, 0.04, seed=1), parser, repeat)
    ratio("laion_mix_parse_over_re", mix["parse_per_s"] / mix["re_per_s"])
    ratio("laion_mix_parse_per_s_over_goal", mix["parse_per_s"] / GOAL_PER_S, ">=1.0")
    ratio(
        "candidates_parse_over_tokenize", candidates["parse_per_s"] / candidates["tokenize_per_s"]
    )
    return {"candidates": candidates, "laion_mix": mix}


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:5.1f}%"


def print_quality(report: dict) -> None:
    model = report["model"]
    print(
        f"labelled captions: {report['data']['file']} (sha256 {report['data']['sha256'][:12]}); "
        f"model C={model['C']} trained on {model['trained_on']}, "
        f"count_threshold {model['count_threshold']}"
    )
    for split in SPLITS:
        res = report["splits"][split]
        tag = "TEST split (never trained or tuned on)" if split == "test" else (
            "tune split (trained and tuned here: optimistic)"
        )  # fmt: skip
        first = res["filters"]["classifier"]
        print(
            f"\n{tag}: {first['counts']} counts, {first['noncounts']} non-counts, "
            f"{first['unsure']} '?' rows (not scored)"
        )
        print(f"  {'filter':11} {'recall':>8} {'rejection':>10} {'precision':>10}   '?' kept")
        for name in FILTERS:
            m = res["filters"][name]
            print(
                f"  {name:11} {_pct(m['recall']):>8} {_pct(m['rejection']):>10} "
                f"{_pct(m['precision']):>10}   {m['unsure_kept']}/{m['unsure']}"
            )
        vetoes = ", ".join(
            f"{k} {v['on_counts']}/{v['on_noncounts']}" for k, v in res["vetoes"].items()
        )
        print(f"  vetoes fired (on labelled counts / on non-counts): {vetoes}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--record", action="store_true", help="store speed in benchmarks/results/")
    ap.add_argument(
        "--quality", action="store_true", help=f"precision/recall, written to {QUALITY.name}"
    )
    ap.add_argument("--smoke", action="store_true", help="2,000 captions, once; records nothing")
    ap.add_argument(
        "--method",
        choices=("classifier", "rules"),
        default="classifier",
        help="speed of this filter (rules: the previous rule set, for comparison)",
    )
    args = ap.parse_args()
    if args.smoke:
        if args.record:
            ap.error("--smoke records nothing: drop --record")
        args.n, args.repeat = 2_000, 1
    if args.quality and not args.smoke:
        report = quality_report(LABELLED)
        print_quality(report)
        QUALITY.parent.mkdir(parents=True, exist_ok=True)
        QUALITY.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        print(f"\nwrote {QUALITY.relative_to(ROOT)}; render the doc: "
              "python scripts/render_caption_doc.py")  # fmt: skip
        return
    before = snapshot()
    result = speed(args.n, args.repeat, args.method)
    if args.smoke:
        print_quality(quality_report(LABELLED))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MB")
    if args.record:
        record("captions", {**result, "method": args.method, "peak_rss_mb": round(rss)}, before)


if __name__ == "__main__":
    main()
