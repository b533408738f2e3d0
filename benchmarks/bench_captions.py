"""Stage 2 benchmark: caption parsing (all rules) in captions/s vs a plain Python ``re`` scan.

    .venv/bin/python benchmarks/bench_captions.py [--n 200000] [--record]

Three measurements on the same captions, interleaved in one run so machine load hits all alike:
- ``re``: a compiled number-word regex searched over every caption (the floor: no language work);
- ``tokenize``: a bare blank-English ``nlp.pipe`` (spaCy's own cost);
- ``parse``: :func:`countclip.data.captions.parser.parse_captions` with every rule on.
Two caption sets: *candidates* (every caption holds a number word, what stage 2 reads after the
DuckDB prefilter) and a *LAION mix* (~4 % number words, where the ``re`` prefilter lets most
captions skip spaCy). Prints captions/s and the ratios.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale_record import record, snapshot  # noqa: E402

from countclip.data.captions.parser import CaptionParser, parse_captions  # noqa: E402

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
        f"parse (all rules) {p:,.0f}/s  ->  RATIO parse/re = {p / r:.3f}, "
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--record", action="store_true", help="store in benchmarks/results/")
    args = ap.parse_args()
    before = snapshot()
    parser = CaptionParser()
    candidates = bench("candidates", make_captions(args.n, 1.0), parser, args.repeat)
    mix = bench("LAION mix", make_captions(args.n, 0.04, seed=1), parser, args.repeat)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {rss:.0f} MB")
    if args.record:
        result = {"candidates": candidates, "laion_mix": mix, "peak_rss_mb": round(rss)}
        record("captions", result, before)


if __name__ == "__main__":
    main()
