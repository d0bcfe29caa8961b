"""SIGKILL of one rank in the middle of a 2-rank run: a clear failure, an intact
checkpoint, and a re-run of the same command that resumes from it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch

from models.gpt import GPT
from models.gpt_config import GPTConfig
from pipeline.train.checkpoint import complete_checkpoints, load_checkpoint, read_state
from tests.support import training as ts

MAX_STEPS = 400


def rank_process(root: psutil.Process, rank: int, backend: str) -> psutil.Process | None:
    """The Python process of ``rank`` (by its HOROVOD_RANK, or torchrun's RANK) under the
    launcher ``root``."""
    key = "HOROVOD_RANK" if backend == "horovod" else "RANK"
    for p in root.children(recursive=True):
        try:
            if "train.py" in " ".join(p.cmdline()) and p.environ().get(key) == str(rank):
                return p
        except psutil.Error:
            continue
    return None


@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_sigkill_of_a_rank_fails_clearly_and_a_rerun_resumes(backend: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = ts.write_config(
        tmp_path / "c.yaml",
        data=ts.real_shards(),
        run=run,
        max_steps=MAX_STEPS,
        checkpoint_every=10,
        eval_every=0,
        backend=backend,
    )
    proc = subprocess.Popen(
        [str(ts.PIPELINE), "train", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not complete_checkpoints(run) and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.1)
        victim = rank_process(psutil.Process(proc.pid), 1, backend)
        assert victim is not None, "rank 1 not found"
        victim.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-3000:]
    assert "pipeline train: error: rank 1 died (SIGKILL" in err
    assert "The last complete checkpoint is" in err and "re-run the same command" in err
    done = complete_checkpoints(run)
    assert done, "the checkpoint written before the kill is gone"
    step, folder = done[-1]
    assert 0 < step < MAX_STEPS
    assert f"The last complete checkpoint is {folder}" in err
    state = read_state(folder)  # intact: loads into a model of its config
    model = GPT(GPTConfig(**state["model"]))
    adamw = torch.optim.AdamW(model.param_groups(0.1))
    load_checkpoint(folder, model, adamw, torch.device("cpu"))
    assert adamw.state_dict()["state"], "optimizer state restored"

    rerun = ts.pipeline_train(cfg)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    resumed_from = [line for line in rerun.stderr.splitlines() if "resumed from" in line]
    assert resumed_from and resumed_from[0].split("resumed from ")[1].startswith(str(run))
    resumed_step = int(resumed_from[0].rsplit("(step ", 1)[1].rstrip(")"))
    assert resumed_step >= step  # the newest complete one (a later one may have landed)
    assert list(ts.losses(run)) == list(range(1, MAX_STEPS + 1))  # each step once
    assert (run / "model" / "model.safetensors").is_file()
