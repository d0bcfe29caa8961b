"""Exact resume of 2-rank training on CPU, also on the other backend (Horovod ->
torch.distributed) and on another world size; refusals.

A straight run of TOTAL steps is compared with a run stopped after STOP steps (a clean,
preemption-like stop with a checkpoint) and resumed to TOTAL by ``pipeline train``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from pipeline.train.checkpoint import complete_checkpoints, read_state
from tests.support import training as ts

STOP, TOTAL = 5, 10


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``straight/`` (TOTAL steps) and ``stopped/`` (STOP of TOTAL steps), 2 ranks each."""
    base = tmp_path_factory.mktemp("resume")
    data = ts.real_shards()
    straight = ts.write_config(
        base / "straight.yaml", data=data, run=base / "straight", max_steps=TOTAL
    )
    proc = ts.pipeline_train(straight)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stopped = ts.write_config(
        base / "stopped.yaml", data=data, run=base / "stopped", max_steps=TOTAL
    )
    ts.horovodrun_stop_after(stopped, STOP)
    shutil.copytree(base / "stopped", base / "stopped-for-1-rank")
    shutil.copytree(base / "stopped", base / "stopped-for-torch")
    return base


def test_stopped_run_left_a_checkpoint_and_no_export(runs: Path) -> None:
    run = runs / "stopped-for-1-rank"
    assert [s for s, _ in complete_checkpoints(run)] == [STOP]
    assert not (run / "model").exists()
    assert max(ts.losses(run)) == STOP
    state = read_state(run / "checkpoints" / "step-0000005")
    assert state["data"]["batch"] == STOP and state["world_size"] == 2
    assert len(state["rng"]) == 2


def test_resume_two_ranks_matches_the_straight_run_exactly(runs: Path) -> None:
    proc = ts.pipeline_train(runs / "stopped.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stderr and "step-0000005" in proc.stderr
    straight, resumed = runs / "straight", runs / "stopped"
    assert list(ts.losses(resumed)) == list(range(1, TOTAL + 1))  # each step logged once
    assert ts.losses(resumed) == ts.losses(straight)  # bit-identical per-step losses
    val = [(r["step"], r["val_loss"]) for r in ts.metrics(straight) if "val_loss" in r]
    assert [(r["step"], r["val_loss"]) for r in ts.metrics(resumed) if "val_loss" in r] == val
    a, b = (ts.weights(run / "checkpoints" / "step-0000010") for run in (straight, resumed))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    oa, ob = (
        torch.load(run / "checkpoints" / "step-0000010" / "optimizer.pt", weights_only=True)
        for run in (straight, resumed)
    )
    for i, state in oa["state"].items():
        assert all(torch.equal(state[k], ob["state"][i][k]) for k in state)
    exported = ts.weights(resumed / "model")
    assert all(torch.equal(exported[k], b[k]) for k in exported)


def test_a_horovod_run_resumes_on_torch_distributed_with_the_same_losses(runs: Path) -> None:
    run = runs / "stopped-for-torch"
    cfg = ts.write_config(
        runs / "torch.yaml", data=ts.real_shards(), run=run, max_steps=TOTAL, backend="torch"
    )
    proc = ts.pipeline_train(cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stderr and "2 rank(s)" in proc.stderr
    assert ts.losses(run) == ts.losses(runs / "straight")  # bit-identical, both halves
    a, b = (ts.weights(r / "checkpoints" / "step-0000010") for r in (runs / "straight", run))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_state(run / "checkpoints" / "step-0000010")["config"]["train"]["backend"] == (
        "torch"
    )


def test_resume_two_ranks_with_one_rank_continues_the_batch_sequence(runs: Path) -> None:
    run = runs / "stopped-for-1-rank"
    cfg = ts.write_config(runs / "one.yaml", data=ts.real_shards(), run=run, np=1, max_steps=TOTAL)
    proc = ts.pipeline_train(cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 rank(s)" in proc.stderr and "2 accumulation" in proc.stderr
    mine = read_state(run / "checkpoints" / "step-0000010")
    theirs = read_state(runs / "straight" / "checkpoints" / "step-0000010")
    assert mine["world_size"] == 1
    assert mine["data"] == theirs["data"]  # the same cursor after the same global batches
    one, two = ts.losses(run), ts.losses(runs / "straight")
    assert list(one) == list(two)
    for step in range(1, STOP + 1):
        assert one[step] == two[step]  # made by the 2-rank part
    for step in range(STOP + 1, TOTAL + 1):  # same batches; only float sums reordered
        assert one[step] == pytest.approx(two[step], abs=2e-3), step


def test_refuses_to_resume_with_another_model_config(runs: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs / "straight", run)
    cfg = ts.write_config(
        tmp_path / "c.yaml",
        data=ts.real_shards(),
        run=run,
        max_steps=TOTAL + 2,
        model={"n_embd": 64},
    )
    proc = ts.pipeline_train(cfg)
    assert proc.returncode == 1
    assert "cannot resume from" in proc.stderr and "model config differs" in proc.stderr
    assert "n_embd 32 -> 64" in proc.stderr
    assert max(ts.losses(run)) == TOTAL  # nothing trained


def test_refuses_to_resume_on_other_shards(runs: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs / "straight", run)
    other = ts.copy_shards(tmp_path / "other-shards")
    manifest = other / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"block_size"', '"note": "x",\n "block_size"'))
    cfg = ts.write_config(tmp_path / "c.yaml", data=other, run=run, max_steps=TOTAL + 2)
    proc = ts.pipeline_train(cfg)
    assert proc.returncode == 1
    assert "cannot resume from" in proc.stderr and "other shards" in proc.stderr
    assert max(ts.losses(run)) == TOTAL
