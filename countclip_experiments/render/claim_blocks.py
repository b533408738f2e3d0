"""The text of every claims block (:mod:`countclip_experiments.render.claims`): one function
per block, from the raw results to the sentences; every number in them is computed here."""

from __future__ import annotations

import json
from collections.abc import Callable

from countclip_experiments.render.claims import (
    GOAL_COUNT,
    GOAL_GAIN,
    GOAL_SHAPE,
    Facts,
    _gap,
    choose_wise_ft,
    full_claim,
    one_seed,
    pct,
    pts,
    r6_sweeps,
    t_claim,
    validation_pairs,
)
from countclip_experiments.render.ledger_claims import confirmatory_budget
from countclip_experiments.render.result_rows import (
    CONTROL,
    Comparison,
    compare,
    per_count_mean,
    zero_shot_mean,
)


def cue_levels(facts: Facts) -> str:
    """The cue-only baselines of the development CountBenches (the confirmatory one's are in
    its run's tables once a registered run exists)."""
    singles = ("largest item", "mean item", "total area", "spread")
    cues = {
        split: facts.run("bench-counting", split)["cues"]
        for split in ("dev", "dev2")
        if facts.has("bench-counting", split)
    }
    lo = min(c[s] for c in cues.values() for s in singles)
    hi = max(c[s] for c in cues.values() for s in singles)
    hull = sorted(c["hull area"] for c in cues.values())
    every = sorted(c["all cues"] for c in cues.values())
    text = (
        f"On the two development CountBenches (dev and dev2) item size, total area and spread "
        f"guess {pct(lo)}–{pct(hi)} (chance 11.1%; with 540 images one accuracy has a standard "
        f"error of ~1.6 points); the convex-hull area guesses {pct(hull[0])}–{pct(hull[-1])}; "
        f"all cues together {pct(every[0])}–{pct(every[-1])}."
    )
    if facts.cue_scale:
        variants = facts.cue_scale["variants"]

        def hull_range(prefix: str) -> str:
            values = [
                v[s]["hull area"]
                for v in variants
                if v["variant"].startswith(prefix)
                for s in ("dev", "dev2")
            ]
            return f"{pct(min(values))}–{pct(max(values))}"

        text += (
            " At finer object scales ([table](results.md#cue-only-baselines-at-finer-object-"
            f"scales)) the hull area still guesses {hull_range('96 px')} at 96 px and "
            f"{hull_range('128 px')} at 128 px, and {hull_range('256 px')} at 256 px."
        )
    return text


def recipes_validation(facts: Facts) -> str:
    pairs = {(name, run["lambda0"], run["counting_fraction"], run["steps"]): (run, ctl)
             for name, run, ctl in validation_pairs(facts)}  # fmt: skip
    r1 = facts.records["bench-counting-r1"]["runs"]
    controls = {r["counting_fraction"]: r for r in r1 if r["count_loss"] == "none"}
    r1_pick, _ = pairs[("bench-counting-r1", 0.35, 0.2, 800)]
    r2_pick, r2_control = pairs[("bench-counting-r2", 0.35, 0.5, 800)]
    r2_other, _ = pairs[("bench-counting-r2", 0.15, 0.5, 800)]
    return (
        "**Recipe r1** (`configs/bench-counting.yaml` and the arms file at commit `13caa23`, "
        "experiment `bench-counting`; record `bench-counting-r1`): the strong control's "
        f"counting fraction (1 in 2: {controls[0.5]['val_balanced_last']:.3f}, beat 1 in 5: "
        f"{controls[0.2]['val_balanced_last']:.3f}, on its own validation score), then "
        f"CountCLIP's λ0 at 1 in 5: λ0 = 0.35 ({r1_pick['val_balanced_last']:.3f}) was the only "
        f"setting tried above the strong control, at zero-shot shape "
        f"{100 * r1_pick['zero_shot_val']['shape']:.1f} against the control's "
        f"{100 * controls[0.5]['zero_shot_val']['shape']:.1f}.\n\n"
        "**Recipe r2** (commit `167f63c`, experiment `bench-counting-r2`; record "
        "`bench-counting-r2`): CountCLIP at the strong control's data mix, thought of *after* "
        "r1's numbers on the then-confirmatory CountBench (now dev2) were seen. The rule was "
        "written before the tuning runs reached their last step: the λ0 with the higher "
        "last-step score, run only if above the strong control. λ0 = 0.35 "
        f"({r2_pick['val_balanced_last']:.3f}) beat λ0 = 0.15 "
        f"({r2_other['val_balanced_last']:.3f}); against the strong control: "
        f"{_gap(r2_pick, r2_control)}."
    )


def _naive_vs_verified(facts: Facts, split: str) -> Comparison:
    recipe = facts.rows("bench-counting-r2", split)["countclip"]
    naive = facts.rows("bench-counting-r2-naive", split)["countclip-naive"]
    found = compare(recipe, naive)
    assert found is not None
    return found


def cue_blind(facts: Facts, experiment: str, split: str) -> tuple[Comparison, int]:
    """CountCLIP − control on the images no single-cue classifier guesses, and how many."""
    from countclip.evaluation.cues import cue_blind_rows
    from countclip_experiments.render.results import cue_scenes

    folder = facts.results / experiment / split
    scenes = cue_scenes(facts.results, folder, facts.run(experiment, split))
    if scenes is None:
        raise ValueError(f"{folder}: no cue report to tell the cue-blind images")
    rows = facts.rows(experiment, split)
    blind = cue_blind_rows(scenes)
    found = compare(rows["countclip"], rows[CONTROL], blind)
    assert found is not None
    evaluated = {int(i) for r in rows["countclip"] for i in r["sample_ids"]}
    return found, len(blind & evaluated)


def results_say(facts: Facts) -> str:
    r1 = facts.cmp("bench-counting", "dev2", "countclip")
    r1_dev = facts.cmp("bench-counting", "dev", "countclip")
    r2 = facts.cmp("bench-counting-r2", "dev2", "countclip")
    r2_dev = facts.cmp("bench-counting-r2", "dev", "countclip")
    control = facts.rows("bench-counting", "dev2")[CONTROL]
    ctl_acc = [r["accuracy"] for r in control]
    r2_rows = facts.rows("bench-counting-r2", "dev2")
    shape_gap = zero_shot_mean(r2_rows["countclip"], "shape") - zero_shot_mean(control, "shape")
    per_count = per_count_mean(r2_rows["countclip"])
    worst = min(per_count, key=per_count.get)
    naive = _naive_vs_verified(facts, "dev2")
    naive_dev = _naive_vs_verified(facts, "dev")
    naive_ctl = facts.cmp("bench-counting-r2-naive", "dev2", "countclip-naive")
    n40 = facts.cmp("bench-counting-noise40", "dev2", "countclip", "countclip-naive")
    n40_dev = facts.cmp("bench-counting-noise40", "dev", "countclip", "countclip-naive")
    n40_ctl = facts.cmp("bench-counting-noise40", "dev2", "countclip")
    r1_log = facts.cmp("bench-counting", "dev2", "lambda-log-matched", "countclip")
    r1_norm = facts.cmp("bench-counting", "dev2", "lambda-norm-matched", "countclip")
    r1_log_dev = facts.cmp("bench-counting", "dev", "lambda-log-matched", "countclip")
    r1_norm_dev = facts.cmp("bench-counting", "dev", "lambda-norm-matched", "countclip")
    r2_log = facts.cmp("bench-counting-r2-lambda", "dev2", "lambda-log-matched", "countclip")
    r2_norm = facts.cmp("bench-counting-r2-lambda", "dev2", "lambda-norm-matched", "countclip")
    r2_log_dev = facts.cmp("bench-counting-r2-lambda", "dev", "lambda-log-matched", "countclip")
    r2_norm_dev = facts.cmp("bench-counting-r2-lambda", "dev", "lambda-norm-matched", "countclip")
    paper = facts.cmp("bench-counting", "dev2", "paper-literal")
    paper_base = facts.cmp("bench-counting", "dev2", "paper-literal", "baseline")
    blind = cue_blind(facts, "bench-counting-r2", "dev2")
    blind_dev = cue_blind(facts, "bench-counting-r2", "dev")
    blind_r1 = cue_blind(facts, "bench-counting", "dev2")
    return "\n".join(
        [
            "- **Recipe r1 (1 in 5 counting samples): no gain over the strong control.** "
            f"CountCLIP − control on dev2 {t_claim(r1)}; dev {r1_dev.t_text()}.",
            "- **Recipe r2 (CountCLIP at the control's 1 in 2): a gain the seeds do not "
            f"establish.** On dev2 {full_claim(r2)}; dev {r2_dev.t_text()} (bootstrap "
            f"{r2_dev.bootstrap_text()}). The bootstrap excludes 0, the seed-level interval "
            "does not: the three per-seed gains differ by more than the images can explain, "
            f"and the control itself spans {100 * min(ctl_acc):.1f}–{100 * max(ctl_acc):.1f}% "
            "over the three pretraining seeds. Zero-shot shape "
            f"{pts(shape_gap)} points against the control; its worst count ({worst}) "
            f"{pct(per_count[worst])}. r2 was designed after r1's numbers on this CountBench "
            "were seen, which is why it is now a development set.",
            "- **Naive filtering vs image-side verification** (r2's recipe on the "
            "caption-filtered set, experiment `bench-counting-r2-naive`, three seeds): verified "
            f"− naive on dev2 {full_claim(naive)}; dev {naive_dev.t_text()}. The naive-filtered "
            f"CountCLIP against the control: {naive_ctl.t_text()} (seed-level).",
            "- **The same ablation at twice the caption noise** (experiment "
            "`bench-counting-noise40`, 40% of counting captions wrong): verified − naive on dev2 "
            f"{full_claim(n40)} — two seeds, so the seed-level interval has one degree of "
            f"freedom; dev (seed 0) {one_seed(n40_dev)}. Against the control, which ran seed 0 "
            f"only, the verified CountCLIP is {one_seed(n40_ctl)}: the README row's two-seed "
            "accuracy and one-seed Δ are marked as such.",
            "- **λ schemes at matched mean λ** (seed 0 only: bootstrap over images, no "
            "seed-level interval). Under r1 (1 in 5) the rescaled schemes were *not* level "
            f"with the constant λ: λ_log − constant {one_seed(r1_log)} on dev2 and "
            f"{r1_log_dev.bootstrap_text()} on dev; λ_norm {r1_norm.bootstrap_text()} on dev2 "
            f"and {r1_norm_dev.bootstrap_text()} on dev. Under r2 (1 in 2, experiment "
            f"`bench-counting-r2-lambda`) they lose: λ_norm {r2_norm.bootstrap_text()} on dev2 "
            f"and {r2_norm_dev.bootstrap_text()} on dev; λ_log {r2_log.bootstrap_text()} on "
            f"dev2 and {r2_log_dev.bootstrap_text()} on dev. So the shape of λ mattered at r1's "
            "mix, in λ_log's favour on dev2, and not in the rescaled schemes' favour at r2's; "
            "one seed each, and r2's λ was not re-chosen from this.",
            f"- **Paper-literal settings** (r1, seed 0): {one_seed(paper)} against the "
            f"control and {paper_base.bootstrap_text()} against the baseline it started from: "
            "the reproduction's settings barely move the baseline.",
            f"- **Cues.** On the {blind[1]} images of dev2 whose count no single cue guesses, "
            f"r2's CountCLIP − control is {full_claim(blind[0])} (dev {blind_dev[0].t_text()}); "
            f"r1's {blind_r1[0].t_text()}. This analysis was added after both recipes' results "
            "were seen; it chooses nothing.",
        ]
    )


OWN_BASELINE = {
    "bench-counting-r5-small": "; countclip-small, its own baseline",
    "bench-counting-r5-data": "; twice the counting captions per count, its own baseline",
}


def after_r2(facts: Facts) -> str:
    lines = []
    order = ("bench-counting-r3-steps", "bench-counting-r3-lambda", "bench-counting-r3-lr",
             "bench-counting-r4-lock", "bench-counting-r4-lock-text", "bench-counting-r5-small",
             "bench-counting-r5-data")  # fmt: skip
    pairs = validation_pairs(facts)
    for name in order:
        for record, run, control in pairs:
            if record != name:
                continue
            setting = (
                f"λ0 {run['lambda0']:g}, {run['steps']} steps, lr {run['lr']:g}"
                + OWN_BASELINE.get(name, "")
                + ("; image tower half locked" if run.get("lock_image") else "")
                + ("; text tower locked but its last layer" if run.get("lock_text") else "")
            )
            lines.append(f"- `{name}` ({setting}): {_gap(run, control)}.")
    return "\n".join(lines)


def wise_ft_outcome(facts: Facts) -> str:
    """The r6 sweep, one row per α (the sweeps from the control's baseline side by side), and
    what the rule chose from it."""
    choice = choose_wise_ft(r6_sweeps(facts))
    if choice is None:
        return "The sweep has not been recorded yet."
    sweeps = r6_sweeps(facts)
    control = next(s for s in sweeps if s["run"]["count_loss"] == "none")
    start = control["run"]["baseline"]
    same_start = [s for s in sweeps if s is not control and s["run"]["baseline"] == start]
    shown = [control, *sorted(same_start, key=lambda s: s["run"]["lambda0"])]
    left_out = sorted({s["record"] for s in sweeps if s["run"]["baseline"] != start})
    heads = ["control"] + [f"CountCLIP λ0 {s['run']['lambda0']:g}" for s in shown[1:]]
    lines = [
        "Balanced validation accuracy / zero-shot validation shape (%) at each α (α = 0: the "
        "baseline; 1: the fine-tune):",
        "",
        "| α | " + " | ".join(heads) + " |",
        "|---:|" + "---:|" * len(heads),
    ]
    alphas = sorted({p["alpha"] for s in shown for p in s["points"]})
    for alpha in alphas:
        cells = []
        for sweep in shown:
            point = next((p for p in sweep["points"] if p["alpha"] == alpha), None)
            cells.append(
                "–" if point is None else f"{point['balanced']:.3f} / {100 * point['shape']:.1f}"
            )
        lines.append(f"| {alpha:g} | " + " | ".join(cells) + " |")
    low = min(choice.countclip["per_count"].items(), key=lambda kv: kv[1], default=None)
    verdict = (
        f"within 2 points of S ({pts(choice.shape_gap)})"
        if choice.eligible
        else "no CountCLIP point came within 2 points of S, so the rule took the highest "
        f"shape ({pts(choice.shape_gap)} points)"
    )
    lowest = f"; lowest per-count validation recall {low[1]:.2f} (count {low[0]})" if low else ""
    base = next(p for p in control["points"] if p["alpha"] == 0)
    sentences = [
        f"The rule chose the control's α = {choice.control_alpha:g} (balanced validation "
        f"{choice.control['balanced']:.3f}; S = {100 * choice.control['shape']:.1f}) and "
        f"CountCLIP at λ0 = {choice.lambda0:g}, α = {choice.alpha:g}: balanced validation "
        f"{choice.countclip['balanced']:.3f}, a gap of {choice.gap:+.3f}, shape "
        f"{100 * choice.countclip['shape']:.1f}; {verdict}{lowest}.",
        f"WiSE-FT moves a model towards the baseline, whose shape ({100 * base['shape']:.1f} "
        "at α = 0) is below every fine-tune's here: in this world fine-tuning teaches shape "
        "rather than forgetting it, so interpolating cannot give shape back (OpenAI's CLIP, "
        "the real path's start, is another case).",
        f"Validation {'meets' if choice.gap >= GOAL_GAIN else 'does not meet'} the +0.10 gap "
        "the goal's +10 points would need on balanced accuracy.",
    ]
    if left_out:
        sentences.append("Not compared (made from another baseline): " + ", ".join(left_out) + ".")
    return "\n".join([*lines, "", " ".join(sentences)])


def goals(facts: Facts, experiment: str) -> str:
    """What a finished confirmatory run says about the issue's goals: each goal with its
    numbers, then how many were met."""
    rows = facts.rows(experiment, "confirmatory")
    main = facts.cmp(experiment, "confirmatory", "countclip")
    per_count = per_count_mean(rows["countclip"])
    worst = min(per_count, key=per_count.get)
    shape = zero_shot_mean(rows["countclip"], "shape") - zero_shot_mean(rows[CONTROL], "shape")
    met = {
        "the +10-point gain with a seed-level interval above 0": main.t["low"] is not None
        and main.diff >= GOAL_GAIN
        and main.t["low"] > 0,
        "every count ≥ 30%": per_count[worst] >= GOAL_COUNT,
        "zero-shot shape within 2 points of the control": abs(shape) <= GOAL_SHAPE or shape > 0,
    }
    said = ["met" if ok else "not met" for ok in met.values()]
    parts = [
        f"CountCLIP − strong control {full_claim(main)}: the +10-point goal with a seed-level "
        f"interval above 0 is {said[0]}",
        f"every count ≥ 30%: {said[1]} (lowest, count {worst}: {pct(per_count[worst])})",
        f"zero-shot shape within 2 points of the control: {said[2]} ({pts(shape)})",
    ]
    if "countclip-naive" in rows:
        naive = facts.cmp(experiment, "confirmatory", "countclip", "countclip-naive")
        parts.append(f"verified − naive {t_claim(naive)}")
    reached = [goal for goal, ok in met.items() if ok]
    missed = [goal for goal, ok in met.items() if not ok]
    verdict = f"Goals met: {len(reached)} of {len(met)}"
    if reached:
        verdict += f" ({', '.join(reached)})"
    if missed:
        verdict += f"; not met: {', '.join(missed)}"
    return "; ".join(parts) + ". " + verdict + "."


def readme_summary(facts: Facts) -> str:
    """The README's summary: the confirmatory outcome first, once there is one; then how the
    recipes got there on the development CountBenches."""
    r1 = facts.cmp("bench-counting", "dev2", "countclip")
    r2 = facts.cmp("bench-counting-r2", "dev2", "countclip")
    naive = _naive_vs_verified(facts, "dev2")
    n40 = facts.cmp("bench-counting-noise40", "dev2", "countclip", "countclip-naive")
    choice = choose_wise_ft(r6_sweeps(facts))
    r6 = (
        f"Recipe r6 is r2 with WiSE-FT, chosen on validation (λ0 = {choice.lambda0:g}, "
        f"α = {choice.alpha:g}; control α = {choice.control_alpha:g}). "
        if choice
        else "Recipe r6 (r2 with WiSE-FT) is being chosen on validation. "
    )
    confirmatory = sorted(e for e, s in facts.runs if s == "confirmatory")
    lead = "Before it, on" if confirmatory else "On"
    history = (
        f"{lead} dev2, recipe r2 gains {pts(r2.t['mean'])} points over the strong control. Three "
        f"seeds do not establish it: the 95% interval over seeds is {_bounds(r2)}. The image "
        f"check beats naive filtering by {naive.t_text()}. Recipe r1 was a null "
        f"({r1.t_text()}); with twice the wrong captions the image check gains "
        f"{n40.t_text()} (two seeds). "
    )
    if not confirmatory:
        return (
            history + r6 + "Until a registered run on the fresh confirmatory CountBench "
            "finishes, no claim that a recipe teaches counting beyond the strong control stands."
        )
    outcome = " ".join(
        f"`{e}` on the confirmatory CountBench ({len(facts.rows(e, 'confirmatory')[CONTROL])} "
        "seeds, registered before it ran): "
        f"{goals(facts, e)}"
        for e in confirmatory
    )
    return outcome + " " + r6 + history.strip()


def _bounds(found: Comparison) -> str:
    """A seed-level interval's bounds, in points."""
    return f"[{100 * found.t['low']:+.1f}, {100 * found.t['high']:+.1f}]"


def demo_numbers(facts: Facts) -> str:
    """What ``make demo`` printed on a fresh clone (``results/demo/``: its comparison.json and
    how the run was made)."""
    folder = facts.results / "demo"
    if not (folder / "comparison.json").is_file():
        return "No demo run is recorded yet."
    report = json.loads((folder / "comparison.json").read_text())
    run = json.loads((folder / "run.json").read_text())
    models = {m: pct(v["accuracy"]) for m, v in report["models"].items()}
    main = report["paired"]["countclip - control"]
    blind = report["paired"].get("countclip - control, cue-blind images")
    quiet, loaded = divmod(run["seconds_quiet"], 60), divmod(run["seconds_loaded"], 60)
    text = (
        f"Last run (2 cores): baseline {models['baseline']}, "
        f"control {models['control']}, CountCLIP {models['countclip']} on the development "
        f"CountBench. CountCLIP − control: {pts(main['diff'])} points, 95% CI "
        f"[{pts(main['low'])}, {pts(main['high'])}]"
    )
    if blind:
        text += (
            f"; on the {blind['images']} images no single cue guesses, {pts(blind['diff'])} "
            f"[{pts(blind['low'])}, {pts(blind['high'])}]"
        )
    again = " and printed the same numbers" if run.get("runs_with_the_same_numbers", 1) > 1 else ""
    return text + (
        f". The demo takes about {quiet[0]} min {quiet[1]} s on quiet cores after the install "
        f"({loaded[0]} min {loaded[1]} s beside other work{again}). Another kind of CPU may "
        "move the numbers a little ([why](docs/design.md#the-same-numbers-run-again))."
    )


BLOCKS: dict[str, Callable[[Facts], str]] = {
    "confirmatory-budget": confirmatory_budget,
    "cue-levels": cue_levels,
    "recipes-validation": recipes_validation,
    "results-say": results_say,
    "after-r2": after_r2,
    "wise-ft": wise_ft_outcome,
    "readme-summary": readme_summary,
    "demo": demo_numbers,
}
