"""CLI handlers of the built stages: run the stage, print a summary, map errors to exit codes.

Imported lazily by :mod:`pipeline.cli`, so ``--help`` never starts Spark or Horovod.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.stage_config import PipelineConfig

EXIT_OK, EXIT_FAILED = 0, 1


def parse(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline parse``: dumps → ``pages/``; prints the per-status counts."""
    from pipeline.spark.parse_stage import run_parse
    from pipeline.wiki.xmlpages import DumpError

    try:
        stats = run_parse(cfg)
    except (DumpError, ValueError) as e:
        print(f"pipeline parse: error: {e}", file=sys.stderr)
        print("pipeline parse: nothing was published.", file=sys.stderr)
        return EXIT_FAILED
    totals = stats["totals"]
    out = cfg.stage_path(cfg.parse.out, "pages")
    if totals["pages"] == 0:
        print(f"pipeline parse: the input holds no pages; committed an empty table to {out}")
    counts = ", ".join(f"{k} {v}" for k, v in totals["status"].items() if v)
    print(
        f"pipeline parse: {totals['pages']} pages from {len(stats['inputs'])} file(s) in "
        f"{stats['tasks']} task(s), {stats['seconds']:.1f}s -> {out}\n  status: {counts or '-'}"
    )
    for d in stats["damaged"]:
        print(
            f"  damaged: {d['file']} at {d['position']}: {d['reason']} "
            f"(kept {d['complete_pages_before']} complete pages before it)"
        )
    return EXIT_OK
