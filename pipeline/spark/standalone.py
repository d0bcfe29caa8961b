"""A Spark standalone cluster (one master, one worker) on loopback, for tests and trials.

The daemons are the ones shipped inside the pyspark package
(``pyspark/bin/spark-class org.apache.spark.deploy.master.Master`` and ``...Worker``), so
nothing beyond ``make setup`` is needed::

    with standalone_cluster(tmp_dir, cores=2) as cluster:
        subprocess.run(["spark-submit", "--master", cluster.master_url, ...])

Everything listens on ``host`` (127.0.0.1): the master and worker RPC ports and web UIs
(``--host`` and ``SPARK_LOCAL_IP``), and the executors the worker starts, which inherit
its environment (``SPARK_LOCAL_IP``, plus ``HOROVOD_BIND_ADDRESS`` for Horovod's task
services under ``horovod.spark.run``). Logs, the worker's work folder and Spark's scratch
space live under ``base_dir``.

The daemons are stopped by their process ids (and the executors they started, by theirs)
when the ``with`` block ends, also when it raises; at interpreter exit for any cluster
still running; and, on Linux, by the kernel when the process that started them dies
(``PR_SET_PDEATHSIG``), so a killed test run leaves no daemon behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
_PR_SET_PDEATHSIG = 1
# The log line of a Spark service bound to the port it picked (``--port 0``).
_STARTED = r"Successfully started service '{}' on port (\d+)"

_running: dict[int, subprocess.Popen[bytes]] = {}  # pid -> daemon, for the atexit guard


@dataclass
class StandaloneCluster:
    """A running master + worker; ``master_url`` is what ``spark-submit --master`` takes."""

    master_url: str
    master_ui: str
    worker_ui: str
    base_dir: Path
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def pids(self) -> dict[str, int]:
        """``{"master": pid, "worker": pid}``."""
        return {name: p.pid for name, p in self.daemons.items()}

    def log(self, name: str) -> str:
        """The log (stdout + stderr) of daemon ``name`` (``master`` or ``worker``) so far."""
        return (self.base_dir / "logs" / f"{name}.log").read_text(errors="replace")

    def processes(self) -> list[Any]:
        """The daemons and every process they started (executors, Python workers), as
        ``psutil.Process`` objects."""
        import psutil

        procs = []
        for p in self.daemons.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(p.pid)
                procs += [proc, *proc.children(recursive=True)]
        return procs


def spark_class() -> Path:
    """Path of ``bin/spark-class`` inside the installed pyspark package."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "bin" / "spark-class"


def daemon_env(base_dir: Path, host: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the daemons (and so of the executors): bound to ``host``, with logs,
    scratch and work folders under ``base_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_GATEWAY")}
    env.pop("SPARK_CONF_DIR", None)
    (base_dir / "conf").mkdir(parents=True, exist_ok=True)
    env.update(
        SPARK_CONF_DIR=str(base_dir / "conf"),  # empty: no spark-defaults.conf from elsewhere
        SPARK_LOCAL_IP=host,
        SPARK_MASTER_HOST=host,
        SPARK_PUBLIC_DNS=host,
        SPARK_LOCAL_DIRS=str(base_dir / "local"),
        SPARK_WORKER_DIR=str(base_dir / "work"),
        SPARK_LOG_DIR=str(base_dir / "logs"),
        SPARK_PID_DIR=str(base_dir / "pids"),
        SPARK_DAEMON_MEMORY=env.get("SPARK_DAEMON_MEMORY", "512m"),
        HOROVOD_BIND_ADDRESS=host,
    )
    env.update(extra or {})
    return env


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _start(name: str, argv: list[str], env: dict[str, str], base_dir: Path) -> subprocess.Popen:
    with open(base_dir / "logs" / f"{name}.log", "wb") as log:  # the child keeps its copy
        proc = subprocess.Popen(
            [str(spark_class()), *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=base_dir,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    if not _running:  # registered on first use, not on import; once is enough
        atexit.unregister(_stop_all)
        atexit.register(_stop_all)
    _running[proc.pid] = proc
    return proc


def _wait_for(
    proc: subprocess.Popen, log: Path, pattern: str, what: str, timeout: float
) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        if m := re.search(pattern, text):
            return m
        if proc.poll() is not None or time.monotonic() > deadline:
            why = (
                f"exited with status {proc.returncode}"
                if proc.returncode is not None
                else f"not ready after {timeout:.0f}s"
            )
            tail = "\n  ".join(text.splitlines()[-25:])
            raise RuntimeError(f"Spark {what} {why}; the end of {log}:\n  {tail}")
        time.sleep(0.2)


def stop_daemon(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop one daemon by its pid (SIGTERM, then SIGKILL), and every process it started."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    for child in children:  # executors the worker could not stop in time
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
    psutil.wait_procs(children, timeout=timeout)
    _running.pop(proc.pid, None)


def _stop_all() -> None:
    """Interpreter exit: stop any daemon a ``with`` block did not get to stop."""
    for proc in list(_running.values()):
        with contextlib.suppress(Exception):
            stop_daemon(proc, timeout=10.0)


@contextlib.contextmanager
def standalone_cluster(
    base_dir: str | os.PathLike[str],
    *,
    cores: int = 2,
    memory: str = "2g",
    host: str = LOOPBACK,
    env: dict[str, str] | None = None,
    start_timeout: float = 180.0,
) -> Iterator[StandaloneCluster]:
    """Start a master and one worker with ``cores`` task slots on ``host``; stop both (by
    pid) when the block ends, whatever happens in it.

    Args:
        base_dir: folder for ``logs/``, ``work/`` (the executors' folders), ``local/``.
        cores: task slots of the worker (``--cores``).
        memory: memory the worker offers to executors (``--memory``).
        host: the address everything binds to and advertises.
        env: extra environment for the daemons and the executors.
        start_timeout: seconds to wait for each daemon to be ready.

    Raises:
        RuntimeError: a daemon exited or was not ready in time (with the end of its log).
    """
    base = Path(base_dir).resolve()
    for sub in ("logs", "work", "local", "pids"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    denv = daemon_env(base, host, env)
    cluster = StandaloneCluster(master_url="", master_ui="", worker_ui="", base_dir=base)
    try:
        # Port 0 everywhere: each daemon binds a free port itself and keeps it (a port
        # picked here and passed on could be taken by another process in between); the
        # ports it got are read back from its log.
        master = _start(
            "master",
            [MASTER_CLASS, "--host", host, "--port", "0", "--webui-port", "0"],
            denv,
            base,
        )
        cluster.daemons["master"] = master
        log = base / "logs" / "master.log"
        _wait_for(master, log, r"New state: ALIVE", "master", start_timeout)
        port = _wait_for(master, log, _STARTED.format("sparkMaster"), "master", 10.0)[1]
        ui = _wait_for(master, log, _STARTED.format("MasterUI"), "master web UI", 10.0)[1]
        cluster.master_url = f"spark://{host}:{port}"
        cluster.master_ui = f"http://{host}:{ui}"
        worker = _start(
            "worker",
            [
                WORKER_CLASS,
                cluster.master_url,
                "--host",
                host,
                "--port",
                "0",
                "--webui-port",
                "0",
                "--cores",
                str(cores),
                "--memory",
                memory,
                "--work-dir",
                str(base / "work"),
            ],
            denv,
            base,
        )
        cluster.daemons["worker"] = worker
        log = base / "logs" / "worker.log"
        _wait_for(worker, log, r"Successfully registered with master", "worker", start_timeout)
        wui = _wait_for(worker, log, _STARTED.format("WorkerUI"), "worker web UI", 10.0)[1]
        cluster.worker_ui = f"http://{host}:{wui}"
        yield cluster
    finally:
        for name in ("worker", "master"):
            if name in cluster.daemons:
                stop_daemon(cluster.daemons[name])
