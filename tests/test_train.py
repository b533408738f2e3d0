"""The training loop: stage contract, control run, kill -9 + exact resume, 2-process DDP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import open_clip
import pytest
import torch
import yaml

from countclip.config import TrainConfig
from countclip.stages.train import run_training
from countclip.synthetic.shards import write_constant_lambdas, write_synthetic_shards
from countclip.training.loop import train
from countclip.training.model import TINY_MODEL
from countclip.training.optim import adamw, param_groups, warmup_cosine

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def _cfg(**kw) -> TrainConfig:
    base = dict(
        batch_size=8,
        steps=4,
        warmup_steps=1,
        eval_every=2,
        checkpoint_every=2,
        threads=1,
        val_fraction=0.25,
        lr=1e-3,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_synthetic_shards(tmp_path_factory.mktemp("shards"), 48, 64, per_shard=32)


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_schedule_and_param_groups():
    f = warmup_cosine(2, 10)
    assert [round(f(s), 4) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert f(6) == pytest.approx(0.5) and f(10) == pytest.approx(0.0)
    from countclip.config import ModelConfig
    from countclip.training.model import create_model

    model = create_model(ModelConfig())[0]
    no_wd, wd = param_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in no_wd["params"]} >= {
        "logit_scale",
        "ln_final.weight",
        "ln_final.bias",
    }
    assert "visual.conv1.weight" in {names[id(p)] for p in wd["params"]}
    assert no_wd["weight_decay"] == 0.0 and wd["weight_decay"] == 0.2


def test_fused_adamw_takes_the_per_parameter_step():
    """The loop's fused AdamW is a speed choice only: from the same gradients it moves every
    parameter where torch's per-parameter AdamW does, weight decay groups included."""
    torch.manual_seed(0)
    twins = [torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5)) for _ in range(2)]
    twins[1].load_state_dict(twins[0].state_dict())
    start = [p.detach().clone() for p in twins[0].parameters()]
    settings = {"lr": 1e-2, "betas": (0.9, 0.98), "eps": 1e-6}
    fused = adamw(twins[0], weight_decay=0.2, **settings)
    loop = torch.optim.AdamW(param_groups(twins[1], 0.2), foreach=False, **settings)
    assert fused.defaults["fused"] and [g["weight_decay"] for g in fused.param_groups] == [0, 0.2]
    x = torch.randn(16, 6)
    for _ in range(3):
        for model, optimizer in zip(twins, (fused, loop), strict=True):
            optimizer.zero_grad()
            model(x).square().sum().backward()
            optimizer.step()
    for a, b, a0 in zip(twins[0].parameters(), twins[1].parameters(), start, strict=True):
        assert (a - a0).abs().max() > 1e-2  # three steps of lr 1e-2 moved it...
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # ...the same way, to float noise


def test_stage_outputs_manifest_and_cache(shards, tmp_path):
    counting, common = shards
    lambdas = write_constant_lambdas(tmp_path / "lambdas.json")
    manifests = (
        {"outputs": {"shards": counting}, "fingerprint": "c1"},
        {"outputs": {"shards": common}, "fingerprint": "m1"},
        {"outputs": {"lambdas": str(lambdas)}, "fingerprint": "l1"},
    )
    calls = []
    cfg = _cfg(count_loss="count")
    manifest = run_training(
        *manifests, cfg, str(tmp_path / "root"), progress=lambda f, m: calls.append(f)
    )
    assert manifest["stage"] == "train" and manifest["stats"]["steps"] == 4
    assert manifest["stats"]["model"] == TINY_MODEL
    assert set(manifest["outputs"]) == {"checkpoint", "last", "metrics", "loss_plot"}
    for path in manifest["outputs"].values():
        assert Path(path).stat().st_size > 0
    stats = manifest["stats"]
    assert 0 <= stats["best_val_count_acc"] <= 1 and stats["samples_per_s"] > 0
    assert manifest["stats"]["final_count_loss"] > 0 and calls[-1] == 1.0
    rows = [json.loads(x) for x in Path(manifest["outputs"]["metrics"]).read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert [r["step"] for r in rows if "val_count_acc" in r] == [0, 2, 4]
    open_clip.create_model_and_transforms(TINY_MODEL, pretrained=manifest["outputs"]["checkpoint"])
    again = run_training(*manifests, cfg, str(tmp_path / "root"))
    assert again == manifest  # finished stage: its manifest, no retraining


def test_lambda_zero_is_the_clip_only_control(shards, tmp_path):
    result = train(_cfg(lambda_scale=0.0, steps=2), *shards, None, tmp_path, show_progress=False)
    assert result["final_count_loss"] > 0  # still measured for comparison ...
    ref = train(
        _cfg(count_loss="none", steps=2), *shards, None, tmp_path / "b", show_progress=False
    )
    a, b = _state(result["last"]), _state(ref["last"])  # ... but it trains exactly like "none"
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="'lr'"):  # resuming under another config is refused
        train(_cfg(lambda_scale=0.0, steps=2, lr=5e-4), *shards, None, tmp_path)


def test_configs_tiny_cpu_and_paper_gpu(repo_root):
    from countclip.yamlconfig import load_config

    tiny = load_config(repo_root / "configs" / "tiny-cpu.yaml").train
    assert tiny.model.name == TINY_MODEL and tiny.counting_fraction == 0.2
    paper = load_config(repo_root / "configs" / "paper-gpu.yaml").train
    assert (paper.model.name, paper.model.pretrained) == ("ViT-B-32-quickgelu", "openai")
    assert (paper.lr, paper.betas, paper.eps, paper.weight_decay) == (5e-6, (0.9, 0.98), 1e-6, 0.2)
    assert paper.epochs == 10 and paper.precision == "bf16" and paper.warmup_steps > 0


_KILLED_RUN = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    from countclip.config import TrainConfig
    from countclip.training.loop import train
    cfg = TrainConfig.model_validate_json(sys.argv[1])
    counting, common, out = sys.argv[2].split(","), sys.argv[3].split(","), sys.argv[4]
    def progress(fraction, message):
        if fraction >= 5 / 6:  # after the step-4 checkpoint and one more step: wait to be killed
            print("READY", flush=True)
            time.sleep(600)
    train(cfg, counting, common, None, out, progress=progress, show_progress=False)
""")


def test_kill_9_then_resume_equals_uninterrupted(shards, tmp_path):
    counting, common = shards
    cfg = _cfg(steps=6, checkpoint_every=4, eval_every=3, count_loss="count")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _KILLED_RUN,
            cfg.model_dump_json(),
            ",".join(counting),
            ",".join(common),
            str(killed),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout.readline().strip() == "READY"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert torch.load(killed / "state.pt", weights_only=False)["step"] == 4
    assert not (killed / "last.pt").exists()
    resumed = train(cfg, counting, common, None, killed, show_progress=False)
    assert resumed["resumed_from"] == 4
    reference = train(cfg, counting, common, None, tmp_path / "straight", show_progress=False)
    a, b = _state(resumed["last"]), _state(reference["last"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 5, 6]  # no replayed dupes
    ref_rows = (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses == [json.loads(x)["loss"] for x in ref_rows if '"loss"' in x]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_gloo(shards, tmp_path):
    counting, common = shards
    config = tmp_path / "cfg.yaml"
    config.write_text(
        yaml.safe_dump(
            {"train": _cfg(steps=3, eval_every=3, checkpoint_every=3).model_dump(mode="json")}
        )
    )
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
            "-m",
            "countclip.training",
            "--config",
            str(config),
            "--out",
            str(out),
            "--no-progress",
            "--counting",
            str(Path(counting[0]).parent / "counting-*.tar"),
            "--common",
            str(Path(common[0]).parent / "common-*.tar"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3
    sums = summary["rank_param_sums"]
    assert len(sums) == 2 and sums[0] == sums[1]  # DDP kept the replicas identical
    open_clip.create_model_and_transforms(TINY_MODEL, pretrained=summary["checkpoint"])


def test_two_runs_sharing_a_process_end_as_if_alone(shards, tmp_path):
    """Prefect's thread runner trains the demo's control and CountCLIP side by side in one
    process (one thread each); each run must end with the weights it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = _cfg(steps=6, count_loss="count_plus")
    other = _cfg(steps=6, count_loss="none", seed=1)
    alone = train(cfg, *shards, None, tmp_path / "alone", show_progress=False)
    with ThreadPoolExecutor(2) as pool:
        side = pool.submit(train, other, *shards, None, tmp_path / "other", show_progress=False)
        shared = pool.submit(train, cfg, *shards, None, tmp_path / "shared", show_progress=False)
        side.result()
        shared = shared.result()
    a, b = _state(alone["last"]), _state(shared["last"])
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_train_stage_launches_torchrun_for_several_processes(shards, tmp_path):
    """``train.processes: 2`` (what ``countclip train --gpus 2`` sets): the train stage runs the
    loop as two DDP ranks (gloo here, NCCL on GPUs) and records the job it launched."""
    from countclip.stages.train import run_training

    counting, common = shards
    cfg = _cfg(steps=3, eval_every=3, checkpoint_every=3).model_copy(update={"processes": 2})

    def manifest(name: str, tars: list[str]) -> dict:
        return {"fingerprint": name, "run_id": name, "outputs": {"shards": tars}}

    done = run_training(manifest("c", counting), manifest("m", common), None, cfg, str(tmp_path))
    assert done["stats"]["world_size"] == 2 and done["stats"]["steps"] == 3
    sums = done["stats"]["rank_param_sums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    assert (Path(done["directory"]) / "launch.json").is_file()
    open_clip.create_model_and_transforms(TINY_MODEL, pretrained=done["outputs"]["checkpoint"])


def test_a_run_reports_to_tensorboard_and_says_when_it_resumed(shards, tmp_path, caplog):
    """open_clip's --report-to convention: TensorBoard event files beside metrics.jsonl (W&B
    too when installed and enabled); a run started again on its directory says it resumed."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = _cfg(steps=2, eval_every=2, checkpoint_every=2)
    assert cfg.report_to == ["tensorboard"]
    train(cfg, *shards, None, tmp_path / "run", show_progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert {"loss", "val_count_acc"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss")] == [1, 2]
    with caplog.at_level("WARNING", logger="countclip.training.loop"):
        again = train(cfg, *shards, None, tmp_path / "run", show_progress=False)
    assert again["resumed_from"] == 2
    assert "resumed from step 2 of 2" in caplog.text
