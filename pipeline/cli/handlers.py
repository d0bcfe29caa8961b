"""The handlers of the ``pipeline`` subcommands: run the stage, print a summary, return
the exit code; one function per subcommand, named after it.

Imported lazily by :mod:`pipeline.cli.command`, so ``--help`` never starts Spark or
Horovod. A stage's failure propagates to :func:`pipeline.cli.command.main`, which prints
it as one or two lines and picks the exit code (:mod:`pipeline.cli.failures`); a handler
only turns the plain ``ValueError`` its stage raises for bad input into a
:class:`~pipeline.errors.PipelineError` (exit 1, :func:`value_errors_fail`), so that the
CLI does not report it as an internal error.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.cli.failures import value_errors_fail
from pipeline.errors import EXIT_OK, PipelineError, UsageError
from pipeline.stage_config import PipelineConfig


def parse(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline parse``: dumps → ``pages/``; prints the per-status counts."""
    from pipeline.spark.parse_stage import run_parse

    with value_errors_fail():
        stats = run_parse(cfg)
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


def curate(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline curate``: ``pages/`` → ``curated/``; prints kept and removed counts."""
    from pipeline.spark.curate_stage import run_curate

    with value_errors_fail():
        stats = run_curate(cfg)
    removed = {k: v for k, v in stats["status"].items() if v and k not in ("ok", "skipped")}
    rules = ", ".join(f"{k} {v}" for k, v in stats["rules"].items() if k != "skipped")
    print(
        f"pipeline curate: {stats['rows']} rows, {stats['status']['ok']} ok kept, "
        f"{stats['status']['skipped']} not ok pages passed through, {stats['seconds']:.1f}s "
        f"-> {cfg.paths.curated}\n  removed: "
        + (", ".join(f"{k} {v}" for k, v in removed.items()) or "-")
        + f"\n  rules: {rules or '-'}"
        + "\n  phases: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in stats["phases"].items())
    )
    return EXIT_OK


def featurise(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline featurise``: ``pages/`` → shards; prints the per-split counts."""
    from pipeline.spark.featurise_stage import run_featurise

    m = run_featurise(cfg)
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
    from pipeline import describe

    with value_errors_fail():
        kind = describe.kind_of(ns.path)
        if kind == "shards":
            text = describe.describe_shards(ns.path)
        else:
            text = describe.describe_pages(ns.path)
    print(text)
    return EXIT_OK


def train(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline train``: launch the ranks; print the run's summary."""
    from pipeline.train.launch import run_train
    from pipeline.train.loop import run_dir

    with value_errors_fail():
        summary = run_train(cfg)

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
    from pipeline.train.export import generate_text

    if ns.max_new_tokens < 0 or ns.temperature < 0:
        raise UsageError(
            f"--max-new-tokens ({ns.max_new_tokens}) and --temperature ({ns.temperature}) "
            "must be >= 0"
        )
    with value_errors_fail():
        text = generate_text(
            ns.model,
            ns.prompt,
            max_new_tokens=ns.max_new_tokens,
            temperature=ns.temperature,
            top_k=ns.top_k if ns.top_k and ns.top_k > 0 else None,
            seed=ns.seed,
        )
    print(text)
    return EXIT_OK


def run(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline run``: every stage that is not up to date, then a sample and the report."""
    from pipeline.run import run_pipeline

    # A RunError ("stage X failed: ...") is printed as it is by pipeline.cli.failures.
    result = run_pipeline(cfg, force=ns.force)
    ran = ", ".join(result["ran"]) or "nothing (every stage up to date)"
    print(f"pipeline run: ran {ran}")
    for line in result.get("summary", []):
        print(f"pipeline run: {line}")
    if result["sample"] is not None:
        print("pipeline run: a generated sample:\n" + result["sample"].strip() + "\n")
    if result["report"]:
        print(f"pipeline run: report: {result['report']}")
    return EXIT_OK


def download(cfg: PipelineConfig, ns: argparse.Namespace) -> int:
    """``pipeline download WIKI``: fetch a dump and its index; print the local dump paths."""
    from pipeline.download import download_dump

    if not cfg.download.wiki:
        raise UsageError("name the wiki, e.g. pipeline download enwiki")
    out = cfg.stage_path(cfg.download.out, "dumps")
    paths = download_dump(cfg.download, out)
    for p in paths:
        print(p)
    folder = paths[0].parent if paths else out
    print(f"pipeline download: ready; parse with: pipeline parse --input {folder}", file=sys.stderr)
    return EXIT_OK


def report(cfg: PipelineConfig | None, ns: argparse.Namespace) -> int:
    """``pipeline report RUN_DIR``: write report.html and PNGs, print the text summary."""
    from pipeline.report import gather, summary_text, write_report

    try:
        path = write_report(ns.path, overwrite=ns.overwrite)
    except FileNotFoundError as e:
        if e.errno is not None:  # a file operation's own error: the CLI names the file
            raise
        raise PipelineError(str(e)) from e  # "RUN is not a run folder"
    print(summary_text(gather(ns.path)))
    print(f"report: {path}")
    return EXIT_OK


def bench(cfg: PipelineConfig | None, ns: argparse.Namespace) -> int:
    """``pipeline bench [NAME]``: run ``benchmarks/run_all.py`` of the source checkout (the
    benchmarks are harness code, not part of the library); it writes bench.json and
    bench.md into ``--out`` and prints what it runs."""
    import json
    import subprocess
    from pathlib import Path

    import pipeline

    runner = Path(pipeline.__file__).resolve().parent.parent / "benchmarks" / "run_all.py"
    if not runner.is_file():
        raise PipelineError(
            f"pipeline bench runs the scripts in benchmarks/ of a source checkout, and there is "
            f"no {runner}; run it from a clone of the repository"
        )
    cmd = [sys.executable, str(runner), ns.name, "--out", ns.out, *(["--quick"] * ns.quick)]
    code = subprocess.run(cmd, check=False).returncode
    if code == EXIT_OK:
        return EXIT_OK
    out = Path(ns.out)
    try:
        result = json.loads((out / "bench.json").read_text(encoding="utf-8"))
        names = [k for k, b in result["benchmarks"].items() if b.get("error")]
    except (OSError, ValueError, KeyError, AttributeError):
        raise PipelineError(f"{runner} failed with exit status {code}") from None
    raise PipelineError(f"benchmark(s) failed: {', '.join(names) or '?'}; see {out / 'bench.md'}")
