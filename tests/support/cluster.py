"""Helpers of the cluster tier: spark-submit to the loopback standalone cluster while
watching every socket that listens, file digests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pyspark

from pipeline.spark.standalone import StandaloneCluster
from tests.support.paths import ROOT

SPARK_SUBMIT = Path(pyspark.__file__).resolve().parent / "bin" / "spark-submit"
ARCHIVE_PYTHON = "./environment/bin/python"
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def submit_env(*, archive: bool) -> dict[str, str]:
    """Environment of spark-submit: driver on loopback with the venv's Python; executors on
    the venv's Python too, or (``archive``) on the packed one, set by ``--conf`` only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env.pop("PYSPARK_PYTHON", None)
    env.pop("SPARK_CONF_DIR", None)
    env.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_DRIVER_PYTHON=sys.executable)
    if not archive:
        env["PYSPARK_PYTHON"] = sys.executable
    return env


def submit_argv(master: str, app: Path, args: list[str], *, archive: Path | None) -> list[str]:
    """The spark-submit command line: the runbook of the jobs' docstrings."""
    argv = [
        str(SPARK_SUBMIT),
        "--master",
        master,
        "--conf",
        "spark.driver.host=127.0.0.1",
        "--conf",
        "spark.driver.bindAddress=127.0.0.1",
        "--conf",
        "spark.ui.enabled=false",
    ]
    if archive is not None:
        argv += [
            "--archives",
            f"{archive}#environment",
            "--conf",
            f"spark.pyspark.python={ARCHIVE_PYTHON}",
            # spark.pyspark.python would name the driver's Python too (over the variable).
            "--conf",
            f"spark.pyspark.driver.python={sys.executable}",
        ]
    return [*argv, str(app), *args]


@dataclass
class Watched:
    """A finished command and every TCP socket that listened while it ran (its own process
    tree and the cluster's: daemons, executors, Python workers, Horovod's ranks)."""

    proc: subprocess.CompletedProcess[str]
    listening: set[tuple[str, int, str]] = field(default_factory=set)

    def beyond_loopback(self) -> list[tuple[str, int, str]]:
        """The listening sockets bound to an address other than loopback, sorted."""
        return sorted(x for x in self.listening if x[0] not in LOOPBACK)


def run_watched(
    argv: list[str],
    env: dict[str, str],
    cluster: StandaloneCluster,
    timeout: int,
    interval: float = 0.5,
) -> Watched:
    """Run ``argv`` from the repository root, sampling listening sockets while it runs."""
    out = Watched(subprocess.CompletedProcess(argv, -1))
    with subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as popen:
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    me = psutil.Process(popen.pid)
                    procs = [me, *me.children(recursive=True)]
                except psutil.Error:
                    procs = []
                out.listening.update(listeners(procs + cluster.processes()))
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            stdout, stderr = popen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            popen.kill()
            stdout, stderr = popen.communicate()
        finally:
            done.set()
            sampler.join()
    out.proc = subprocess.CompletedProcess(argv, popen.returncode, stdout, stderr)
    return out


def spark_submit(
    cluster: StandaloneCluster,
    app: Path,
    args: list[str],
    *,
    archive: Path | None = None,
    timeout: int = 420,
) -> Watched:
    """spark-submit ``app`` to ``cluster`` (the runbook command) and wait for it."""
    argv = submit_argv(cluster.master_url, app, args, archive=archive)
    return run_watched(argv, submit_env(archive=archive is not None), cluster, timeout)


def failure(proc: subprocess.CompletedProcess[str]) -> str:
    """What to show when a submission failed: exit status and the ends of its output."""
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}"


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def without_master(text: str) -> dict:
    """A _stats.json as a dict, minus the one config field that names the Spark master."""
    obj = json.loads(text)
    obj["config"]["spark"].pop("master")
    return obj


def listeners(procs: list[psutil.Process]) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every listening TCP socket of ``procs``."""
    found = []
    for p in procs:
        try:
            conns = p.net_connections(kind="inet")
            name = p.name()
        except psutil.Error:
            continue
        found += [(c.laddr.ip, c.laddr.port, name) for c in conns if c.status == "LISTEN"]
    return found
