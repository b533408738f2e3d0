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
    # both recipes are shown; the shared baseline and control runs only once
    assert "| exp (`c1`) | countclip |" in table and "| exp-r2 (`c2`) | countclip |" in table
    assert table.count("| control |") == 1 and table.count("| baseline |") == 1
    assert "Not repeated: exp-r2 baseline" in table
    # the later ablation is paired with the recipe of its own commit (r2: 4/4), not r1's (2/4)
    section = render_results.render(tmp_path).split("## exp-r2-naive")[1]
    assert "`countclip` of exp-r2, same control runs" in section
    assert "| countclip-naive | 0 | -25.0 | – (1 seed) | -25.0 [" in section


def test_a_run_made_again_with_the_same_outcome_is_not_a_second_row(tmp_path: Path) -> None:
    from countclip_experiments.render import results as render_results

    control, recipe = [True, False, False, False], [True, True, True, False]
    _write_experiment(tmp_path, "exp-r2", "c2", {"control": control, "countclip": recipe})
    # made again later (other commit, so other fingerprints), with ablations beside it
    _write_experiment(
        tmp_path, "exp-r2-lambda", "c3",
        {"control": control, "countclip": recipe, "lambda-log-matched": control},
    )  # fmt: skip
    table = render_results.readme_table(tmp_path)
    assert table.count("| countclip |") == 1
    assert (
        "exp-r2-lambda countclip (seed 0 of exp-r2 countclip made again: the same prediction "
        "for every image)" in table
    )
    # one image predicted differently is another outcome, shown as its own row
    _write_experiment(tmp_path, "exp-r3", "c4", {"control": control, "countclip": recipe[::-1]})
    assert render_results.readme_table(tmp_path).count("| countclip |") == 2


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
