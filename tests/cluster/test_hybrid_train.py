"""``pipeline train --launcher spark``: ranks on the loopback cluster's executors, for
both backends.

Horovod: ``horovod.spark.run`` starts one rank per Spark task; torch: ``TorchDistributor``
runs torchrun in each of 2 barrier tasks (one rank each, static rendezvous on task 0's
host). Either way 2 ranks on the worker's 2 cores, Gloo over ``lo``, every socket on
loopback; the shards are read through a ``file://`` URI (``pyarrow.fs``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from pipeline.shards import format as fmt
from tests.support.cluster import failure, run_watched
from tests.support.paths import PIPELINE

TINY = (
    "model.n_layer=2",
    "model.n_head=2",
    "model.n_embd=32",
    "model.block_size=32",
    "train.max_steps=4",
    "train.global_batch=4",
    "train.micro_batch=2",
    "train.checkpoint_every=2",
    "train.eval_every=2",
    "train.eval_batches=2",
    "spark.ui_enabled=false",
    "spark.log_level=ERROR",
)


def app_logs(cluster, before: set[Path]) -> list[Path]:
    """The executors' ``stdout``/``stderr`` files not in ``before`` (this test's app)."""
    found = (cluster.base_dir / "work").glob("app-*/*/std*")
    return sorted(p for p in found if p not in before and p.name in ("stdout", "stderr"))


@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_pipeline_train_runs_on_the_cluster_executors(
    backend: str, cluster, cluster_shards: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    data = f"file://{cluster_shards}"
    argv = [
        str(PIPELINE),
        "train",
        "--launcher",
        "spark",
        "--backend",
        backend,
        "--master",
        cluster.master_url,
        "-np",
        "2",
        "--data",
        data,
        "--run",
        str(run_dir),
        *TINY,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    # Horovod's driver-side services (in this command's process) bind to loopback; the
    # executors' task services get the same from the worker's environment.
    env["HOROVOD_BIND_ADDRESS"] = "127.0.0.1"
    before = set(app_logs(cluster, set()))
    run = run_watched(argv, env, cluster, timeout=540)
    assert run.proc.returncode == 0, failure(run.proc)
    assert "pipeline train: 4 steps" in run.proc.stdout, run.proc.stdout
    assert not run.beyond_loopback(), run.beyond_loopback()

    # The ranks ran inside the worker's executor, which logged rank 0's start-up line
    # (torchrun's ranks: into the task's stdout).
    logs = [p.read_text(errors="replace") for p in app_logs(cluster, before)]
    assert any("pipeline train: 2 rank(s)" in text for text in logs)

    ckpt = run_dir / "checkpoints" / "step-0000004"
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 4 and state["world_size"] == 2
    assert state["manifest_sha256"] == fmt.load_manifest(data).sha256
    weights = load_file(str(ckpt / "model.safetensors"))
    assert weights and all(v.size for v in weights.values())
    assert any(v.shape[-1] == 32 for v in weights.values())  # n_embd 32
    assert (run_dir / "checkpoints" / "step-0000002" / "state.json").is_file()
    assert (run_dir / "model" / "model.safetensors").is_file()
