"""Every distributed call of the project, for both backends, each line marked with its
backend: ``# Horovod:`` or ``# torch.distributed:``.

The rest of the code asks this module for rank, world size and collectives, and takes
rank and world size as plain arguments; the model and the loop never name a backend.
:func:`init` picks the backend (``train.backend``) once per process:

* ``horovod``: Horovod with Gloo (or NCCL in a GPU build); gradients averaged by
  ``hvd.DistributedOptimizer`` (``backward_passes_per_step`` = accumulation steps);
* ``torch``: ``torch.distributed`` with Gloo for CPU tensors and NCCL for CUDA tensors
  (``cpu:gloo,cuda:nccl``); gradients averaged by ``DistributedDataParallel``, whose
  ``no_sync`` skips the allreduce of the non-final micro-batches.

Both give the same step: the gradient is the mean over the global batch, and the loss
allreduce is the mean over ranks, so a run started on one backend resumes on the other.

Ways to start ranks (the launcher side, at the end of this module):

* :func:`horovodrun_command`: ``horovodrun`` (Gloo; loopback ``localhost:N`` by default,
  or a host list for several machines);
* :func:`torchrun_command`: ``torchrun`` (c10d rendezvous on ``127.0.0.1`` for one host);
* :func:`run_on_spark`: ``horovod.spark.run`` on Spark executors;
* :func:`run_torch_distributor`: ``pyspark.ml.torch.distributor.TorchDistributor``.

For single-host runs Horovod's driver/rendezvous services bind to 127.0.0.1 through
``HOROVOD_BIND_ADDRESS`` (a patch our Horovod build carries, see
``scripts/build_horovod.sh``) and Gloo traffic goes over ``lo`` (``GLOO_SOCKET_IFNAME``
for torch.distributed).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"
BACKENDS = ("horovod", "torch")
_state: dict[str, Any] = {"backend": None, "size": 1}


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


def backend() -> str:
    """The backend :func:`init` started (``horovod`` before any init)."""
    return _state["backend"] or "horovod"


def _torch() -> bool:
    return _state["backend"] == "torch"


def init(backend: str = "horovod") -> DistInfo:
    """Start ``backend`` (idempotent) and return this process's place in the job.

    With ``torch`` the rank, world size and rendezvous come from the environment that
    ``torchrun`` exports (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``); without it (an in-process run) a one-rank group on
    an in-memory store, which opens no socket. Pins the CUDA device to the local rank when
    CUDA is present.

    Raises:
        ValueError: ``backend`` is not ``horovod`` or ``torch``, or another backend was
            started earlier in this process.
    """
    import torch

    if backend not in BACKENDS:
        raise ValueError(f"train.backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if _state["backend"] not in (None, backend):
        raise ValueError(f"{_state['backend']} is already running in this process")
    _state["backend"] = backend
    if backend == "torch":
        return _init_torch()
    import horovod.torch as hvd

    hvd.init()  # Horovod: start the background thread and join the rendezvous.
    if torch.cuda.is_available():
        torch.cuda.set_device(hvd.local_rank())  # Horovod: one GPU per local rank.
    _state["size"] = hvd.size()  # Horovod: world size.
    return DistInfo(
        rank=hvd.rank(),  # Horovod: global rank.
        size=hvd.size(),  # Horovod: world size.
        local_rank=hvd.local_rank(),  # Horovod: rank on this host.
        local_size=hvd.local_size(),  # Horovod: ranks on this host.
    )


def _init_torch() -> DistInfo:
    import torch
    import torch.distributed as td

    env = os.environ
    size = int(env.get("WORLD_SIZE", "1"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    local_size = int(env.get("LOCAL_WORLD_SIZE", str(size)))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)  # torch.distributed: one GPU per local rank.
    # torch.distributed: Gloo for CPU tensors, NCCL for CUDA tensors.
    pg_backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    if not td.is_initialized():
        if "MASTER_ADDR" in env:
            td.init_process_group(pg_backend)  # torch.distributed: env:// rendezvous.
        else:  # torch.distributed: one rank, in-process store, no socket.
            td.init_process_group(pg_backend, store=td.HashStore(), rank=0, world_size=1)
    _state["size"] = td.get_world_size()  # torch.distributed: world size.
    return DistInfo(
        rank=td.get_rank(),  # torch.distributed: global rank.
        size=td.get_world_size(),  # torch.distributed: world size.
        local_rank=local_rank,
        local_size=local_size,
    )


def allreduce(tensor: Any, *, average: bool = True, name: str | None = None) -> Any:
    """Return the element-wise mean (or sum) of ``tensor`` over all ranks (a new tensor).

    Args:
        tensor: a ``torch.Tensor`` of the same shape and dtype on every rank.
        average: mean when true, sum when false (the mean is the sum divided by the
            world size on both backends).
        name: collective name (Horovod); ranks must issue collectives in the same order.
    """
    if _torch():
        import torch.distributed as td

        out = tensor.clone()
        td.all_reduce(out, op=td.ReduceOp.SUM)  # torch.distributed: sum over all ranks.
        return out / td.get_world_size() if average else out
    import horovod.torch as hvd

    op = hvd.Average if average else hvd.Sum
    return hvd.allreduce(tensor, op=op, name=name)  # Horovod: collective over all ranks.


def broadcast_object(obj: Any, root_rank: int = 0, name: str | None = None) -> Any:
    """Return rank ``root_rank``'s ``obj`` on every rank (pickled by the backend)."""
    if _torch():
        import torch.distributed as td

        box = [obj]
        td.broadcast_object_list(box, src=root_rank)  # torch.distributed: broadcast.
        return box[0]
    import horovod.torch as hvd

    return hvd.broadcast_object(obj, root_rank=root_rank, name=name)  # Horovod: broadcast.


def barrier() -> None:
    """Block until every rank has reached this point."""
    if _torch():
        import torch
        import torch.distributed as td

        td.all_reduce(torch.zeros(1))  # torch.distributed: a CPU (Gloo) collective as barrier.
        return
    import horovod.torch as hvd

    hvd.barrier()  # Horovod: synchronise all ranks.


def shutdown() -> None:
    """Leave the job; call once at the end of a rank's work (a no-op before :func:`init`)."""
    if _torch():
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()  # torch.distributed: leave the job.
    elif _state["backend"] == "horovod":
        import horovod.torch as hvd

        hvd.shutdown()  # Horovod: leave the job.
    _state.update(backend=None, size=1)


def allgather_object(obj: Any, name: str | None = None) -> list[Any]:
    """Return every rank's ``obj`` as a list ordered by rank (pickled by the backend)."""
    if _torch():
        import torch.distributed as td

        out: list[Any] = [None] * td.get_world_size()
        td.all_gather_object(out, obj)  # torch.distributed: gather from all ranks.
        return out
    import horovod.torch as hvd

    return hvd.allgather_object(obj, name=name)  # Horovod: gather from all ranks.


def in_launched_rank() -> bool:
    """True inside a rank started by ``horovodrun`` (``HOROVOD_RANK``) or ``torchrun``
    (``TORCHELASTIC_RUN_ID``), where the launcher must not start ranks again."""
    return (
        "HOROVOD_RANK" in os.environ  # Horovod: set by horovodrun for each rank.
        or "TORCHELASTIC_RUN_ID" in os.environ  # torch.distributed: set by torchrun.
    )


_GLOO_LOST = ("Connection reset by peer", "Connection closed by peer", "Socket Timeout")


def lost_peer(error: BaseException) -> bool:
    """True when ``error`` is what a collective raises because another rank has gone
    (died or failed): Horovod's ``HorovodInternalError``; torch.distributed's
    ``DistError`` or a Gloo ``RuntimeError`` about a closed or reset connection."""
    if _torch():
        import torch.distributed as td

        if isinstance(error, td.DistError):  # torch.distributed: backend/network failure.
            return True
        text = str(error)  # torch.distributed: Gloo reports a gone peer as RuntimeError.
        return isinstance(error, RuntimeError) and any(m in text for m in _GLOO_LOST)
    from horovod.common.exceptions import HorovodInternalError

    return isinstance(error, HorovodInternalError)  # Horovod: the job was shut down.


# ---------------------------------------------------------------------------------------
# training: parameter/optimizer broadcast, gradient averaging
# ---------------------------------------------------------------------------------------


def broadcast_parameters(named_tensors: Iterable[tuple[str, Any]], root_rank: int = 0) -> None:
    """Overwrite, in place, every rank's tensors with rank ``root_rank``'s.

    Args:
        named_tensors: ``(name, tensor)`` pairs in the same order on every rank, e.g.
            ``model.named_parameters()`` (each shared tensor once) plus buffers.
    """
    if _torch():
        import torch.distributed as td

        for _, tensor in named_tensors:
            td.broadcast(tensor, src=root_rank)  # torch.distributed: broadcast in place.
        return
    import horovod.torch as hvd

    hvd.broadcast_parameters(list(named_tensors), root_rank=root_rank)  # Horovod: broadcast.


def broadcast_optimizer_state(optimizer: Any, root_rank: int = 0) -> None:
    """Overwrite every rank's optimizer state (moments, step counts, hyper-parameters) with
    rank ``root_rank``'s.

    Horovod: a rank whose optimizer has no state yet initialises it with one zero-gradient
    step of the wrapped optimizer, which moves its parameters (weight decay); broadcast the
    parameters *after* this call. Call it only when rank ``root_rank`` has state (a resume).
    torch: rank ``root_rank``'s ``state_dict()`` (on CPU) is broadcast and loaded.
    """
    if _torch():
        state = _to_cpu(optimizer.state_dict()) if _rank() == root_rank else None
        state = broadcast_object(state, root_rank)  # torch.distributed: broadcast.
        if _rank() != root_rank:
            optimizer.load_state_dict(state)
        return
    import horovod.torch as hvd

    hvd.broadcast_optimizer_state(optimizer, root_rank=root_rank)  # Horovod: broadcast.


def _rank() -> int:
    import torch.distributed as td

    return td.get_rank()  # torch.distributed: global rank.


def _to_cpu(obj: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def distributed_model(model: Any, device: Any) -> Any:
    """The module to run forward/backward through.

    torch with world size > 1: ``DistributedDataParallel(model)``, which averages the
    gradients over ranks in the backward of the last micro-batch (see :func:`accumulate`);
    otherwise ``model`` itself (Horovod averages in the optimizer; one rank has nothing to
    average). The plain ``model`` stays the one to save, evaluate and export.
    """
    if not _torch() or _state["size"] == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids)  # torch.distributed: gradient allreduce in backward.


def accumulate(module: Any, last: bool) -> Any:
    """Context for the forward/backward of one micro-batch: DDP's ``no_sync`` unless
    ``last`` (gradients accumulate locally and only the last backward communicates).
    Horovod's optimizer counts backward passes itself, so there it does nothing."""
    if not last and hasattr(module, "no_sync"):
        return module.no_sync()  # torch.distributed: no allreduce on this micro-batch.
    return contextlib.nullcontext()


def distributed_optimizer(
    optimizer: Any, named_parameters: Iterable[tuple[str, Any]], backward_passes_per_step: int
) -> Any:
    """Wrap ``optimizer`` so that gradients are averaged over all ranks before each step.

    Horovod: gradients of ``backward_passes_per_step`` backward passes accumulate locally
    (summed); the allreduce (average over ranks) starts in the hooks of the last pass.
    Scale each pass's loss by ``1 / backward_passes_per_step`` to get the mean over the
    global batch. The wrapper is a new optimizer built from ``optimizer.param_groups``:
    load state into the returned object, not the one passed in. With world size 1 no hooks
    are installed. torch: ``optimizer`` itself (DDP averages in the backward).
    """
    if _torch():
        return optimizer  # torch.distributed: DDP does the averaging.
    import horovod.torch as hvd

    return hvd.DistributedOptimizer(  # Horovod: allreduce-averaged gradients.
        optimizer,
        named_parameters=list(named_parameters),
        backward_passes_per_step=backward_passes_per_step,
        op=hvd.Average,
    )


def synchronize(optimizer: Any) -> None:
    """Wait until the gradient allreduce is done, so gradients can be inspected or clipped
    before :func:`skip_synchronize` (DDP has finished it inside the last backward)."""
    if not _torch():
        optimizer.synchronize()  # Horovod: finish the outstanding gradient allreduces.


@contextlib.contextmanager
def skip_synchronize(optimizer: Any) -> Iterator[None]:
    """Context in which ``optimizer.step()`` uses the gradients already synchronised."""
    if _torch():
        yield
        return
    with optimizer.skip_synchronize():  # Horovod: step without a second synchronize.
        yield


def selfcheck(backend: str = "horovod") -> dict[str, Any]:
    """Run one sum and one mean allreduce and a broadcast; return what this rank saw.

    Rank r contributes ``[r + 1] * 4`` (float32), so with world size n the sum is
    ``n (n + 1) / 2`` and the mean ``(n + 1) / 2`` in every element. Used by the runtime
    tests and as a quick health check of an installation or cluster.

    Returns:
        ``{"rank", "size", "local_rank", "sum", "mean", "broadcast", "pid", "backend"}``.
    """
    import torch

    info = init(backend)
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
        "backend": backend,
    }
    barrier()
    shutdown()
    return out


# ---------------------------------------------------------------------------------------
# launchers: horovodrun, torchrun, horovod.spark.run, TorchDistributor
# ---------------------------------------------------------------------------------------


def is_local(hosts: str | None) -> bool:
    """True when ``hosts`` is None or names only ``localhost`` / ``127.0.0.1``."""
    if not hosts:
        return True
    names = {h.rsplit(":", 1)[0] for h in hosts.split(",") if h}
    return names <= {"localhost", LOOPBACK}


def launch_env(
    hosts: str | None,
    base: dict[str, str] | None = None,
    network_interface: str = "lo",
) -> dict[str, str]:
    """Return the environment for launching ranks: loopback binding for single-host jobs.

    Sets ``HOROVOD_BIND_ADDRESS=127.0.0.1`` (Horovod's services) for one host, and
    ``GLOO_SOCKET_IFNAME`` / ``NCCL_SOCKET_IFNAME`` (torch.distributed's traffic) to
    ``network_interface`` unless already set.

    Args:
        hosts: host list (``h1:4,h2:4``) or None for localhost.
        base: environment to start from (default ``os.environ``).
        network_interface: interface for Gloo/NCCL traffic (``lo`` locally).
    """
    env = dict(os.environ if base is None else base)
    if is_local(hosts):
        env.setdefault("HOROVOD_BIND_ADDRESS", LOOPBACK)  # Horovod: services on loopback.
    env.setdefault("GLOO_SOCKET_IFNAME", network_interface)  # torch.distributed: Gloo NIC.
    env.setdefault("NCCL_SOCKET_IFNAME", network_interface)  # torch.distributed: NCCL NIC.
    return env


def parse_hosts(hosts: str | None, np: int) -> list[tuple[str, int]]:
    """``[(host, slots), ...]`` of a host list ``h1:4,h2:4`` (slots 1 when omitted);
    ``[("localhost", np)]`` for None.

    Raises:
        ValueError: an empty host list, a slot count that is not a positive integer, or
            slots that do not add up to ``np``.
    """
    if not hosts:
        return [("localhost", np)]
    out = []
    for item in filter(None, hosts.split(",")):
        name, _, slots = item.partition(":")
        if not slots.isdigit() or int(slots) < 1:
            raise ValueError(f"train.hosts entry {item!r} is not HOST:SLOTS with SLOTS >= 1")
        out.append((name, int(slots)))
    if not out:
        raise ValueError(f"train.hosts {hosts!r} names no host; write host1:4,host2:4")
    if sum(n for _, n in out) != np:
        raise ValueError(
            f"train.hosts {hosts} has {sum(n for _, n in out)} slots but train.np is {np}; "
            "make them equal"
        )
    return out


def torchrun_command(
    np: int,
    argv: Sequence[str],
    *,
    hosts: str | None = None,
    rdzv_port: int = 29400,
    python: str | None = None,
) -> list[str]:
    """Build the ``torchrun`` command that starts ``np`` ranks of ``python argv...``.

    One host (``hosts`` None or only ``localhost``/``127.0.0.1``): ``--nnodes 1
    --nproc-per-node np`` with the c10d rendezvous on ``127.0.0.1:rdzv_port``. Several
    hosts ``h1:4,h2:4``: ``--nnodes 2 --nproc-per-node 4`` with the rendezvous on the
    first host; torchrun starts only this host's ranks, so the same command must run on
    every host (unlike horovodrun, which reaches the others over ssh).

    Args:
        np: world size, >= 1.
        argv: script and arguments each rank runs.
        hosts: ``host1:4,host2:4``; None means ``localhost:<np>``.
        rdzv_port: port of the rendezvous store on the first host (0: a free one,
            single host only).
        python: interpreter for torchrun and the ranks; default the current one.

    Raises:
        ValueError: ``np`` < 1; hosts with unequal slot counts or slots != ``np``.
    """
    if np < 1:
        raise ValueError(f"np must be >= 1, got {np}")
    nodes = parse_hosts(hosts, np)
    if len({n for _, n in nodes}) != 1:
        raise ValueError(
            f"torchrun needs the same number of ranks on every host, got {hosts}; use "
            "train.backend=horovod for uneven hosts"
        )
    first = LOOPBACK if is_local(hosts) else nodes[0][0]
    return [
        python or sys.executable,
        "-m",
        # torch.distributed: torchrun; on one host with its stores bound to 127.0.0.1.
        "pipeline.train.torchrun" if is_local(hosts) else "torch.distributed.run",
        "--nnodes",
        str(len(nodes)),
        "--nproc-per-node",
        str(nodes[0][1]),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"{first}:{rdzv_port}",
        *(["--local-addr", LOOPBACK] if is_local(hosts) else []),
        *argv,
    ]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for the rendezvous store)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


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


def run_torch_distributor(
    fn: Callable[..., Any],
    num_proc: int,
    *,
    args: tuple[Any, ...] = (),
    local: bool = True,
    use_gpu: bool = False,
    network_interface: str = "lo",
    loopback: bool = False,
) -> Any:
    """Run ``fn(*args)`` as ``num_proc`` torch.distributed ranks through Spark's
    ``TorchDistributor`` and return rank 0's return value.

    ``local``: torchrun on the driver (``--standalone``, Gloo over ``network_interface``);
    otherwise one rank per barrier task on the executors. ``fn`` is cloudpickled, so it
    must be importable where it runs; it calls :func:`init` with ``torch`` itself.
    ``loopback`` (not ``local``): a cluster on this host only; the driver's log server
    and the tasks' rendezvous stores listen on 127.0.0.1
    (:mod:`pipeline.train.spark_torchrun`).

    Raises:
        RuntimeError: no active SparkSession.
    """
    from pyspark import SparkContext
    from pyspark.ml.torch.distributor import TorchDistributor

    sc = SparkContext._active_spark_context
    if sc is None:
        raise RuntimeError("run_torch_distributor needs an active SparkSession; build one first")
    saved = {k: os.environ.get(k) for k in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")}
    for key in saved:  # torch.distributed: the NICs of the ranks torchrun starts here.
        os.environ.setdefault(key, network_interface)
    original = TorchDistributor.__dict__["_create_torchrun_command"]
    if local:  # torch.distributed: loopback stores instead of torchrun --standalone.
        TorchDistributor._create_torchrun_command = staticmethod(  # type: ignore[method-assign]
            _loopback_torchrun_command
        )
    try:
        distributor = TorchDistributor(  # torch.distributed: torchrun under Spark.
            num_processes=num_proc, local_mode=local, use_gpu=use_gpu
        )
        if loopback and not local:
            from pipeline.train import spark_torchrun

            return spark_torchrun.run(distributor, fn, args, network_interface)
        return distributor.run(fn, *args)
    finally:
        TorchDistributor._create_torchrun_command = original  # type: ignore[method-assign]
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _loopback_torchrun_command(
    input_params: dict[str, Any], path_to_train_file: str, *args: Any
) -> list[str]:
    """TorchDistributor's local-mode command with :func:`torchrun_command` (stores on
    127.0.0.1) in place of ``torchrun --standalone`` (stores on every interface); same
    signature as ``TorchDistributor._create_torchrun_command``."""
    argv = [path_to_train_file, *map(str, args)]
    return torchrun_command(int(input_params["num_processes"]), argv, rdzv_port=free_port())
