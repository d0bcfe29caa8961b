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
        + "\n  phases: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in m["phases"].items())
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


def train(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline train``: launch the ranks (or be one); print the run's summary."""
    from pipeline.shards.format import ShardError
    from pipeline.train.checkpoint import TrainError
    from pipeline.train.launch import run_train
    from pipeline.train.loop import run_dir

    try:
        summary = run_train(cfg)
    except (TrainError, ShardError, ValueError) as e:
        print(f"pipeline train: error: {e}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    if summary is None:  # a rank other than 0 under horovodrun: the launcher reports
        return EXIT_OK

    def num(v: float | None, fmt: str = ".4f") -> str:
        return "-" if v is None else format(v, fmt)

    tok_s, wait = summary["tokens_per_s"], summary["data_wait"]
    print(
        f"pipeline train: {summary['steps']} steps -> {run_dir(cfg)}\n"
        f"  final loss {num(summary['loss'])}, val loss {num(summary['val_loss_start'])} -> "
        f"{num(summary['val_loss_end'])} (perplexity {num(summary['val_ppl_end'], '.1f')})\n"
        f"  {num(tok_s, ',.0f')} tokens/s, data wait {num(wait and wait * 100, '.1f')}% of "
        "step time (medians)\n"
        f"  model: {summary['model_dir'] or 'not exported (training did not reach max_steps)'}",
        flush=True,
    )
    return EXIT_OK


def generate(cfg: PipelineConfig | None, ns: argparse.Namespace) -> int:
    """``pipeline generate --model DIR --prompt TEXT``: print the prompt and its continuation."""
    from pipeline.train.export import ExportError, generate_text

    try:
        text = generate_text(
            ns.model,
            ns.prompt,
            max_new_tokens=ns.max_new_tokens,
            temperature=ns.temperature,
            top_k=ns.top_k if ns.top_k and ns.top_k > 0 else None,
            seed=ns.seed,
        )
    except (ExportError, ValueError) as e:
        print(f"pipeline generate: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(text)
    return EXIT_OK


def run(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline run``: every stage that is not up to date, then a sample and the report."""
    from pipeline.run import RunError, run_pipeline

    try:
        result = run_pipeline(cfg, force=ns.force)
    except RunError as e:
        print(f"pipeline run: {e}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    ran = ", ".join(result["ran"]) or "nothing (every stage up to date)"
    print(f"pipeline run: ran {ran}")
    if result["sample"] is not None:
        print("pipeline run: a generated sample:\n" + result["sample"].strip() + "\n")
    if result["report"]:
        print(f"pipeline run: report: {result['report']}")
    return EXIT_OK


def download(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline download WIKI``: fetch a dump and its index; print the local dump paths."""
    from pipeline.download import DownloadError, download_dump

    if not cfg.download.wiki:
        print("pipeline download: name the wiki, e.g. pipeline download enwiki", file=sys.stderr)
        return 2  # bad usage
    out = cfg.stage_path(cfg.download.out, "dumps")
    try:
        paths = download_dump(cfg.download, out)
    except DownloadError as e:
        print(f"pipeline download: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    for p in paths:
        print(p)
    folder = paths[0].parent if paths else out
    print(f"pipeline download: ready; parse with: pipeline parse --input {folder}", file=sys.stderr)
    return EXIT_OK


def report(cfg: PipelineConfig | None, ns: argparse.Namespace) -> int:
    """``pipeline report RUN_DIR``: write report.html and PNGs, print the text summary."""
    from pipeline.report import gather, summary_text, write_report

    try:
        path = write_report(ns.path)
    except FileNotFoundError as e:
        print(f"pipeline report: error: {e}", file=sys.stderr)
        return EXIT_FAILED
    print(summary_text(gather(ns.path)))
    print(f"report: {path}")
    return EXIT_OK


def bench(cfg: PipelineConfig | None, ns: argparse.Namespace) -> int:
    """``pipeline bench [NAME]``: run the benchmarks; write bench.json and bench.md."""
    from pathlib import Path

    from pipeline.bench import run_bench

    result = run_bench(ns.name, Path(ns.out), quick=ns.quick)
    failed = [k for k, b in result["benchmarks"].items() if b["returncode"]]
    print(f"pipeline bench: wrote {Path(ns.out) / 'bench.json'} and bench.md")
    if failed:
        print(f"pipeline bench: failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
