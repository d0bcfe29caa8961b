"""The script each rank runs: ``python jobs/train.py CONFIG.yaml [key.sub=value ...]``.

``pipeline train [CONFIG.yaml] --data SHARDS --run RUN -np N`` (the launcher) checks the
input, writes the resolved config to ``RUN/config.yaml`` and starts ``horovodrun -np N -H
localhost:N --gloo --network-interface lo python jobs/train.py RUN/config.yaml`` (or, with
``train.backend=torch``, ``torchrun --nproc-per-node N ... jobs/train.py RUN/config.yaml``).
Each rank then loads that file and calls :func:`pipeline.train.loop.train_rank`, as
Horovod's own examples run their ``main`` under horovodrun; rank 0 claims the run folder
and saves the config there itself, so the script also runs by hand::

    horovodrun -np 2 -H localhost:2 --gloo --network-interface lo \\
      python jobs/train.py conf/local.yaml train.data=SHARDS train.run=RUN
    GLOO_SOCKET_IFNAME=lo torchrun --nproc-per-node 2 --rdzv-backend c10d \\
      --rdzv-endpoint 127.0.0.1:29400 jobs/train.py conf/local.yaml train.backend=torch \\
      train.data=SHARDS train.run=RUN

Exit status 0 on success, 1 when training failed, 2 on bad usage or config. A failure is
one line on stderr, ``pipeline train: error: WHAT; WHAT TO DO``, the line the launcher looks
for in the ranks' output to name the rank that failed and why (``--debug`` or
``PIPELINE_DEBUG=1`` shows the traceback instead).
"""

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pipeline.cli.failures import DEBUG_ENV, debug_enabled, report_failure
from pipeline.errors import EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The arguments of one rank: the config file, overrides and ``--debug``."""
    p = argparse.ArgumentParser(
        prog="jobs/train.py",
        description="Train as one rank (started by horovodrun or torchrun; see pipeline train).",
    )
    p.add_argument("config", metavar="CONFIG.yaml", help="the resolved config, RUN/config.yaml")
    p.add_argument(
        "overrides", nargs="*", default=[], metavar="key.sub=value", help="config overrides"
    )
    p.add_argument(
        "--debug",
        action="store_true",
        help=f"show the full traceback of a failure (or set {DEBUG_ENV}=1)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Train as this rank; return the exit code (a failure is reported on stderr)."""
    ns = build_parser().parse_args(argv)
    debug = debug_enabled(ns)
    cfg = None
    try:
        from pipeline.cli.failures import value_errors_fail
        from pipeline.stage_config import load_config
        from pipeline.train.loop import train_rank

        cfg = load_config(ns.config, ns.overrides)
        with value_errors_fail():
            train_rank(cfg)
    except (Exception, KeyboardInterrupt) as e:
        if debug:
            raise
        return report_failure(e, "train", cfg, argparse.Namespace())
    return EXIT_OK


def leave(code: int) -> NoReturn:
    """End a rank started by torchrun or horovodrun that finished its work with exit status
    ``code``, skipping the interpreter's teardown (``os._exit`` after flushing stdout,
    stderr and logging).

    Every output of the rank is written and closed by then, and the exit status is all the
    launcher reads. The teardown is skipped because, at interpreter exit, a torch rank
    aborted now and then after finishing ("terminate called without an active exception",
    SIGABRT, about once in ten runs under load): Gloo's C++ worker threads can still hold
    objects with Python references while the interpreter is torn down (pytorch/pytorch
    pull request 179291 describes the crash; torch does not guard against it).
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    status = main()
    from pipeline.train.dist import in_launched_rank

    if status == EXIT_OK and in_launched_rank():
        # Only after success: a failing rank keeps its usual exit, whose timing the launcher's
        # "which rank failed first" relies on (a rank that lost its peers must not beat the
        # peer that died to the exit).
        leave(status)
    sys.exit(status)
