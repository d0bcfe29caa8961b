"""The ``pipeline`` command line (the console script ``pipeline = pipeline.cli:main``).

- :mod:`pipeline.cli.command`: the argument parser, the config of a command line
  (defaults < file < overrides < flags) and the dispatch to a handler; :func:`main`.
- :mod:`pipeline.cli.handlers`: one function per subcommand, which runs its stage and
  prints a summary (imported only when a command runs).
- :mod:`pipeline.cli.failures`: a failure as one or two lines and its exit code.

Stage modules never import this package: their code hashes (:mod:`pipeline.codehash`)
stay independent of the command line.
"""

from pipeline.cli.command import HANDLERS, build_parser, flag_values, main, resolve_config
from pipeline.cli.failures import (
    DEBUG_ENV,
    EXIT_INTERRUPTED,
    debug_enabled,
    failure_report,
    os_error_message,
    report_failure,
    value_errors_fail,
)
from pipeline.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE

__all__ = [
    "DEBUG_ENV",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "HANDLERS",
    "build_parser",
    "debug_enabled",
    "failure_report",
    "flag_values",
    "main",
    "os_error_message",
    "report_failure",
    "resolve_config",
    "value_errors_fail",
]
