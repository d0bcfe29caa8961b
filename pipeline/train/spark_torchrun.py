"""``TorchDistributor`` on a Spark cluster that runs on this host only (``spark://127.0.0.1``),
with every socket it opens on loopback.

Out of the box, TorchDistributor's distributed mode opens two listeners on all interfaces:

* the driver's ``LogStreamingServer`` (the ranks' output relayed to the driver) binds
  ``0.0.0.0`` (``pyspark/ml/torch/log_communication.py``), with no option to change it;
* each barrier task runs ``torchrun --nnodes N --node_rank R --rdzv_endpoint
  MASTER:PORT`` (static rendezvous), whose task-0 agent hosts a ``TCPStore`` server, and
  ``TCPStore`` binds the wildcard address whatever host it is given.

:func:`run` keeps TorchDistributor's own task program (barrier tasks, ``MASTER_ADDR`` /
``MASTER_PORT`` / ``RANK`` from ``BarrierTaskContext``, rank 0's return value) and swaps
only these two: the log server (none: :class:`NoLogServer`) and the per-task function that
builds and runs the torchrun command (:func:`run_file_on_loopback`, which runs
``python -m pipeline.train.torchrun``: store servers on 127.0.0.1). The per-task function
travels to the executors through TorchDistributor's ``_run(train_object,
run_pytorch_file_fn)`` (pyspark 4.0.x, a private method); the executors import it from
this module, so they need the training environment (``make setup``), as the Horovod path
does.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

LOOPBACK = "127.0.0.1"


def loopback_torchrun_command(
    input_params: dict[str, Any], train_path: str, *args: Any
) -> list[str]:
    """The torchrun command of one barrier task (one rank per task, as TorchDistributor's
    ``_get_torchrun_args`` for distributed mode): ``python -m pipeline.train.torchrun
    --nnodes N --node-rank RANK --rdzv-backend static --rdzv-endpoint 127.0.0.1:MASTER_PORT
    --rdzv-id 0 --local-addr 127.0.0.1 --nproc-per-node 1 TRAIN_FILE ARGS``.

    Reads ``MASTER_PORT`` and ``RANK``, which TorchDistributor's task program sets.
    """
    return [
        sys.executable,
        "-m",
        # torch.distributed: torchrun with its store server bound to 127.0.0.1.
        "pipeline.train.torchrun",
        "--nnodes",
        str(int(input_params["num_processes"])),
        "--node-rank",
        os.environ["RANK"],
        "--rdzv-backend",
        "static",
        "--rdzv-endpoint",
        f"{LOOPBACK}:{os.environ['MASTER_PORT']}",
        "--rdzv-id",
        "0",
        "--local-addr",
        LOOPBACK,
        "--nproc-per-node",
        "1",
        train_path,
        *map(str, args),
    ]


def run_file_on_loopback(
    input_params: dict[str, Any], train_path: str, *args: Any, network_interface: str = "lo"
) -> None:
    """Replacement of ``TorchDistributor._run_training_on_pytorch_file`` run in each barrier
    task: :func:`loopback_torchrun_command`, with ``GLOO_SOCKET_IFNAME`` set to
    ``network_interface`` unless the executor's environment sets it, through
    TorchDistributor's own ``_execute_command`` (output to the task's stdout, the
    executor's log; no log streaming, see :class:`NoLogServer`).

    Raises:
        RuntimeError: torchrun exited non-zero (TorchDistributor's message).
    """
    from pyspark.ml.torch.distributor import TorchDistributor

    os.environ.setdefault("GLOO_SOCKET_IFNAME", network_interface)  # torch.distributed: NIC.
    TorchDistributor._execute_command(
        loopback_torchrun_command(input_params, train_path, *args), log_streaming_client=None
    )


class NoLogServer:
    """Stands in for pyspark's ``LogStreamingServer`` on the driver: opens no socket and
    reports port -1, so the tasks' clients stay unused. The ranks' output stays in the
    executors' logs, as with ``horovod.spark.run``; a failed task's last lines still reach
    the driver in TorchDistributor's error."""

    def __init__(self) -> None:
        self.port = -1

    def start(self, spark_host_address: str = "") -> None:
        """Nothing to start."""

    def shutdown(self) -> None:
        """Nothing to stop."""


def run(distributor: Any, fn: Any, args: tuple[Any, ...], network_interface: str) -> Any:
    """``distributor.run(fn, *args)`` for a distributed-mode ``TorchDistributor`` on a
    loopback cluster; returns rank 0's return value.

    Raises:
        Whatever TorchDistributor raises (a failed barrier task: a Py4J/Spark error).
    """
    from pyspark.ml.torch import distributor as module

    original = module.LogStreamingServer
    module.LogStreamingServer = NoLogServer
    try:
        per_task = functools.partial(run_file_on_loopback, network_interface=network_interface)
        return distributor._run(fn, per_task, *args)
    finally:
        module.LogStreamingServer = original
