"""Every Horovod call of the project, each marked ``# Horovod:``.

The rest of the code asks this module for rank, world size and collectives, and takes
rank and world size as plain arguments. Two ways to start ranks:

* :func:`horovodrun_command` builds the ``horovodrun`` command line (Gloo; loopback
  ``localhost:N`` by default, or a host list for several machines);
* :func:`run_on_spark` runs a function on Spark executors through ``horovod.spark.run``.

For single-host runs both bind Horovod's driver/rendezvous services to 127.0.0.1 through
``HOROVOD_BIND_ADDRESS`` (a patch our Horovod build carries, see
``scripts/build_horovod.sh``) and send Gloo traffic over ``lo``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job: rank in ``[0, size)``, local rank on its host."""

    rank: int
    size: int
    local_rank: int
    local_size: int

    @property
    def is_main(self) -> bool:
        """True on rank 0, the rank that writes checkpoints, metrics and logs."""
        return self.rank == 0


def init() -> DistInfo:
    """Initialise Horovod (idempotent) and return this process's place in the job.

    Pins the CUDA device to the local rank when CUDA is present.
    """
    import horovod.torch as hvd
    import torch

    hvd.init()  # Horovod: start the background thread and join the rendezvous.
    if torch.cuda.is_available():
        torch.cuda.set_device(hvd.local_rank())  # Horovod: one GPU per local rank.
    return DistInfo(
        rank=hvd.rank(),  # Horovod: global rank.
        size=hvd.size(),  # Horovod: world size.
        local_rank=hvd.local_rank(),  # Horovod: rank on this host.
        local_size=hvd.local_size(),  # Horovod: ranks on this host.
    )


def allreduce(tensor: Any, *, average: bool = True, name: str | None = None) -> Any:
    """Return the element-wise mean (or sum) of ``tensor`` over all ranks.

    Args:
        tensor: a ``torch.Tensor`` of the same shape and dtype on every rank.
        average: mean when true, sum when false.
        name: collective name; ranks must issue collectives of the same name in order.
    """
    import horovod.torch as hvd

    op = hvd.Average if average else hvd.Sum
    return hvd.allreduce(tensor, op=op, name=name)  # Horovod: collective over all ranks.


def broadcast_object(obj: Any, root_rank: int = 0, name: str | None = None) -> Any:
    """Return rank ``root_rank``'s ``obj`` on every rank (cloudpickled by Horovod)."""
    import horovod.torch as hvd

    return hvd.broadcast_object(obj, root_rank=root_rank, name=name)  # Horovod: broadcast.


def barrier() -> None:
    """Block until every rank has reached this point."""
    import horovod.torch as hvd

    hvd.barrier()  # Horovod: synchronise all ranks.


def shutdown() -> None:
    """Stop Horovod's background thread; call once at the end of a rank's work."""
    import horovod.torch as hvd

    hvd.shutdown()  # Horovod: leave the job.


def allgather_object(obj: Any, name: str | None = None) -> list[Any]:
    """Return every rank's ``obj`` as a list ordered by rank (cloudpickled by Horovod)."""
    import horovod.torch as hvd

    return hvd.allgather_object(obj, name=name)  # Horovod: gather from all ranks.


def in_horovodrun() -> bool:
    """True inside a rank started by ``horovodrun`` (which exports ``HOROVOD_RANK``), where
    the launcher must not start horovodrun again."""
    return "HOROVOD_RANK" in os.environ  # Horovod: set by horovodrun for each rank.


def collective_errors() -> tuple[type[BaseException], ...]:
    """Exception types a collective raises when another rank has gone (died or failed)."""
    from horovod.common.exceptions import HorovodInternalError

    return (HorovodInternalError,)  # Horovod: raised once the job has been shut down.


# ---------------------------------------------------------------------------------------
# training: parameter/optimizer broadcast and the gradient-averaging optimizer
# ---------------------------------------------------------------------------------------


def broadcast_parameters(named_tensors: Iterable[tuple[str, Any]], root_rank: int = 0) -> None:
    """Overwrite, in place, every rank's tensors with rank ``root_rank``'s.

    Args:
        named_tensors: ``(name, tensor)`` pairs in the same order on every rank, e.g.
            ``model.named_parameters()`` (each shared tensor once) plus buffers.
    """
    import horovod.torch as hvd

    hvd.broadcast_parameters(list(named_tensors), root_rank=root_rank)  # Horovod: broadcast.


def broadcast_optimizer_state(optimizer: Any, root_rank: int = 0) -> None:
    """Overwrite every rank's optimizer state (moments, step counts, hyper-parameters) with
    rank ``root_rank``'s.

    A rank whose optimizer has no state yet initialises it with one zero-gradient step of
    the wrapped optimizer, which moves its parameters (weight decay); broadcast the
    parameters *after* this call. Call it only when rank ``root_rank`` has state (a resume):
    on a fresh run every rank's state is already empty and equal.
    """
    import horovod.torch as hvd

    hvd.broadcast_optimizer_state(optimizer, root_rank=root_rank)  # Horovod: broadcast.


def distributed_optimizer(
    optimizer: Any, named_parameters: Iterable[tuple[str, Any]], backward_passes_per_step: int
) -> Any:
    """Wrap ``optimizer`` so that gradients are averaged over all ranks before each step.

    Gradients of ``backward_passes_per_step`` backward passes accumulate locally (summed);
    the allreduce (average over ranks) starts in the hooks of the last pass. Scale each
    pass's loss by ``1 / backward_passes_per_step`` to get the mean over the global batch.
    The wrapper is a new optimizer built from ``optimizer.param_groups``: load state into
    the returned object, not the one passed in. With world size 1 no hooks are installed
    and stepping costs what the plain optimizer costs.
    """
    import horovod.torch as hvd

    return hvd.DistributedOptimizer(  # Horovod: allreduce-averaged gradients.
        optimizer,
        named_parameters=list(named_parameters),
        backward_passes_per_step=backward_passes_per_step,
        op=hvd.Average,
    )


def synchronize(optimizer: Any) -> None:
    """Wait until the gradient allreduce of ``optimizer`` (a :func:`distributed_optimizer`)
    is done, so gradients can be inspected or clipped before :func:`skip_synchronize`."""
    optimizer.synchronize()  # Horovod: finish the outstanding gradient allreduces.


@contextlib.contextmanager
def skip_synchronize(optimizer: Any) -> Iterator[None]:
    """Context in which ``optimizer.step()`` uses the gradients already synchronised."""
    with optimizer.skip_synchronize():  # Horovod: step without a second synchronize.
        yield


def selfcheck() -> dict[str, Any]:
    """Run one sum and one mean allreduce and a broadcast; return what this rank saw.

    Rank r contributes ``[r + 1] * 4`` (float32), so with world size n the sum is
    ``n (n + 1) / 2`` and the mean ``(n + 1) / 2`` in every element. Used by the runtime
    tests and as a quick health check of a Horovod installation or cluster.

    Returns:
        ``{"rank", "size", "local_rank", "sum", "mean", "broadcast", "pid"}``.
    """
    import torch

    info = init()
    x = torch.full((4,), float(info.rank + 1), dtype=torch.float32)
    total = allreduce(x, average=False, name="selfcheck.sum")
    mean = allreduce(x, average=True, name="selfcheck.mean")
    token = broadcast_object({"from_rank": info.rank, "pid": os.getpid()}, name="selfcheck.bc")
    out = {
        "rank": info.rank,
        "size": info.size,
        "local_rank": info.local_rank,
        "sum": total.tolist(),
        "mean": mean.tolist(),
        "broadcast": token,
        "pid": os.getpid(),
    }
    barrier()
    shutdown()
    return out


def _is_local(hosts: str | None) -> bool:
    if not hosts:
        return True
    names = {h.rsplit(":", 1)[0] for h in hosts.split(",") if h}
    return names <= {"localhost", LOOPBACK}


def launch_env(hosts: str | None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return the environment for launching ranks: loopback binding for single-host jobs.

    Args:
        hosts: horovodrun host list (``h1:4,h2:4``) or None for localhost.
        base: environment to start from (default ``os.environ``).
    """
    env = dict(os.environ if base is None else base)
    if _is_local(hosts):
        env.setdefault("HOROVOD_BIND_ADDRESS", LOOPBACK)
    return env


def horovodrun_command(
    np: int,
    argv: Sequence[str],
    *,
    hosts: str | None = None,
    network_interface: str = "lo",
    python: str | None = None,
) -> list[str]:
    """Build the ``horovodrun`` command that starts ``np`` ranks of ``python argv...``.

    Args:
        np: world size (number of ranks), >= 1.
        argv: script and arguments each rank runs, e.g. ``["jobs/train.py", "--run", d]``.
        hosts: ``host1:4,host2:4``; None means ``localhost:<np>``.
        network_interface: interface for Gloo and Horovod's services (``lo`` locally).
        python: interpreter for the ranks; default the current one.

    Raises:
        ValueError: ``np`` < 1.
    """
    if np < 1:
        raise ValueError(f"np must be >= 1, got {np}")
    horovodrun = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    return [
        horovodrun if os.path.exists(horovodrun) else "horovodrun",
        "-np",
        str(np),
        "-H",
        hosts or f"localhost:{np}",
        "--gloo",
        "--network-interface",
        network_interface,
        python or sys.executable,
        *argv,
    ]


def run_on_spark(
    fn: Callable[..., Any],
    num_proc: int,
    *,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    network_interface: str = "lo",
    start_timeout: int = 120,
    local: bool = True,
) -> list[Any]:
    """Run ``fn(*args, **kwargs)`` as ``num_proc`` Horovod ranks on Spark executors.

    Needs an active SparkSession with at least ``num_proc`` free task slots (one rank per
    task). ``fn`` is cloudpickled to the executors, so it must be importable there or be
    picklable by value.

    Args:
        fn: the per-rank function; it calls :func:`init` itself.
        num_proc: world size.
        network_interface: NIC for Gloo and Horovod's services (``lo`` on one host).
        start_timeout: seconds to wait for all tasks to start.
        local: all executors are on this host: bind Horovod's services to loopback.

    Returns:
        ``fn``'s return values ordered by rank.

    Raises:
        RuntimeError: no active SparkSession.
    """
    import horovod.spark
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    if sc is None:
        raise RuntimeError("run_on_spark needs an active SparkSession; build one first")
    saved_env = os.environ.get("HOROVOD_BIND_ADDRESS")
    saved_executor_env = sc.environment.get("HOROVOD_BIND_ADDRESS")
    if local:
        # The driver-side services read os.environ; the task services run in Python
        # workers, whose environment is sc.environment (spark.executorEnv.*) at submit time.
        os.environ["HOROVOD_BIND_ADDRESS"] = LOOPBACK
        sc.environment["HOROVOD_BIND_ADDRESS"] = LOOPBACK
    try:
        return horovod.spark.run(  # Horovod: one rank per Spark task, Gloo controller.
            fn,
            args=args,
            kwargs=kwargs or {},
            num_proc=num_proc,
            start_timeout=start_timeout,
            use_gloo=True,
            nics={network_interface},
            verbose=0,
        )
    finally:
        if local:
            _restore(os.environ, saved_env)
            _restore(sc.environment, saved_executor_env)


def _restore(env: dict[str, str] | os._Environ[str], value: str | None) -> None:
    if value is None:
        env.pop("HOROVOD_BIND_ADDRESS", None)
    else:
        env["HOROVOD_BIND_ADDRESS"] = value
