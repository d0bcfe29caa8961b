"""The pipeline's expected failures and the exit code each maps to.

Every error a user can cause or meet (bad usage, bad config, a refused output path, a
damaged input, a full disk, a lost rank) is an instance of :class:`PipelineError` or of
one of the stage errors listed in :mod:`pipeline.cli.failures` (they predate this module). The
CLI prints such an error as one or two lines (what, which file or position, what to do)
and exits with its ``exit_code``; only ``--debug`` (or ``PIPELINE_DEBUG=1``) shows the
traceback.

Exit codes (README, "Running each stage"): 0 success, 1 a stage failed, 2 bad usage or
config.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class PipelineError(Exception):
    """A stage failed for a reason the user can act on; exit code 1."""

    exit_code = EXIT_FAILED


class UsageError(PipelineError):
    """Bad usage or config, found before any work was done; exit code 2."""

    exit_code = EXIT_USAGE


class OutputError(UsageError):
    """An output path is refused before any work: it holds something this stage did not
    write, it overlaps an input, or it is a previous output and ``overwrite`` is off."""
