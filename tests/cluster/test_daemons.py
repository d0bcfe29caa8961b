"""The loopback cluster itself: every socket on 127.0.0.1, daemons stopped by their pids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from pipeline.spark.standalone import standalone_cluster
from tests.support.cluster import LOOPBACK, ROOT, listeners


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    """The pids of ``pids`` still alive after waiting up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def test_master_and_worker_listen_on_loopback_only(cluster) -> None:
    found = listeners(cluster.processes())
    ports = {port for _, port, _ in found}
    # RPC ports and both web UIs are up, all of them on 127.0.0.1.
    expected = {_port(u) for u in (cluster.master_url, cluster.master_ui, cluster.worker_ui)}
    assert expected <= ports, (expected, found)
    assert [x for x in found if x[0] not in LOOPBACK] == []
    assert f"Successfully registered with master {cluster.master_url}" in cluster.log("worker")
    assert "with 2 cores" in cluster.log("worker")


def test_daemons_are_stopped_by_pid_when_the_block_raises(tmp_path: Path) -> None:
    pids: list[int] = []

    def body() -> None:
        with standalone_cluster(tmp_path, cores=1, memory="512m") as c:
            pids.extend(p.pid for p in c.processes())
            assert set(c.pids.values()) <= set(pids)
            raise RuntimeError("the test body failed")

    with pytest.raises(RuntimeError, match="the test body failed"):
        body()
    assert len(pids) >= 2
    assert _gone(pids, timeout=0) == []


def test_daemons_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    """A test process killed with SIGKILL (no finally, no atexit) leaves no daemon."""
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from pipeline.spark.standalone import standalone_cluster
        with standalone_cluster({str(tmp_path)!r}, cores=1, memory="512m") as c:
            print(json.dumps([p.pid for p in c.processes()]), flush=True)
            time.sleep(600)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    pids: list[int] = []
    try:
        pids = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        assert len(pids) >= 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert _gone(pids) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:  # never leave one behind, even when the assertion failed
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()
