"""One rank of the 2-rank runtime test: run the selfcheck, write its result.

Started by ``horovodrun`` or ``torchrun`` from tests/dist/test_horovod.py as
``selfcheck_worker.py OUT BACKEND``; writes ``OUT/rank-<r>.json`` with the selfcheck
result plus every listening socket of the whole launcher process tree (launcher,
rendezvous, task services, ranks), seen while the job runs.
"""

import json
import os
import sys
from pathlib import Path

import psutil

from pipeline.train import dist


def listeners_of_tree(root: psutil.Process) -> list[list]:
    found = []
    for p in [root, *root.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.Error:
            continue
        found += [[c.laddr.ip, c.laddr.port] for c in conns if c.status == "LISTEN"]
    return found


def launcher() -> psutil.Process:
    p = psutil.Process()
    while p.parent() is not None:
        p = p.parent()
        # The launcher itself: "horovodrun ..." or "python .../horovodrun ..." (the rank's
        # shell wrapper also mentions horovodrun, in the environment it exports), or
        # "python -m torch.distributed.run ...".
        cmd = p.cmdline()
        if any(os.path.basename(part) == "horovodrun" for part in cmd[:2]):
            return p
        if any(m in cmd[:3] for m in ("torch.distributed.run", "pipeline.train.torchrun")):
            return p
    raise RuntimeError("not started by horovodrun or torchrun")


if __name__ == "__main__":
    out, backend = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "horovod"
    info = dist.init(backend)
    dist.barrier()  # every rank has joined: the rendezvous sockets are all open
    listen = listeners_of_tree(launcher())
    result = dist.selfcheck(backend)
    result["listen"] = listen
    (out / f"rank-{info.rank}.json").write_text(json.dumps(result), encoding="utf-8")
