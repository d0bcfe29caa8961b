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


def featurise(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline featurise``: ``pages/`` → shards; prints the per-split counts."""
    from pipeline.shards.format import ShardError
    from pipeline.spark.featurise_stage import run_featurise
    from pipeline.wiki.pages import PagesError

    try:
        m = run_featurise(cfg)
    except (ShardError, PagesError) as e:
        print(f"pipeline featurise: error: {e}", file=sys.stderr)
        print("pipeline featurise: nothing was published.", file=sys.stderr)
        return EXIT_FAILED
    out = cfg.stage_path(cfg.featurise.out, "shards")
    parts = [
        f"{split} {info['sequences']} sequences / {len(info['shards'])} shard(s)"
        for split, info in m["splits"].items()
    ]
    print(
        f"pipeline featurise: {m['pages']['ok_pages']} pages -> {m['totals']['tokens']} tokens "
        f"(vocab {m['vocab_size']}, {m['dtype']}), {m['seconds']:.1f}s -> {out}\n  "
        + ", ".join(parts)
    )
    return EXIT_OK


def inspect(cfg: PipelineConfig | None, ns: argparse.Namespace) -> int:
    """``pipeline inspect DIR``: summary of a pages or shards folder."""
    from pipeline import inspect as insp
    from pipeline.shards.format import ShardError
    from pipeline.wiki.pages import PagesError

    try:
        kind = insp.kind_of(ns.path)
        text = insp.describe_shards(ns.path) if kind == "shards" else insp.describe_pages(ns.path)
    except (ShardError, PagesError, ValueError) as e:
        print(f"pipeline inspect: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(text)
    return EXIT_OK
