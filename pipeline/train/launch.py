"""Launchers of the train stage: in-process, ``horovodrun``, ``torchrun``, or on Spark.

All of them run the same rank function, :func:`pipeline.train.loop.train_rank`, on the
configured backend (``train.backend``: ``horovod`` or ``torch``):

* ``-np 1`` (or ``train.launcher=local``): in this process, world size 1;
* ``horovodrun`` (default, Horovod): ``horovodrun -np N -H localhost:N --gloo
  --network-interface lo python jobs/train.py RUN/config.yaml`` (``--hosts h1:4,h2:4`` for
  several machines);
* ``torchrun`` (``backend=torch``; also what ``launcher=horovodrun`` means there):
  ``python -m torch.distributed.run --nnodes 1 --nproc-per-node N --rdzv-backend c10d
  --rdzv-endpoint 127.0.0.1:PORT python jobs/train.py RUN/config.yaml``.
  Each rank's ``jobs/train.py`` calls :func:`~pipeline.train.loop.train_rank` with that
  file and reports a failure as one ``pipeline train: error: ...`` line. The parent relays
  the ranks' output and, if the job fails, names the rank that failed first and why;
* ``spark``: ``horovod.spark.run`` (Horovod) or ``TorchDistributor`` (torch) starts the
  ranks through Spark (:func:`dist.run_on_spark`, :func:`dist.run_torch_distributor`).

Before starting any rank the launcher checks what it cheaply can (manifest, vocabulary,
block size, the checkpoint to resume), so bad input fails in seconds with one message.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import config as cfgmod
from pipeline.errors import UsageError
from pipeline.outputs import claim_run_folder
from pipeline.shards.format import ShardError, load_manifest
from pipeline.stage_config import PipelineConfig
from pipeline.train import dist
from pipeline.train.checkpoint import (
    TrainError,
    check_compatible,
    latest_checkpoint,
    read_state,
)
from pipeline.train.loop import LOST_PEERS, data_dir, run_dir, save_config, train_rank
from pipeline.train.metrics import summarise
from pipeline.train.torchrun import remove_empty_dirs
from pipeline.train.tracking_mlflow import check_installed as check_mlflow

_RANK_ERROR = re.compile(r"^\[(\d+)\]<std(?:err|out)>:pipeline train: error: (.*)$")
_ERROR = re.compile(r"^pipeline train: error: (.*)$")
_TORCHRUN_RANK = re.compile(r"^\s*rank\s*:\s*(\d+)\s*\(local_rank")
_TORCHRUN_EXIT = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)")
_EXITED = re.compile(r"^Process (\d+) exit with status code (-?\d+)")
_FIRST_FAILED = re.compile(r"^Terminating remaining workers after failure of Process (\d+)")


def _absolute(path: str | None) -> str | None:
    return path if path is None or "://" in path else os.path.abspath(path)


def resolve_paths(cfg: PipelineConfig) -> PipelineConfig:
    """The config with local ``work_dir``, ``train.data`` and ``train.run`` made absolute
    (ranks may start in other folders or on other hosts)."""
    train = dataclasses.replace(
        cfg.train, data=_absolute(data_dir(cfg)), run=_absolute(run_dir(cfg))
    )
    return dataclasses.replace(cfg, work_dir=os.path.abspath(cfg.work_dir), train=train)


def precheck(cfg: PipelineConfig) -> None:
    """Refuse, before any rank starts, input that cannot train.

    Raises:
        ShardError: no manifest or ``_SUCCESS``; ``model.block_size`` above the shards'.
        TrainError: a vocabulary larger than the model's; a checkpoint in the run folder
            made from other shards or another model config.
    """
    root = data_dir(cfg)
    manifest = load_manifest(root)
    if cfg.model.block_size > manifest.block_size:
        raise ShardError(
            f"model.block_size {cfg.model.block_size} exceeds the shards' {manifest.block_size} "
            f"({root}); lower model.block_size or re-run featurise with "
            f"featurise.block_size={cfg.model.block_size}"
        )
    try:
        model_cfg = cfg.model.resolved(manifest.vocab_size)
    except ValueError as e:
        raise TrainError(f"{e} (the shards in {root})") from None
    folder = latest_checkpoint(run_dir(cfg))
    if folder is not None:
        check_compatible(
            read_state(folder),
            folder,
            model=dataclasses.asdict(model_cfg),
            manifest_sha256=manifest.sha256,
            global_batch=cfg.train.global_batch,
        )


def run_train(cfg: PipelineConfig, *, stop_after: int | None = None) -> dict[str, Any]:
    """Run the train stage with the configured launcher; return the run summary.

    Raises:
        TrainError: bad settings, a failed rank (naming it), a non-finite loss, an
            incompatible checkpoint.
        pipeline.errors.OutputError: the run folder overlaps the shards or holds files
            this tool did not write (:func:`pipeline.outputs.claim_run_folder`).
        pipeline.errors.UsageError: called inside a horovodrun rank, where it would start
            horovodrun again (a rank runs ``jobs/train.py``); ``train.mlflow`` without
            mlflow installed.
        ShardError: unusable shards.
    """
    if dist.in_launched_rank():
        raise UsageError(
            "pipeline train launches the ranks and cannot run inside one; under horovodrun "
            "or torchrun each rank runs: python jobs/train.py CONFIG.yaml [key.sub=value ...]"
        )
    cfg = resolve_paths(cfg)
    tc = cfg.train
    if tc.launcher == "local" and tc.np != 1:
        raise TrainError(
            f"train.launcher=local runs one rank in this process, but train.np is {tc.np}; "
            "use --launcher horovodrun or spark for several ranks"
        )
    check_mlflow(tc.mlflow, tc.mlflow_uri)
    claim_run_folder(run_dir(cfg), data_dir(cfg))
    precheck(cfg)
    config_path = save_config(cfg, run_dir(cfg))
    one_local = tc.np == 1 and not tc.hosts and tc.launcher == "horovodrun"
    if tc.launcher == "local" or one_local:
        summary = train_rank(cfg, stop_after=stop_after)  # rank 0 of 1: never None
        return summary if summary is not None else summarise(run_dir(cfg))
    if tc.launcher == "spark":
        run_spark(cfg, stop_after=stop_after)
    elif tc.backend == "torch":
        run_torchrun(cfg, config_path)
    else:
        run_horovodrun(cfg, config_path)
    return summarise(run_dir(cfg))


def job_script() -> str:
    """Path of ``jobs/train.py``, the script each horovodrun rank runs."""
    import jobs

    return str(Path(jobs.__file__).resolve().parent / "train.py")


def run_horovodrun(cfg: PipelineConfig, config_path: str | os.PathLike[str]) -> None:
    """Start ``train.np`` ranks with horovodrun and wait, relaying their output to stderr.

    Raises:
        TrainError: horovodrun failed; the message names the rank that failed first, its
            error or the signal that killed it, and the checkpoint a re-run resumes from.
    """
    tc = cfg.train
    cmd = dist.horovodrun_command(
        tc.np,
        [job_script(), str(config_path)],
        hosts=tc.hosts,
        network_interface=tc.network_interface,
    )
    env = dist.launch_env(tc.hosts)
    env["PYTHONUNBUFFERED"] = "1"
    found: dict[str, Any] = {}
    quiet = False  # horovodrun's own traceback after a failure says nothing more

    def show(text: str) -> bool:
        nonlocal quiet
        _scan(text, found)
        quiet = quiet or (bool(found) and text.startswith("Traceback (most recent call"))
        return not quiet or text.startswith("[")

    code, tail = _relay(cmd, env, "horovodrun", show)
    if code != 0:
        raise TrainError(describe_failure(found, code, run_dir(cfg), tail))


def _relay(
    cmd: list[str], env: dict[str, str], launcher: str, show: Callable[[str], bool]
) -> tuple[int, list[str]]:
    """Run a launcher, relaying to stderr each output line (stdout and stderr merged) that
    ``show`` accepts; ``show`` sees every line, without its newline, in order.

    Returns:
        ``(exit code, the last 40 lines)``.

    Raises:
        TrainError: the launcher cannot be started.
    """
    tail: collections.deque[str] = collections.deque(maxlen=40)
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env=env,
        )
    except OSError as e:
        raise TrainError(f"cannot start {launcher} ({cmd[0]}): {e}") from None
    with proc:
        for line in proc.stdout:  # type: ignore[union-attr]
            tail.append(line.rstrip("\n"))
            if show(tail[-1]):
                sys.stderr.write(line)
                sys.stderr.flush()
        code = proc.wait()
    return code, list(tail)


def run_torchrun(cfg: PipelineConfig, config_path: str | os.PathLike[str]) -> None:
    """Start ``train.np`` torch.distributed ranks with torchrun and wait, relaying their
    output to stderr.

    Raises:
        TrainError: torchrun failed; the message names the rank that failed first (from
            torchrun's "Root Cause" report), its error or the signal that killed it, and
            the checkpoint a re-run resumes from.
    """
    tc = cfg.train
    try:
        cmd = dist.torchrun_command(
            tc.np,
            [job_script(), str(config_path)],
            hosts=tc.hosts,
            rdzv_port=dist.free_port() if dist.is_local(tc.hosts) else 29400,
        )
    except ValueError as e:
        raise TrainError(str(e)) from None
    env = dist.launch_env(tc.hosts, network_interface=tc.network_interface)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")  # the loop sets threads per rank itself
    env.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    logs = torchrun_log_dir(run_dir(cfg))
    if logs is not None:
        env["PET_LOG_DIR"] = str(logs)  # torchrun --log-dir; else it makes /tmp/torchelastic_*
    found: dict[str, Any] = {}
    report = False  # torchrun's failure report, condensed into our message

    def show(text: str) -> bool:
        nonlocal report
        _scan_torchrun(text, found)
        report = report or text.startswith(("Traceback (most recent call", "[W", "====="))
        return not report or bool(_ERROR.match(text))

    try:
        code, tail = _relay(cmd, env, "torchrun", show)
    finally:
        if logs is not None:
            remove_empty_dirs(logs)  # a rank's error file, if any, stays
    if code != 0:
        raise TrainError(describe_torchrun_failure(found, code, run_dir(cfg), tail))


TORCHRUN_LOGS = "torchrun"
"""Folder of the run where torchrun keeps its per-launch log folders (``--log-dir``):
``<run id>_<random>/attempt_<n>/<local rank>/``, empty unless a rank wrote an error file
(``torch.distributed.elastic`` ``@record``); empty ones are removed after each launch."""


def torchrun_log_dir(run: str | os.PathLike[str]) -> Path | None:
    """``RUN/torchrun``, torchrun's ``--log-dir`` for a run folder on the local file system
    (None for a URI: torchrun then picks its own)."""
    if "://" in str(run):
        return None
    return Path(run) / TORCHRUN_LOGS


def _scan_torchrun(line: str, found: dict[str, Any]) -> None:
    """Collect the facts of a failure from one line of torchrun's failure report.

    The report (``torch.distributed.elastic.multiprocessing.errors.ChildFailedError``)
    lists every failed rank as ``rank : N (local_rank: L)`` then ``exitcode : X``, the
    other failures under ``Failures:`` first, then the first observed one under ``Root
    Cause``. Sets ``found["message"]`` (the first ``pipeline train: error:`` line of any
    rank), ``found["exits"]`` (``{rank: exit code}``, negative for a signal),
    ``found["first"]`` and ``found["exit"]`` (the root cause's rank and exit code).
    """
    if m := _ERROR.match(line):
        found.setdefault("message", m.group(1))
    elif "Root Cause" in line:
        found["root"] = True
    elif m := _TORCHRUN_RANK.match(line):
        found["rank"] = int(m.group(1))
        if found.get("root"):
            found.setdefault("first", found["rank"])
    elif found.get("rank") is not None and (m := _TORCHRUN_EXIT.match(line)):
        rank, exit_code = found.pop("rank"), int(m.group(1))
        found.setdefault("exits", {}).setdefault(rank, exit_code)
        if rank == found.get("first"):
            found.setdefault("exit", exit_code)


def describe_torchrun_failure(
    found: dict[str, Any], code: int, run: str | os.PathLike[str], tail: list[str]
) -> str:
    """One message for a failed torchrun job, like :func:`describe_failure`.

    torchrun's "first observed failure" is the rank whose failure its monitor saw first;
    when a rank is killed, the others fail within the same interval reporting a lost peer
    (:func:`pipeline.train.loop.train_rank`), and either may be named. So when a rank died
    of a signal and the first error message is such a lost-peer report, the signal death
    is reported (the lowest such rank); otherwise torchrun's root cause and the message.
    """
    first, message, exit_code = found.get("first"), found.get("message"), found.get("exit")
    killed = sorted(r for r, c in found.get("exits", {}).items() if c < 0)
    if killed and message is not None and LOST_PEERS in message and first not in killed:
        first, exit_code, message = killed[0], found["exits"][killed[0]], None
    if message is not None and (exit_code is None or exit_code >= 0):
        what = f"{message} (rank {first})" if first is not None else message
    elif first is not None:
        what = (
            f"rank {first} died ({_status(exit_code if exit_code is not None else code)}); "
            "torchrun stopped the other ranks"
        )
    else:
        last = "\n  ".join(tail[-10:])
        what = f"torchrun failed with exit status {code}; its last lines:\n  {last}"
    return _with_checkpoint(what, run)


def _with_checkpoint(what: str, run: str | os.PathLike[str]) -> str:
    folder = latest_checkpoint(run)
    if folder is None:
        return f"{what}. No checkpoint was written; a re-run starts from the beginning"
    return f"{what}. The last complete checkpoint is {folder}; re-run the same command to resume"


def _scan(line: str, found: dict[str, Any]) -> None:
    """Collect the facts of a failure from one line of horovodrun's output."""
    if m := _RANK_ERROR.match(line):
        found.setdefault("errors", {}).setdefault(int(m.group(1)), m.group(2))
    elif m := _EXITED.match(line):
        found.setdefault("exits", {}).setdefault(int(m.group(1)), int(m.group(2)))
    elif m := _FIRST_FAILED.match(line):
        found.setdefault("first", int(m.group(1)))


def _status(code: int) -> str:
    """``SIGKILL`` for a process killed by signal 9 (Popen -9, or a shell's 137)."""
    sig = -code if code < 0 else code - 128 if code > 128 else 0
    if sig:
        try:
            return f"{signal.Signals(sig).name}, exit status {code}"
        except ValueError:
            pass
    return f"exit status {code}"


def describe_failure(
    found: dict[str, Any], code: int, run: str | os.PathLike[str], tail: list[str]
) -> str:
    """One message for a failed horovodrun job: which rank failed first and how, and where
    a re-run resumes."""
    errors, exits = found.get("errors", {}), found.get("exits", {})
    first = found.get("first", min(exits, default=min(errors, default=None)))
    if first is not None and first in errors:
        what = f"{errors[first]} (rank {first})"
    elif first is not None:
        what = (
            f"rank {first} died ({_status(exits.get(first, code))}); horovodrun stopped the "
            "other ranks"
        )
    elif errors:
        r = min(errors)
        what = f"{errors[r]} (rank {r})"
    else:
        last = "\n  ".join(tail[-10:])
        what = f"horovodrun failed with exit status {code}; its last lines:\n  {last}"
    return _with_checkpoint(what, run)


def _spark_rank(config: dict[str, Any], stop_after: int | None) -> dict[str, Any]:
    """The per-task function of the Spark launcher: train, and report a failure as data."""
    try:
        train_rank(config, stop_after=stop_after)
    except (TrainError, ShardError, ValueError) as e:
        return {"error": str(e)}
    return {"error": None}


def run_spark(cfg: PipelineConfig, *, stop_after: int | None = None) -> None:
    """Run ``train.np`` ranks through Spark: ``horovod.spark.run`` (one rank per task) or,
    with ``backend=torch``, ``TorchDistributor`` (torchrun on the driver for a ``local``
    master, on barrier tasks otherwise; only rank 0's result comes back, and every rank
    fails with the same message).

    Uses the active SparkSession or builds one from ``cfg.spark`` (stopped again at the
    end if built here). The cluster needs ``train.np`` free task slots.

    Raises:
        TrainError: a rank failed (its message), or Spark/Horovod could not run the job.
    """
    from pyspark.sql import SparkSession

    from pipeline.spark.session import build_spark_session

    active = SparkSession.getActiveSession()
    spark = active or build_spark_session(cfg.spark)
    master = spark.sparkContext.master or ""
    # Loopback-only Horovod services for local masters and for a cluster on this host
    # (spark://127.0.0.1:…, or a driver bound to loopback, which remote executors could
    # not reach anyway).
    host = master.split("://", 1)[-1].split(":", 1)[0] if "://" in master else ""
    local = (
        master.startswith("local")
        or host in ("127.0.0.1", "localhost")
        or cfg.spark.bind_address in ("127.0.0.1", "localhost")
    )
    try:
        if cfg.train.backend == "torch":
            import torch

            gpu = cfg.train.device != "cpu" and torch.cuda.is_available()
            results = [
                dist.run_torch_distributor(
                    _spark_rank,
                    cfg.train.np,
                    args=(cfgmod.to_dict(cfg), stop_after),
                    local=master.startswith("local"),
                    use_gpu=gpu,
                    network_interface=cfg.train.network_interface,
                    loopback=local,
                )
            ]
        else:
            results = dist.run_on_spark(
                _spark_rank,
                cfg.train.np,
                args=(cfgmod.to_dict(cfg), stop_after),
                network_interface=cfg.train.network_interface,
                local=local,
            )
    except Exception as e:  # Py4J / Horovod wrap a failed task in their own types
        raise TrainError(f"the Spark launcher failed: {str(e).splitlines()[0][:500]}") from e
    finally:
        if active is None:
            spark.stop()
    failed = [(r, res["error"]) for r, res in enumerate(results) if res.get("error")]
    if failed:
        rank, error = failed[0]
        raise TrainError(f"{error} (rank {rank})")
