"""GPU tier: CUDA, bf16 and Horovod's NCCL build. Skipped without CUDA (see conftest)."""

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
    cmd = dist.horovodrun_command(2, [str(WORKER), str(tmp_path)])
    proc = subprocess.run(
        cmd, env=dist.launch_env(None), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["sum"] for r in results] == [[3.0] * 4] * 2
