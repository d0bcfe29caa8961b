"""``torchrun`` whose rendezvous stores listen on 127.0.0.1 only:
``python -m pipeline.train.torchrun [torchrun arguments]``.

torchrun's c10d rendezvous and the store it shares with the ranks are ``TCPStore``
servers, which bind the wildcard address whatever host they are given (torch 2.13 has no
bind-address option). For a single-host job (rendezvous endpoint and ``--local-addr`` on
loopback) this entry point hands every store server it starts a socket already bound to
``127.0.0.1`` (``TCPStore(master_listen_fd=...)``), then runs torchrun's own ``main``.
Gloo itself binds to the interface of ``GLOO_SOCKET_IFNAME`` (``lo``, see
:func:`pipeline.train.dist.launch_env`). Stores for other hosts are left as torchrun
makes them.

torchrun keeps per-launch log folders (``--log-dir``, env ``PET_LOG_DIR``); without one
it makes ``/tmp/torchelastic_*`` and leaves it. :func:`main` gives it a temporary folder
of its own when the caller gave none (TorchDistributor's tasks) and removes the empty
folders after the launch (:func:`remove_empty_dirs`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch.distributed as td

LOOPBACK_NAMES = ("127.0.0.1", "localhost")
_sockets: list[socket.socket] = []  # the listening sockets, alive as long as the process


class LoopbackTCPStore(td.TCPStore):
    """``TCPStore`` whose server (``is_master``) listens on 127.0.0.1 when its host is a
    loopback name; a client or a store for another host is a plain ``TCPStore``."""

    def __init__(
        self,
        host_name: str,
        port: int,
        world_size: int | None = None,
        is_master: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        rest = list(args)  # timeout, wait_for_workers, multi_tenant, master_listen_fd, ...
        fd_at = 3
        fd = rest[fd_at] if len(rest) > fd_at else kwargs.get("master_listen_fd")
        if is_master and fd is None and host_name in LOOPBACK_NAMES:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))  # torch.distributed: store on loopback only.
            sock.listen(1024)
            _sockets.append(sock)
            port = sock.getsockname()[1]
            if len(rest) > fd_at:
                rest[fd_at] = sock.fileno()
            else:
                kwargs["master_listen_fd"] = sock.fileno()
        super().__init__(host_name, port, world_size, is_master, *rest, **kwargs)


def main() -> None:
    """Run torchrun (``torch.distributed.run.main``) with loopback store servers."""
    from torch.distributed.elastic.rendezvous import (
        c10d_rendezvous_backend,
        static_tcp_rendezvous,
    )
    from torch.distributed.run import main as torchrun_main

    td.TCPStore = LoopbackTCPStore  # type: ignore[misc]  # the shared store of the ranks
    c10d_rendezvous_backend.TCPStore = LoopbackTCPStore  # type: ignore[misc]  # rendezvous
    static_tcp_rendezvous.TCPStore = LoopbackTCPStore  # type: ignore[misc]  # --rdzv-backend static
    given = os.environ.get("PET_LOG_DIR") or any(a.startswith("--log") for a in sys.argv[1:])
    logs = None if given else Path(tempfile.mkdtemp(prefix="pipeline-torchrun-"))
    if logs is not None:
        os.environ["PET_LOG_DIR"] = str(logs)  # torchrun --log-dir, read by its parser
    try:
        torchrun_main()
    finally:
        if logs is not None:
            remove_empty_dirs(logs)  # a rank's error file, if any, stays


def remove_empty_dirs(root: Path) -> None:
    """Remove the empty folders under ``root`` and ``root`` itself when it ends up empty,
    deepest first: what torchrun made for a launch whose ranks wrote no error file.
    Files are never touched (``rmdir`` fails on a non-empty folder)."""
    folders = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for folder in [*folders, root]:
        with contextlib.suppress(OSError):  # not empty, or gone
            folder.rmdir()


if __name__ == "__main__":
    main()
