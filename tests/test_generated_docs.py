"""Documents rendered from data are what the committed data renders to: the config reference
(from the models), the results and the README's table (from results/), the scale plan (from
benchmarks/results/). Edit the data or the script, never the page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "script", ["render_config_reference.py", "render_results.py", "render_scale_doc.py"]
)
def test_rendered_document_is_current(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _write_experiment(
    root: Path,
    name: str,
    commit: str,
    arms: dict[str, list[bool]],
    split: str = "confirmatory",
    seeds: dict[str, dict[int, list[bool]]] | None = None,
    **run_fields: object,
) -> None:
    """One run on ``split``: per arm, seed 0's correctness on four images (all true count 2),
    and for the arms in ``seeds`` the correctness of each of those seeds instead."""
    import json

    folder = root / name / split
    for arm, correct in arms.items():
        for seed, correct_s in (seeds or {}).get(arm, {0: correct}).items():
            _write_row(folder, name, arm, seed, correct_s)
    run = {"command": "bench", "commit": commit, "config_hash": "h", "arms_file_sha256": "a",
           "date": "d", "machine": "m", "minutes": 1, "seeds": [0], "countbench_message": "",
           "arms": {a: {} for a in arms}, "countbench": split, **run_fields}  # fmt: skip
    (folder / "run.json").write_text(json.dumps(run))


def _write_row(folder: Path, name: str, arm: str, seed: int, correct: list[bool]) -> None:
    import json

    row = {
        "arm": arm,
        "seed": seed,
        "sample_ids": list(range(len(correct))),
        "true": [2] * len(correct),
        "predicted": [2 if ok else 3 for ok in correct],
        "accuracy": sum(correct) / len(correct),
        "per_count_accuracy": {"2": sum(correct) / len(correct)},
        "zero_shot": {},
        # the control and the baseline are the very same runs in every experiment here
        "evaluation_fingerprint": f"{arm}/{seed}"
        if arm in ("control", "baseline")
        else f"{name}/{arm}/{seed}",
    }
    (folder / arm).mkdir(parents=True, exist_ok=True)
    (folder / arm / f"seed-{seed}.json").write_text(json.dumps(row))


def test_results_show_the_images_no_single_cue_guesses_and_refuse_another_worlds_cues(
    tmp_path: Path,
) -> None:
    import json

    from countclip_experiments.render import results as render_results

    # true count 2 everywhere: hull guesses images 0, spread image 1; 2 and 3 are cue-blind
    scenes = {"true": [2] * 4, "predicted": {"hull area": [2, 3, 3, 3], "spread": [3, 2, 3, 3],
                                             "all cues": [2, 2, 2, 2]}}  # fmt: skip
    cues = {"hull area": 0.25, "spread": 0.25, "all cues": 1.0}
    _write_experiment(
        tmp_path, "exp", "c1", {"control": [True, False, True, False], "countclip": [True] * 4},
        config="configs/world-a.yaml", countbench="confirmatory", cues=cues,
    )  # fmt: skip
    (tmp_path / "cues").mkdir()
    report = {"confirmatory": cues, "scenes": {"confirmatory": scenes}}
    (tmp_path / "cues" / "world-a.json").write_text(json.dumps(report))

    section = render_results.render(tmp_path)
    assert "On the 2 of 4 evaluated images whose count no single-cue classifier guesses" in section
    assert "| control | 0 | 50.0 |  |" in section
    assert "| countclip | 0 | 100.0 | +50.0 | – (1 seed) | +50.0 [" in section
    assert "| *best single cue* | 25 | – |" in section  # the best single cue's recall per count
    assert section.count("| hull area |") == 1  # the cue table once per CountBench
    assert render_results.shown_command(
        "python -m x --config /home/u/clone/configs/a.yaml --data-root /srv/x/data/bench -n 2"
    ) == "python -m x --config configs/a.yaml --data-root data/bench -n 2"  # fmt: skip

    report["confirmatory"] = {**cues, "spread": 0.5}  # another world's cue report
    (tmp_path / "cues" / "world-a.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match=r"world-a\.json: its confirmatory cue accuracies"):
        render_results.render(tmp_path)


def test_results_show_every_recipe_once_and_ablations_against_their_own_recipe(
    tmp_path: Path,
) -> None:
    from countclip_experiments.render import results as render_results

    base, control = [False, False, False, False], [True, False, False, False]
    recipe_1, recipe_2 = [True, True, False, False], [True, True, True, True]
    naive = [True, True, True, False]
    _write_experiment(
        tmp_path, "exp", "c1", {"baseline": base, "control": control, "countclip": recipe_1}
    )
    _write_experiment(
        tmp_path, "exp-r2", "c2", {"baseline": base, "control": control, "countclip": recipe_2}
    )
    _write_experiment(
        tmp_path, "exp-r2-naive", "c2", {"control": control, "countclip-naive": naive}
    )
    table = render_results.readme_table(tmp_path)
    # the headline is the latest recipe (by date, then name), with the naive run of its commit
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[0] for r in rows] == [
        "| model", "| CountCLIP (`exp-r2`)", "| strong control", "| CountCLIP, naive filter",
        "| baseline",
    ]  # fmt: skip
    assert "| 0 | 100.0 | – (1 seed) |" in rows[1] and "| 0 | 75.0 | – (1 seed) |" in rows[3]
    # the later ablation is paired with the recipe of its own commit (r2: 4/4), not r1's (2/4)
    section = render_results.render(tmp_path).split("## exp-r2-naive")[1]
    assert "`countclip` of exp-r2, same control runs" in section
    assert "| countclip-naive | 0 | -25.0 | – (1 seed) | -25.0 [" in section


def test_the_headline_skips_ablation_runs_and_other_worlds(tmp_path: Path) -> None:
    """A later run that repeats the recipe beside ablations, or the recipe in another world
    (another config), is not the headline recipe: they are studies, in docs/results.md."""
    from countclip_experiments.render import results as render_results

    control, recipe = [True, False, False, False], [True, True, True, False]
    _write_experiment(tmp_path, "exp-r2", "c2", {"control": control, "countclip": recipe}, date="1")
    _write_experiment(
        tmp_path, "exp-r2-lambda", "c3",
        {"control": control, "countclip": recipe, "lambda-log-matched": control}, date="2",
    )  # fmt: skip
    _write_experiment(
        tmp_path, "exp-noise", "c4", {"control": control, "countclip": control}, date="3",
        config="configs/bench-counting-noise40.yaml",
    )  # fmt: skip
    table = render_results.readme_table(tmp_path)
    assert "| CountCLIP (`exp-r2`) |" in table and table.count("| CountCLIP") == 1
    assert len([line for line in table.splitlines() if line.startswith("| ")]) <= 7  # + header
    # a later recipe with its own config (configs/bench-counting-r<N>.yaml) is the headline
    _write_experiment(
        tmp_path, "exp-r6", "c5", {"control": control, "countclip": recipe}, date="4",
        config="configs/bench-counting-r6.yaml",
    )  # fmt: skip
    assert "| CountCLIP (`exp-r6`) |" in render_results.readme_table(tmp_path)


def _validation_run(seed: int, loss: str, last: float, shape: float, **settings: object) -> dict:
    return {**settings,
        "train_fingerprint": f"t{seed}{loss}", "code_version": "v", "baseline": "b",
        "baseline_steps": 600, "seed": seed, "steps": 800, "lr": 5e-4, "counting_fraction": 0.5,
        "count_loss": loss, "lambda0": 0.35 if loss != "none" else None,
        "lambda_scheme": "constant" if loss != "none" else None, "counter": "classical",
        "val_balanced_last": last, "val_balanced_best": last + 0.01, "best_step": 700,
        "val_per_count_last": {}, "zero_shot_val": {"shape": shape, "shape_colour": shape / 2},
    }  # fmt: skip


def test_validation_records_render_every_run_and_refuse_a_second_record_of_a_name(
    tmp_path: Path,
) -> None:
    from countclip_experiments.records import write_record
    from countclip_experiments.render import results as render_results

    root = tmp_path / "validation"
    runs = [
        _validation_run(0, "none", 0.527, 0.458),
        _validation_run(0, "count_plus", 0.577, 0.434),
        _validation_run(0, "none", 0.5, 0.45, lock_image=True, lock_image_unlocked_groups=3),
    ]
    write_record("b-second", "λ0 at 1 in 2", runs, "tune", root=root)
    write_record("a-first", "", [_validation_run(1, "none", 0.385, 0.5)], "tune", root=root)
    with pytest.raises(FileExistsError, match=r"b-second\.json"):
        write_record("b-second", "again", runs, "tune", root=root)

    section = render_results.render(tmp_path).split("## Validation runs (tuning)")[1]
    rows = [line for line in section.splitlines() if line.startswith("| a-") or "| b-" in line]
    assert rows == [
        "| a-first | 1 | 600 | 800 | 0.0005 | 0.5 | L_CLIP only; classical counting set | 0.385 | "
        "0.395 @ 700 | 50.0 | 25.0 |",
        "| b-second | 0 | 600 | 800 | 0.0005 | 0.5 | L_CLIP only; classical counting set | 0.527 | "
        "0.537 @ 700 | 45.8 | 22.9 |",
        "| b-second | 0 | 600 | 800 | 0.0005 | 0.5 | count_plus, λ0 0.35 constant; classical "
        "counting set | 0.577 | 0.587 @ 700 | 43.4 | 21.7 |",
        "| b-second | 0 | 600 | 800 | 0.0005 | 0.5 | L_CLIP only; classical counting set; image "
        "tower locked but its last 3 groups | 0.500 | 0.510 @ 700 | 45.0 | 22.5 |",
    ]
    assert "- b-second: λ0 at 1 in 2" in section and "- a-first: (no note)" in section


def test_recording_an_unfinished_fine_tune_names_its_missing_manifest(tmp_path: Path) -> None:
    from countclip_experiments.records import record_run

    unfinished = tmp_path / "data" / "train" / "0123456789abcdef"
    unfinished.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"0123456789abcdef/manifest\.json"):
        record_run(unfinished)


def test_the_readme_marks_a_delta_paired_on_fewer_seeds_and_shows_the_seed_interval(
    tmp_path: Path,
) -> None:
    """A two-seed row against a one-seed control says its Δ is seed 0's only; with seeds on
    both sides every table shows the per-seed differences, the seed-level t-interval and the
    bootstrap; dev2 runs are shown as the former confirmatory CountBench's."""
    from countclip_experiments.render import results as render_results

    four = [True, True, False, False]
    _write_experiment(
        tmp_path, "noisy", "c1", {"control": [True, False, False, False], "countclip": four},
        split="dev2", seeds={"countclip": {0: four, 1: [True] * 4}},
    )  # fmt: skip
    _write_experiment(
        tmp_path, "seeded", "c2", {"control": four, "countclip": four},
        seeds={"control": {0: four, 1: four, 2: four},
               "countclip": {0: [True] * 4, 1: [True, True, True, False], 2: [True] * 4}},
    )  # fmt: skip
    table = render_results.readme_table(tmp_path)  # a confirmatory run is the headline
    assert "On the confirmatory CountBench" in table and "`seeded`" in table
    row = next(line for line in table.splitlines() if line.startswith("| CountCLIP ("))
    assert row.endswith("| 0, 1, 2 | 91.7 ± 14.4 | +41.7 [+5.8, +77.5] |")
    dev2 = render_results.render(tmp_path).split("## noisy — dev2 CountBench")[1]
    assert "| countclip | 0, 1 | 75.0 ± 35.4 | +25.0 (seed 0 only) | – (1 seed) |" in dev2
    section = render_results.render(tmp_path).split("## seeded — confirmatory CountBench")[1]
    assert "| countclip | 0, 1, 2 | 91.7 ± 14.4 | +50.0, +25.0, +50.0 | +41.7 [+5.8, +77.5] |" in (
        section
    )


def test_claims_are_generated_and_numbers_outside_them_are_refused(tmp_path: Path) -> None:
    from countclip_experiments.render import claims

    facts = claims.Facts(REPO / "results")
    text = "Intro.\n\n<!-- claims:after-r2:start -->\nstale\n<!-- claims:after-r2:end -->\n"
    filled = claims.fill(text, facts)
    assert "stale" not in filled and "`bench-counting-r3-steps`" in filled
    assert claims.fill(filled, facts) == filled  # rendering is idempotent
    assert claims.unchecked_numbers(filled) == []
    with pytest.raises(KeyError, match="no such block"):
        claims.fill("<!-- claims:nope:start -->\n<!-- claims:nope:end -->\n", facts)
    prose = (
        "It gains +8.0 [+2.1, +13.4] points.\nValidation 0.577 vs 26.5% (p = 0.38).\n"
        "Settings: λ0 = 0.35, lr 2.5e-4, 20% noise, ties within 0.001, `+9.9 in code`.\n"
        "    +1.0 [+2.0, +3.0] in an indented code block\n"
    )
    hits = claims.unchecked_numbers(prose)
    assert [h.split(" in:")[0] for h in hits] == [
        "'+8.0'", "'[+2.1, +1'", "'0.577'", "'26.5%'", "'p = 0'",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="outside a generated claims block"):
        claims.check_claims({tmp_path / "x.md": prose})


def _sweep_record(name: str, loss: str, lambda0: float | None, points: dict) -> dict:
    """A tuning record with one plain fine-tune (α = 1: ``points[1]``) and its WiSE-FT rows."""
    base = _validation_run(0, loss, 0.5, 0.4)
    base.update(lambda0=lambda0, train_fingerprint=f"{name}-fp", wise_ft_alpha=None)
    first = points[1.0]
    plain = {**base, "val_balanced_best": first[0], "val_per_count_best": {"2": first[0]},
             "zero_shot_val": {"shape": first[1], "shape_colour": first[1] / 2}}  # fmt: skip
    runs = [plain]
    for alpha, (balanced, shape) in points.items():
        if alpha != 1.0:
            runs.append({**base, "wise_ft_alpha": alpha, "val_balanced_wise_ft": balanced,
                         "val_per_count_wise_ft": {"2": balanced, "7": balanced / 2},
                         "zero_shot_val": {"shape": shape, "shape_colour": shape / 2}})  # fmt: skip
    return {"name": name, "note": "", "command": "tune", "runs": runs}


def test_the_wise_ft_rule_picks_the_largest_gap_within_two_points_of_shape(
    tmp_path: Path,
) -> None:
    """Recipe r6's rule as written: the control's α by its own score, then CountCLIP's
    (λ0, α) with the largest gap among those within 2 points of the control's shape."""
    import json

    from countclip_experiments.render import claims
    from countclip_experiments.render.study_sections import validation_section, wise_ft_sweeps

    control = _sweep_record("r6-a", "none", None, {1.0: (0.52, 0.46), 0.8: (0.53, 0.47),
                                                     0.5: (0.45, 0.44)})  # fmt: skip
    low_lambda = _sweep_record("r6-b", "count_plus", 0.35, {1.0: (0.60, 0.42), 0.8: (0.59, 0.455),
                                                            0.5: (0.50, 0.46)})  # fmt: skip
    high_lambda = _sweep_record("r6-c", "count_plus", 0.6, {1.0: (0.66, 0.38), 0.8: (0.63, 0.44),
                                                            0.5: (0.55, 0.45)})  # fmt: skip
    sweeps = wise_ft_sweeps([control, low_lambda, high_lambda])
    choice = claims.choose_wise_ft(sweeps)
    assert choice.control_alpha == 0.8 and choice.control["shape"] == 0.47
    # eligible (shape >= 0.45): (0.35, 0.8) 0.59, (0.35, 0.5) 0.50, (0.6, 0.5) 0.55
    assert (choice.lambda0, choice.alpha, choice.eligible) == (0.35, 0.8, True)
    assert choice.gap == pytest.approx(0.06)
    # a CountCLIP sweep from another baseline is no candidate (compared only from one start)
    elsewhere = _sweep_record("r6-d", "count_plus", 0.35, {1.0: (0.9, 0.47), 0.8: (0.9, 0.47)})
    for run in elsewhere["runs"]:
        run["baseline"] = "another"
    again = claims.choose_wise_ft(wise_ft_sweeps([control, low_lambda, high_lambda, elsewhere]))
    assert (again.lambda0, again.alpha, again.countclip["balanced"]) == (0.35, 0.8, 0.59)
    # nothing within 2 points: the highest shape
    strict = _sweep_record("r6-a", "none", None, {1.0: (0.52, 0.60), 0.8: (0.50, 0.40)})
    none_ok = claims.choose_wise_ft(wise_ft_sweeps([strict, high_lambda]))
    assert (none_ok.lambda0, none_ok.alpha, none_ok.eligible) == (0.6, 0.5, False)
    (tmp_path / "validation").mkdir()
    for record in (control, low_lambda):
        (tmp_path / "validation" / f"{record['name']}.json").write_text(json.dumps(record))
    section = validation_section(tmp_path)
    assert "| r6-b | 0 | count_plus, λ0 0.35 constant; classical counting set | 0.8 | 0.590 | " in (
        section
    )
    assert "0.29 (7)" in section  # the lowest count's recall at α = 0.8


def test_the_committed_r6_recipe_is_what_the_rule_chose() -> None:
    """configs/bench-counting-r6.yaml and the control arm carry exactly the rule's choice from
    the committed WiSE-FT records (once they exist)."""
    from countclip.yamlconfig import load_config
    from countclip_experiments import experiment
    from countclip_experiments.render import claims

    choice = claims.choose_wise_ft(claims.r6_sweeps(claims.Facts(REPO / "results")))
    config = REPO / "configs" / "bench-counting-r6.yaml"
    if choice is None or not config.exists():
        pytest.skip("recipe r6 is not chosen yet")
    cfg = load_config(config)
    arms = experiment.load_arms()
    assert cfg.name == claims.R6
    assert cfg.train.wise_ft_alpha == pytest.approx(choice.alpha)
    assert cfg.lambdas.lambda0 == pytest.approx(choice.lambda0)
    control = experiment.arm_config(cfg, arms["control"], 0)
    assert (control.train.wise_ft_alpha or 1.0) == pytest.approx(choice.control_alpha)
    naive = experiment.arm_config(cfg, arms["countclip-naive"], 0)
    assert naive.train.wise_ft_alpha == cfg.train.wise_ft_alpha
