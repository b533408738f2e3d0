"""The confirmatory ledger, on real git repositories: every way around the run-once guard the
issue named (a new ``--name``, a worktree without the results, untracked files, an aborted run
repeated) is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from countclip_experiments import ledger
from countclip_experiments.ledger import LEDGER, LedgerRefused

BENCH = {"split": "confirmatory", "seed": 32, "per_count": 60, "digest": "c0ffee0123456789"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test")
    git(root, "config", "user.email", "test@example.invalid")
    (root / ".gitignore").write_text("/data/\n")
    (root / "configs").mkdir()
    (root / "configs" / "recipe.yaml").write_text("name: recipe\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "recipe")
    return root


def fields(experiment: str = "bench-counting-r6", **kw) -> dict:
    return {
        "experiment": experiment,
        "family": "counting",
        "countbench": BENCH,
        "config": "configs/recipe.yaml",
        "config_hash": "0123",
        "arms_file_sha256": "4567",
        "seeds": [0, 1, 2, 3, 4],
        "seeds_by_arm": {"countclip": [0, 1, 2, 3, 4], "control": [0, 1, 2, 3, 4]},
        "command": ["python", "-m", "countclip_experiments.counting", "--countbench", "x"],
        **kw,
    }


def entries(repo: Path) -> list[dict]:
    return json.loads((repo / LEDGER).read_text())


def test_registering_commits_the_entry_alone_before_the_run(repo: Path) -> None:
    recipe = git(repo, "rev-parse", "HEAD")
    (repo / "data").mkdir()
    (repo / "data" / "built.bin").write_text("ignored build output is not the recipe")
    registration = ledger.register(repo, **fields())
    assert git(repo, "status", "--porcelain") == ""  # committed: the tree is clean again
    assert git(repo, "log", "-1", "--name-only", "--format=") == LEDGER.as_posix()
    assert git(repo, "rev-parse", "HEAD~1") == recipe
    [entry] = entries(repo)
    assert entry["status"] == "started" and entry["commit"] == recipe
    assert entry["countbench"] == BENCH and entry["family"] == "counting"
    assert entry["seeds"] == [0, 1, 2, 3, 4] and entry["started_at"]
    assert {"config_hash", "arms_file_sha256", "command", "experiment"} <= set(entry)
    ref = git(repo, "rev-parse", ledger.REF_PREFIX + entry["id"])
    assert ref == registration.commit == git(repo, "rev-parse", "HEAD")
    registration.finish(results="results/x/confirmatory")
    [entry] = entries(repo)
    assert entry["status"] == "finished" and entry["results"] == "results/x/confirmatory"
    assert git(repo, "status", "--porcelain") == ""


def test_a_new_name_is_refused(repo: Path) -> None:
    ledger.register(repo, **fields("bench-counting-r6"))
    with pytest.raises(LedgerRefused, match="already used for recipe family 'counting'"):
        ledger.register(repo, **fields("bench-counting-r6-again"))
    # Another question, or another (fresh) CountBench, is another entry.
    ledger.register(repo, **fields("noise", family="noise"))
    fresh = {**BENCH, "seed": 33, "digest": "fresh0123456789a"}
    ledger.register(repo, **fields("bench-counting-r7", countbench=fresh))
    assert len(entries(repo)) == 3
    with pytest.raises(LedgerRefused, match="recipe family 'mine'"):
        ledger.register(repo, **fields(family="mine"))


@pytest.mark.parametrize("change", ["untracked", "modified", "staged", "deleted"])
def test_any_uncommitted_file_is_refused_untracked_included(repo: Path, change: str) -> None:
    if change == "untracked":
        (repo / "configs" / "new-recipe.yaml").write_text("name: other\n")
    elif change == "modified":
        (repo / "configs" / "recipe.yaml").write_text("name: edited\n")
    elif change == "staged":
        (repo / "notes.txt").write_text("x\n")
        git(repo, "add", "notes.txt")
    else:
        (repo / "configs" / "recipe.yaml").unlink()
    with pytest.raises(LedgerRefused, match="uncommitted or untracked"):
        ledger.register(repo, **fields())
    assert not (repo / LEDGER).exists()


def test_a_worktree_without_the_entry_is_refused(repo: Path, tmp_path: Path) -> None:
    """A worktree (or branch) made from a commit before the entry has no ledger file at all:
    the entry is found in the repository's refs all the same."""
    before = git(repo, "rev-parse", "HEAD")
    ledger.register(repo, **fields())
    detached = tmp_path / "wt-detached"
    git(repo, "worktree", "add", "-q", "--detach", str(detached), before)
    assert not (detached / "results").exists()
    with pytest.raises(LedgerRefused, match="already used"):
        ledger.register(detached, **fields("bench-counting-r6-wt"))
    branch = tmp_path / "wt-branch"
    git(repo, "worktree", "add", "-q", "-b", "elsewhere", str(branch), before)
    with pytest.raises(LedgerRefused, match="already used"):
        ledger.register(branch, **fields("bench-counting-r6-branch"))


def test_an_entry_made_in_a_removed_worktree_still_counts(repo: Path, tmp_path: Path) -> None:
    """Registered from a detached worktree that is gone since: the ledger ref keeps it."""
    worktree = tmp_path / "science"
    git(repo, "worktree", "add", "-q", "--detach", str(worktree), "HEAD")
    ledger.register(worktree, **fields())
    git(repo, "worktree", "remove", "--force", str(worktree))
    assert not (repo / LEDGER).exists()  # main's own tree never saw the entry
    with pytest.raises(LedgerRefused, match="already used"):
        ledger.register(repo, **fields("bench-counting-r6-main"))


def test_an_aborted_run_stays_in_the_ledger_and_cannot_be_repeated(repo: Path) -> None:
    with pytest.raises(RuntimeError, match="out of disk"), ledger.registered(repo, **fields()):
        raise RuntimeError("out of disk")
    [entry] = entries(repo)
    assert entry["status"] == "aborted" and "out of disk" in entry["reason"]
    assert entry["finished_at"] and git(repo, "status", "--porcelain") == ""
    with pytest.raises(LedgerRefused, match=r"already used.*aborted"):
        ledger.register(repo, **fields())


def test_a_run_that_ends_is_finished(repo: Path) -> None:
    with ledger.registered(repo, **fields()):
        pass
    [entry] = entries(repo)
    assert entry["status"] == "finished"
    log = git(repo, "log", "--format=%s").splitlines()
    assert log[0].startswith("ledger: bench-counting-r6 finished")
    assert log[1].startswith("ledger: register bench-counting-r6 on the confirmatory")


def test_a_terminated_run_says_aborted_and_a_killed_one_stays_started(repo: Path) -> None:
    """SIGTERM reaches the entry (aborted); SIGKILL cannot, and the run still counts."""
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        from countclip_experiments import ledger
        fields = json.loads(sys.argv[1])
        with ledger.registered(Path({str(repo)!r}), **fields):
            print("registered", flush=True)
            time.sleep(60)
        """
    )
    for sig, experiment, status in (
        (signal.SIGTERM, "terminated", "aborted"),
        (signal.SIGKILL, "killed", "started"),
    ):
        bench = {**BENCH, "digest": f"{experiment:0<16}"[:16]}
        proc = subprocess.Popen(
            [sys.executable, "-c", script, json.dumps(fields(experiment, countbench=bench))],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ},
        )
        assert proc.stdout.readline().strip() == "registered"
        proc.send_signal(sig)
        proc.wait(timeout=60)
        time.sleep(0.2)
        mine = [e for e in entries(repo) if e["experiment"] == experiment]
        assert [e["status"] for e in mine] == [status]
        with pytest.raises(LedgerRefused, match="already used"):
            ledger.register(repo, **fields(experiment + "-again", countbench=bench))


def test_the_counting_experiment_registers_before_it_builds(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--countbench confirmatory`` goes through the guard before anything is built: in a
    tree with an untracked file it stops at once, and after a registration (under another
    name) it refuses the same CountBench."""
    from countclip_experiments import counting

    real = Path(counting.__file__).resolve().parents[1]
    monkeypatch.setattr(counting, "REPO", repo)
    monkeypatch.setattr(
        counting.ex, "build_data", lambda *a, **k: pytest.fail("built before the guard")
    )
    argv = [
        "--config", str(real / "configs" / "bench-counting.yaml"),
        "--data-root", str(repo / "data" / "root"),
        "--countbench", "confirmatory", "--seeds", "0",
    ]  # fmt: skip
    (repo / "stray.py").write_text("x = 1\n")
    with pytest.raises(LedgerRefused, match=r"untracked.*stray\.py"):
        counting.main(argv)
    (repo / "stray.py").unlink()
    from countclip.config import WorldConfig
    from countclip.synthetic.bench_scenes import countbench_scenes

    cfg_world = counting.load_config(str(real / "configs" / "bench-counting.yaml")).world
    assert isinstance(cfg_world, WorldConfig)
    digest = ledger.countbench_digest(countbench_scenes(cfg_world, "confirmatory"))
    ledger.register(repo, **fields("first", countbench={**BENCH, "digest": digest}))
    with pytest.raises(LedgerRefused, match="already used"):
        counting.main([*argv, "--name", "a-new-name"])


ROWS = "results/bench-counting-r6/confirmatory"


def resume_fields(**kw) -> dict:
    return fields(**kw) | {"own_rows": ROWS}


def aborted(repo: Path) -> dict:
    with pytest.raises(RuntimeError), ledger.registered(repo, **fields()):
        raise RuntimeError("session ended")
    rows = repo / ROWS / "baseline"
    rows.mkdir(parents=True)
    (rows / "seed-0.json").write_text("{}\n")  # what the first attempt wrote: untracked
    [entry] = entries(repo)
    return entry


def test_an_unfinished_entry_is_resumed_not_repeated(repo: Path) -> None:
    first = aborted(repo)
    registration = ledger.resume(repo, **resume_fields())
    [entry] = entries(repo)
    assert entry["id"] == first["id"] == registration.entry["id"]
    assert entry["status"] == "started" and entry["reason"] is None
    [attempt] = entry["resumed"]
    assert attempt["previous_status"] == "aborted" and "session ended" in attempt["previous_reason"]
    assert git(repo, "log", "-1", "--format=%s") == "ledger: bench-counting-r6 resumed"
    assert git(repo, "rev-parse", ledger.REF_PREFIX + entry["id"]) == registration.commit
    registration.finish(results=ROWS)
    with pytest.raises(LedgerRefused, match="finished: nothing to resume"):
        ledger.resume(repo, **resume_fields())


def test_a_resumed_run_is_the_registered_recipe_or_nothing(repo: Path, tmp_path: Path) -> None:
    aborted(repo)
    with pytest.raises(LedgerRefused, match=r"registered for another run.*config_hash"):
        ledger.resume(repo, **resume_fields(config_hash="edited"))
    with pytest.raises(LedgerRefused, match=r"registered for another run.*seeds"):
        ledger.resume(repo, **resume_fields(seeds=[0, 1, 2]))
    (repo / "stray.py").write_text("x = 1\n")
    with pytest.raises(LedgerRefused, match=r"other than the run's own rows \(stray\.py"):
        ledger.resume(repo, **resume_fields())
    (repo / "stray.py").unlink()
    other = tmp_path / "elsewhere"
    git(repo, "worktree", "add", "-q", "--detach", str(other), "HEAD~2")
    with pytest.raises(LedgerRefused, match="made in another tree"):
        ledger.resume(other, **resume_fields())
    (repo / "configs" / "recipe.yaml").write_text("name: recipe\nlr: 1\n")
    git(repo, "commit", "-q", "-am", "a better idea")
    with pytest.raises(LedgerRefused, match=r"configs/recipe\.yaml changed"):
        ledger.resume(repo, **resume_fields())
    [entry] = entries(repo)
    assert entry["status"] == "aborted" and "resumed" not in entry


def test_results_md_lists_every_entry_with_its_resumptions(repo: Path) -> None:
    from countclip_experiments.render.results import ledger_section

    aborted(repo)
    ledger.resume(repo, **resume_fields())
    shown = ledger_section(repo / "results")
    [row] = [line for line in shown.splitlines() if "bench-counting-r6" in line]
    assert row.endswith("| started (resumed 1×) |") and "c0ffee0123456789" in row


def test_the_protocol_says_how_long_each_attempt_took(repo: Path) -> None:
    """The CPU budget in docs/protocol.md comes from the ledger: the first attempt ended with
    an abort, the resumed one is still running (no end yet)."""
    from countclip_experiments.render.claims import Facts
    from countclip_experiments.render.ledger_claims import confirmatory_budget

    aborted(repo)
    ledger.resume(repo, **resume_fields())
    text = confirmatory_budget(Facts(repo / "results"))
    [entry] = entries(repo)
    assert f"ledger entry `{entry['id']}`, seeds 0, 1, 2, 3, 4) has not finished" in text
    assert "after 2 attempts" in text and "(aborted)" in text
    assert "no end recorded (still running, or killed outright)" in text
    assert "h of wall time recorded so far; it is resumed with `--resume`." in text
