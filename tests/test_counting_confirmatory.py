"""The confirmatory counting run end to end on a tiny world, in a git repository of its own:
it registers (a committed ledger entry) before anything is built, trains the arms (CountCLIP
through WiSE-FT), evaluates them on the confirmatory CountBench only, writes the rows and
``run.json``, marks the entry finished, and refuses to run again under another name. Its first
attempt dies midway and is resumed: the same entry, not a second one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from countclip_experiments.ledger import LEDGER, LedgerRefused

TINY = {
    "name": "tiny-r6",
    "synthetic": True,
    "world": {"seed": 0, "rows": 600, "parts": 1, "counting_fraction": 0.3, "image_size": 32,
              "misbehave_fraction": 0.0, "slow_seconds": 0.5, "countbench_per_count": 2,
              "zero_shot_per_class": 2, "zero_shot_image_size": 32},
    "metadata": {"common_ratio": 1.0, "min_width": 16, "min_height": 16, "min_similarity": 0.0},
    "captions": {"batch_size": 500},
    "download": {"image_size": 32, "processes_count": 1, "thread_count": 8, "timeout": 5.0,
                 "retry_failed_passes": 0, "number_sample_per_shard": 1000},
    "lambdas": {"scheme": "constant"},
    "pretrain": {"rows": 200, "steps": 3, "batch_size": 8, "image_size": 32, "warmup_steps": 1},
    "train": {"steps": 3, "batch_size": 8, "warmup_steps": 1, "eval_every": 3,
              "checkpoint_every": 3, "val_fraction": 0.2, "count_sampling_power": 0.0,
              "wise_ft_alpha": 0.5, "report_to": []},
    "evaluate": {"min_images": 0.0},
}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_a_confirmatory_run_registers_runs_and_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from countclip_experiments import counting

    repo = tmp_path / "repo"
    (repo / "configs").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.invalid")
    (repo / ".gitignore").write_text("/data/\n")
    (repo / "configs" / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "tiny recipe")
    recipe = git(repo, "rev-parse", "HEAD")
    monkeypatch.setattr(counting, "REPO", repo)
    argv = [
        "--config", str(repo / "configs" / "tiny.yaml"), "--data-root", str(repo / "data"),
        "--seeds", "0", "--arms", "countclip", "control", "--countbench", "confirmatory",
        "--jobs", "1",
    ]  # fmt: skip
    # The first attempt dies after the baselines (a fine-tune worker lost): the entry says
    # aborted, the baseline's row is kept, and a new entry for this CountBench is refused.
    real_parallel = counting.ex.parallel

    def worker_lost(*_args, **_kwargs):
        raise RuntimeError("worker lost")
        yield  # a generator, like the real one

    monkeypatch.setattr(counting.ex, "parallel", worker_lost)
    with pytest.raises(RuntimeError, match="worker lost"):
        counting.main(argv)
    [entry] = json.loads((repo / LEDGER).read_text())
    assert entry["status"] == "aborted" and "worker lost" in entry["reason"]
    out = repo / "results" / "tiny-r6" / "confirmatory"
    assert (out / "baseline" / "seed-0.json").is_file() and not (out / "run.json").exists()
    with pytest.raises(LedgerRefused, match=r"untracked files \(results/tiny-r6/"):
        counting.main(argv)  # a new entry: refused (its rows are not the recipe)
    # Resumed from the same tree and commit, it is the same entry, and finishes.
    monkeypatch.setattr(counting.ex, "parallel", real_parallel)
    assert counting.main([*argv, "--resume"]) == 0

    [entry] = json.loads((repo / LEDGER).read_text())
    assert entry["status"] == "finished" and entry["commit"] == recipe
    assert entry["experiment"] == "tiny-r6" and entry["family"] == "counting"
    assert entry["countbench"]["split"] == "confirmatory" and entry["seeds"] == [0]
    assert entry["results"] == "results/tiny-r6/confirmatory"
    [attempt] = entry["resumed"]
    assert attempt["previous_status"] == "aborted" and "worker lost" in attempt["previous_reason"]
    subjects = git(repo, "log", "--format=%s").splitlines()
    assert subjects[0].startswith("ledger: tiny-r6 finished")
    assert subjects[1].startswith("ledger: tiny-r6 resumed")
    assert subjects[2].startswith("ledger: tiny-r6 aborted")
    assert subjects[3].startswith("ledger: register tiny-r6 on the confirmatory CountBench")
    assert subjects[4] == "tiny recipe"

    run = json.loads((out / "run.json").read_text())
    assert run["commit"] == recipe and run["ledger_entry"] == entry["id"]
    assert run["attempts"] == 2
    assert run["countbench"] == "confirmatory" and set(run["cues"]) >= {"hull area"}
    countclip = json.loads((out / "countclip" / "seed-0.json").read_text())
    assert countclip["countbench"] == "confirmatory"
    assert countclip["train"]["stage"] == "wise_ft" and countclip["train"]["wise_ft_alpha"] == 0.5
    control = json.loads((out / "control" / "seed-0.json").read_text())
    # the control's α is the arms file's (its own, chosen on its own validation score), else the
    # config's: a plain fine-tune at α = 1
    from countclip.yamlconfig import load_config
    from countclip_experiments import experiment

    cfg = load_config(str(repo / "configs" / "tiny.yaml"))
    alpha = experiment.arm_config(cfg, experiment.load_arms()["control"], 0).train.wise_ft_alpha
    plain = alpha is None or alpha == 1
    assert control["train"].get("stage") == (None if plain else "wise_ft")
    fetched = [m.read_text() for m in (repo / "data" / "countbench").glob("*/manifest.json")]
    assert len(fetched) == 1 and "countbench-confirmatory.json" in fetched[0]  # no dev, no dev2
    # The results are new, untracked files: commit them, then try again under another name.
    git(repo, "add", "results")
    git(repo, "commit", "-q", "-m", "results")
    with pytest.raises(LedgerRefused, match="already used"):
        counting.main([*argv, "--name", "tiny-r6-again"])
    with pytest.raises(SystemExit, match="already run"):
        counting.main([*argv, "--resume"])
