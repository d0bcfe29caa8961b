"""Distributed runtimes: 2 ranks through horovodrun and torchrun (Gloo on lo, every
listening socket on loopback) and through horovod.spark.run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pipeline.train import dist

HERE = Path(__file__).resolve().parent
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def check_two_ranks(results: list[dict]) -> None:
    assert [r["rank"] for r in results] == [0, 1]
    for r in results:
        assert r["size"] == 2
        assert r["sum"] == [3.0] * 4  # 1 + 2
        assert r["mean"] == [1.5] * 4
        assert r["broadcast"] == results[0]["broadcast"]  # rank 0's object everywhere
        assert r["broadcast"]["from_rank"] == 0
    assert results[0]["pid"] != results[1]["pid"]  # two real processes


def launch_command(backend: str, argv: list[str]) -> list[str]:
    if backend == "torch":
        return dist.torchrun_command(2, argv, rdzv_port=dist.free_port())
    return dist.horovodrun_command(2, argv)


@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_two_ranks_gloo_on_loopback(backend: str, tmp_path: Path) -> None:
    cmd = launch_command(backend, [str(HERE / "selfcheck_worker.py"), str(tmp_path), backend])
    if backend == "horovod":
        assert cmd[1:8] == ["-np", "2", "-H", "localhost:2", "--gloo", "--network-interface", "lo"]
    proc = subprocess.run(
        cmd, env=dist.launch_env(None), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    check_two_ranks(results)
    assert {r["backend"] for r in results} == {backend}
    listen = results[0]["listen"]
    assert listen, "the rendezvous server should have been listening"
    assert [x for x in listen if x[0] not in LOOPBACK] == []


def test_horovod_spark_run_two_ranks(spark) -> None:
    import os

    def rank_fn(root_pid: int) -> dict:
        # Pickled by value (a nested function). Sees the driver's whole process tree:
        # in local mode the JVM, the Python workers and the ranks all descend from it.
        import psutil

        from pipeline.train import dist as d

        root = psutil.Process(root_pid)
        listen = []
        for p in [root, *root.children(recursive=True)]:
            try:
                conns = p.net_connections(kind="inet")
            except psutil.Error:
                continue
            listen += [[c.laddr.ip, c.laddr.port] for c in conns if c.status == "LISTEN"]
        result = d.selfcheck()
        result["listen"] = listen
        return result

    results = dist.run_on_spark(rank_fn, 2, args=(os.getpid(),))
    check_two_ranks(results)
    assert results[0]["listen"]
    assert [x for x in results[0]["listen"] if x[0] not in LOOPBACK] == []


def test_launch_env_binds_loopback_only_for_local_hosts() -> None:
    assert dist.launch_env(None, {})["HOROVOD_BIND_ADDRESS"] == "127.0.0.1"
    assert dist.launch_env("localhost:2", {})["HOROVOD_BIND_ADDRESS"] == "127.0.0.1"
    assert "HOROVOD_BIND_ADDRESS" not in dist.launch_env("gpu1:4,gpu2:4", {})
    assert dist.launch_env(None, {})["GLOO_SOCKET_IFNAME"] == "lo"
    assert dist.launch_env("gpu1:4", {}, network_interface="eth0")["NCCL_SOCKET_IFNAME"] == "eth0"


def test_torchrun_command_maps_np_and_hosts() -> None:
    one = dist.torchrun_command(2, ["jobs/train.py"], rdzv_port=1234, python="python3")
    assert one == [
        "python3",
        "-m",
        "pipeline.train.torchrun",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "127.0.0.1:1234",
        "--local-addr",
        "127.0.0.1",
        "jobs/train.py",
    ]
    two = dist.torchrun_command(8, ["jobs/train.py"], hosts="gpu1:4,gpu2:4", python="python3")
    assert two[2] == "torch.distributed.run"
    assert two[3:11] == [
        "--nnodes",
        "2",
        "--nproc-per-node",
        "4",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "gpu1:29400",
    ]
    with pytest.raises(ValueError, match="same number of ranks on every host"):
        dist.torchrun_command(6, ["x"], hosts="gpu1:4,gpu2:2")
    with pytest.raises(ValueError, match="has 8 slots but train.np is 4"):
        dist.torchrun_command(4, ["x"], hosts="gpu1:4,gpu2:4")


def test_horovodrun_command_for_several_hosts() -> None:
    cmd = dist.horovodrun_command(
        8, ["jobs/train.py"], hosts="gpu1:4,gpu2:4", network_interface="eth0", python="python3"
    )
    assert cmd[1:] == [
        "-np",
        "8",
        "-H",
        "gpu1:4,gpu2:4",
        "--gloo",
        "--network-interface",
        "eth0",
        "python3",
        "jobs/train.py",
    ]
