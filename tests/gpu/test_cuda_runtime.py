"""GPU tier: CUDA, bf16, Horovod's NCCL build, torchrun with NCCL, training on CUDA with
fused AdamW, MFU and torch.compile. Skipped without CUDA (see conftest)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from pipeline.train import dist

WORKER = Path(__file__).resolve().parents[1] / "dist" / "selfcheck_worker.py"


def test_bf16_matmul_on_cuda() -> None:
    a = torch.randn(256, 256, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        c = a @ a.T
    assert c.dtype == torch.bfloat16
    torch.testing.assert_close(c.float(), a @ a.T, rtol=2e-2, atol=1.0)


def test_horovod_built_with_nccl() -> None:
    import horovod.torch as hvd

    assert hvd.nccl_built(), "on a CUDA host make setup must build Horovod with NCCL"


def test_horovodrun_two_ranks_on_gpus(tmp_path: Path) -> None:
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    cmd = dist.horovodrun_command(2, [str(WORKER), str(tmp_path), "horovod"])
    proc = subprocess.run(
        cmd, env=dist.launch_env(None), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["sum"] for r in results] == [[3.0] * 4] * 2


def test_torchrun_nccl_allreduce_on_one_gpu(tmp_path: Path) -> None:
    cmd = dist.torchrun_command(
        1, [str(WORKER), str(tmp_path), "torch"], rdzv_port=dist.free_port()
    )
    proc = subprocess.run(
        cmd, env=dist.launch_env(None), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "rank-0.json").read_text())
    assert result["sum"] == [1.0] * 4 and result["backend"] == "torch"


@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_train_on_cuda_bf16_fused_adamw_reports_mfu(backend: str, tmp_path: Path) -> None:
    from tests.support import training as ts

    launcher = ["--launcher", "torchrun"] if backend == "torch" else []
    cfg = ts.write_config(
        tmp_path / "c.yaml",
        data=ts.real_shards(),
        run=tmp_path / "run",
        np=1,
        max_steps=6,
        device="cuda",
        backend=backend,
        peak_tflops=100.0,
    )
    proc = ts.pipeline_train(cfg, *launcher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on cuda:0" in proc.stderr and "MFU" in proc.stderr
    rows = [r for r in ts.metrics(tmp_path / "run") if "loss" in r]
    assert len(rows) == 6 and all(r["mfu"] > 0 for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_compiled_model_trains_on_cuda(tmp_path: Path) -> None:
    from tests.support import training as ts

    cfg = ts.write_config(
        tmp_path / "c.yaml",
        data=ts.real_shards(),
        run=tmp_path / "run",
        np=1,
        max_steps=4,
        device="cuda",
        compile=True,
    )
    proc = ts.pipeline_train(cfg, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
