"""How a failed ``pipeline`` command is reported: one or two lines and an exit code.

Every expected failure (bad config, missing or damaged input, a corrupt checkpoint, a full
disk, a denied path, a lost rank, a failed Spark task) is printed as one or two lines,
``pipeline CMD: error: WHAT; WHAT TO DO``, never as a traceback; ``--debug`` (or
``PIPELINE_DEBUG=1``) lets the traceback through instead. Anything else is reported as an
internal error, in one line too. ``jobs/train.py`` (one Horovod rank) reports through this
module as well.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import Any

from pipeline import config as cfgmod
from pipeline.errors import EXIT_FAILED, EXIT_USAGE, PipelineError
from pipeline.stage_config import PipelineConfig

EXIT_INTERRUPTED = 130
DEBUG_ENV = "PIPELINE_DEBUG"


def debug_enabled(ns: argparse.Namespace | None = None) -> bool:
    """True when ``--debug`` was given or ``PIPELINE_DEBUG`` is set to a true value."""
    env = os.environ.get(DEBUG_ENV, "").strip().lower()
    return bool(getattr(ns, "debug", False)) or env not in ("", "0", "false", "no", "off")


@contextlib.contextmanager
def value_errors_fail() -> Iterator[None]:
    """Report a plain ``ValueError`` of the stage's own checks as a stage failure (exit 1).

    The stage errors that are ``ValueError`` subclasses (``DumpError``, ``ShardError``,
    ``ConfigError``, ...) pass through unchanged: :func:`failure_report` knows them by name.
    """
    try:
        yield
    except ValueError as e:
        if type(e) is not ValueError:
            raise
        raise PipelineError(str(e)) from e


# Where each command writes, and the flag that moves it: named when the disk refuses.
def _output_of(cmd: str, cfg: PipelineConfig | None, ns: Any) -> tuple[str, str]:
    if cfg is not None:
        if cmd == "parse":
            return cfg.stage_path(cfg.parse.out, "pages"), "--out (parse.out)"
        if cmd == "featurise":
            return cfg.stage_path(cfg.featurise.out, "shards"), "--out (featurise.out)"
        if cmd == "train":
            run = cfg.stage_path(cfg.train.run, os.path.join("runs", cfg.train.name))
            return run, "--run (train.run)"
        if cmd == "download":
            return cfg.stage_path(cfg.download.out, "dumps"), "--out (download.out)"
        if cmd == "run":
            return cfg.work_dir, "--work-dir (work_dir)"
    if cmd == "bench":
        return ns.out, "--out"
    if cmd == "report":
        return ns.path, "run folder"
    return "", ""


def os_error_message(e: OSError, output: str = "", flag: str = "") -> str:
    """One line for a failed file operation: the file, the cause and what to do.

    Args:
        e: the error; its ``filename`` (else ``output``) is named.
        output: the folder the command writes, when known (named for a full disk).
        flag: the option choosing that folder, e.g. ``--out (parse.out)``.
    """
    code = e.errno
    cause = os.strerror(code).lower() if code else (e.strerror or str(e) or type(e).__name__)
    file = None if e.filename in (None, "") else str(e.filename)
    if file is not None and getattr(e, "filename2", None):
        file = f"{file} -> {e.filename2}"
    if file is not None:
        head = f"{file}: {cause}"
    elif output:
        head = f"{cause} while writing {output}"
    else:
        head = cause
    elsewhere = f" or choose another {flag}" if flag else ""
    if code in (errno.ENOSPC, errno.EDQUOT):
        disk = output or (os.path.dirname(str(e.filename)) if file else "")
        what = "free space on the disk" if code == errno.ENOSPC else "free space in your quota"
        holding = f" holding {disk}" if disk and file else ""
        return f"{head}; {what}{holding}{elsewhere}, then re-run"
    if code in (errno.EACCES, errno.EPERM):
        return f"{head}; give this user access to it{elsewhere}"
    if code == errno.EROFS:
        return f"{head}; choose another {flag} on a writable disk" if flag else f"{head}"
    if code == errno.ENOENT:
        return f"{head}; check the path"
    return f"{head} ({errno.errorcode.get(code, code)})" if code else head


# Stage errors that predate pipeline.errors, by class name (imported lazily elsewhere;
# matched by name here so that a failure report never imports torch or pyspark).
_STAGE_ERRORS = frozenset(
    {
        "DumpError",
        "PagesError",
        "ShardError",
        "TrainError",
        "CheckpointError",
        "ExportError",
        "DownloadError",
        "RunError",
    }
)


def _names(e: BaseException) -> set[str]:
    return {c.__name__ for c in type(e).__mro__ if c.__module__.startswith("pipeline")}


def failure_report(
    e: BaseException, cmd: str, cfg: PipelineConfig | None = None, ns: object = None
) -> tuple[list[str], int]:
    """The lines to print (without the ``pipeline CMD:`` prefix) and the exit code of a
    failed command, for any exception; never a traceback.

    Expected failures (:class:`~pipeline.errors.PipelineError`, config and stage errors,
    ``OSError``, a Spark job failed by one of these) say what and what to do; anything
    else is an internal error that names ``--debug``.
    """
    out, flag = _output_of(cmd, cfg, ns) if ns is not None else ("", "")
    if isinstance(e, KeyboardInterrupt):
        return ["interrupted"], EXIT_INTERRUPTED
    if isinstance(e, cfgmod.ConfigError):
        return [f"config error: {e}"], EXIT_USAGE
    names = _names(e)
    code = getattr(e, "exit_code", EXIT_FAILED)
    if "RunError" in names:
        # "stage X failed: ..."; a disk or Spark failure below it is described here
        cause = e.__cause__
        if cause is not None and not (_names(cause) & _STAGE_ERRORS):
            lines, _ = failure_report(cause, cmd, cfg, ns)
            inner = lines[0].removeprefix("error: ")
            if not inner.startswith("internal error"):
                return [f"stage {getattr(e, 'stage', '?')} failed: {inner}"], code
        return [str(e)], code
    if isinstance(e, PipelineError):
        return [f"error: {e}"], e.exit_code
    if names & _STAGE_ERRORS:
        return [f"error: {e}"], EXIT_FAILED
    if isinstance(e, OSError):
        return [f"error: {os_error_message(e, out, flag)}"], EXIT_FAILED
    from pipeline.spark import errors as spark_errors

    if spark_errors.is_spark_error(e):
        cause = spark_errors.cause_of(e)
        if cause is not None:
            return failure_report(cause, cmd, cfg, ns)
        return [
            f"error: internal error: a Spark job failed: {spark_errors.summary(e)}; re-run "
            "with --debug for the traceback, and report it"
        ], EXIT_FAILED
    text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    what = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return [
        f"error: internal error: {what}; re-run with --debug for the traceback, and report it"
    ], EXIT_FAILED


# A second line after a failure of these stages (exit 1): what the user can rely on.
_AFTER_FAILURE = {
    "parse": "nothing was published.",
    "featurise": "nothing was published.",
}


def report_failure(
    e: BaseException, cmd: str, cfg: PipelineConfig | None = None, ns: object = None
) -> int:
    """Print the failure ``e`` of command ``cmd`` on stderr as one or two lines,
    ``pipeline CMD: error: ...`` (see :func:`failure_report`); return its exit code.

    ``jobs/train.py`` reports a rank's failure through this too: the horovodrun launcher
    finds the ``pipeline train: error:`` line in the ranks' output.
    """
    lines, code = failure_report(e, cmd, cfg, ns)
    if code == EXIT_FAILED and cmd in _AFTER_FAILURE and lines[0].startswith("error"):
        lines.append(_AFTER_FAILURE[cmd])
    for line in lines[:2]:
        print(f"pipeline {cmd}: {line}", file=sys.stderr, flush=True)
    return code
