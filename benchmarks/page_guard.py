"""Cost and bounds of the per-page guards (:mod:`pipeline.wiki.guard`); prints markdown.

Run from the repository root (3-6 minutes on a shared 2-core machine)::

    .venv/bin/python benchmarks/page_guard.py              # all three tables
    .venv/bin/python benchmarks/page_guard.py --only samples,task --repeat 5
    .venv/bin/python benchmarks/page_guard.py --mb 100     # task table on the 100 MB input

Tables:

- ``samples``: every page with text of every shared sample (``../shared/data/wiki``,
  5,000+ pages, mostly small), cleaned three ways in this process: without the guards
  (the code before them), with the pre-scan only, and with the pre-scan plus the page
  worker (the default: pages go to the worker in batches of
  :data:`~pipeline.wiki.guard.BATCH_PAGES`, as :func:`pipeline.wiki.pages.iter_rows` sends
  them). ``CPU s`` is user + system time of this process and its reaped children (the
  worker); each way runs ``--repeat`` times, interleaved, and the fastest run counts
  (the least disturbed by other work on the machine).
- ``task``: :func:`pipeline.wiki.pages.run_task` on the parse benchmark's multistream
  dump (``benchmarks/parse.py``, ``--mb`` MB of XML, cached in ``~/.cache``) as one task,
  the same three ways; ``same output`` compares the Parquet files' bytes.
- ``rss``: the whole parse stage (``local[2]``, JVM and Python workers) in its own process
  on two crafted dumps: the English sample (206 pages) with the pathological pages of
  issue 12 (200,000 nested ``{{``, 100,000 unclosed ``[[a|``, a 100,000-row table,
  30,000 unclosed ``<span>``) spread between its pages, and a second row adding a 4 MiB
  page of dense links per file (legitimate, about 600 MB of tokens) to load the memory
  bound. Peak RSS is the largest sum over the process tree (sampled every 0.2 s; shared
  pages of forked processes count once per process, so it is an upper bound).

Targets (printed, never asserted): guards cost <= 5% CPU on normal pages; peak RSS of
the whole job on the pathological dump < 2 GB; every page gets a status.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import parse as parse_bench  # noqa: E402  (benchmarks/parse.py: input builder, run_measured)

from pipeline.wiki import guard, pages, sources  # noqa: E402
from pipeline.wiki.clean import CleanOptions  # noqa: E402

WIKI = ROOT.parent / "shared" / "data" / "wiki"
MB = 10**6
WAYS = ("no guards", "pre-scan only", "pre-scan + worker")
BAD = {
    "Guard nested templates": "{{" * 200_000 + "x" + "}}" * 200_000,
    "Guard unclosed links": "[[a|" * 100_000,
    "Guard huge table": "{|\n" + "|-\n| a || b\n" * 100_000 + "|}\n",
    "Guard unclosed tags": "<span>" * 30_000,
}
DENSE = {"Guard dense links": ("[[a]] " * 699_000)[: 4 << 20]}


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class _NoPrescan:
    """Context: :func:`guard.prescan` switched off (the code before the guards)."""

    def __enter__(self) -> None:
        self.saved, guard.prescan = guard.prescan, lambda wikitext: None

    def __exit__(self, *exc: object) -> None:
        guard.prescan = self.saved


def sample_texts() -> list[str]:
    """The wikitext of every page of every readable shared sample."""
    sys.path.insert(0, str(ROOT))
    from tests.unit.test_page_guard import sample_pages

    return [p.text for _, p in sample_pages() if p.text and p.text.strip()]


def bench_samples(repeat: int) -> list[dict]:
    """Clean every sample page the three ways; fastest of ``repeat`` runs each."""
    texts = sample_texts()
    opts = CleanOptions()
    best = {w: (float("inf"), float("inf")) for w in WAYS}
    outputs = {}
    for _ in range(repeat):
        for way in WAYS:
            cpu, wall = _cpu(), time.perf_counter()
            if way == "no guards":
                out = [guard.clean_or_error(t, opts) for t in texts]
            elif way == "pre-scan only":
                out = [
                    (None, r) if (r := guard.prescan(t)) else guard.clean_or_error(t, opts)
                    for t in texts
                ]
            else:  # as pipeline.wiki.pages.iter_rows does: a worker round trip per batch
                out = []
                with guard.PageWorker(30.0, 1 << 30) as worker:
                    for start, stop in guard.batch_spans([len(t) for t in texts]):
                        reasons = [guard.prescan(t) for t in texts[start:stop]]
                        kept = [t for t, r in zip(texts[start:stop], reasons, strict=True) if not r]
                        cleaned = iter(worker.clean_batch(kept, opts))
                        out += [(None, r) if r else next(cleaned) for r in reasons]
            cpu, wall = _cpu() - cpu, time.perf_counter() - wall
            best[way] = (min(best[way][0], cpu), min(best[way][1], wall))
            outputs[way] = [(r.text, r.categories) if r else e for r, e in out]
    base = best["no guards"]
    return [
        {
            "table": "samples",
            "way": w,
            "pages": len(texts),
            "mb": sum(len(t.encode()) for t in texts) / MB,
            "cpu_s": best[w][0],
            "wall_s": best[w][1],
            "cpu_pct": 100 * (best[w][0] / base[0] - 1),
            "wall_pct": 100 * (best[w][1] / base[1] - 1),
            "same": outputs[w] == outputs["no guards"],
        }
        for w in WAYS
    ]


def bench_task(mb: int, repeat: int) -> list[dict]:
    """run_task on the parse benchmark's input as one task, the three ways."""
    inp = parse_bench.build_input(mb)
    (task,) = sources.plan_tasks(sources.expand_inputs([str(inp.dump)]), 1 << 40)
    best = {w: (float("inf"), float("inf")) for w in WAYS}
    digests, status = {}, None
    with tempfile.TemporaryDirectory(prefix="bench-guard-") as tmp:
        for _ in range(repeat):
            for i, way in enumerate(WAYS):
                opts = pages.ParseOptions(page_worker=way == "pre-scan + worker")
                cpu, wall = _cpu(), time.perf_counter()
                if way == "no guards":
                    with _NoPrescan():
                        stats = pages.run_task(task, opts, tmp, str(i))
                else:
                    stats = pages.run_task(task, opts, tmp, str(i))
                cpu, wall = _cpu() - cpu, time.perf_counter() - wall
                best[way] = (min(best[way][0], cpu), min(best[way][1], wall))
                digests[way] = hashlib.sha256(Path(stats.file).read_bytes()).hexdigest()
                status = dict(stats.status)
    base = best["no guards"]
    return [
        {
            "table": "task",
            "way": w,
            "pages": inp.pages,
            "mb": inp.xml_bytes / MB,
            "cpu_s": best[w][0],
            "wall_s": best[w][1],
            "cpu_pct": 100 * (best[w][0] / base[0] - 1),
            "wall_pct": 100 * (best[w][1] / base[1] - 1),
            "same": digests[w] == digests["no guards"],
            "status": status,
        }
        for w in WAYS
    ]


def crafted(sample: Path, out: Path, bad: dict[str, str], first_id: int) -> Path:
    """``sample`` with the ``bad`` pages spread between its pages, written to ``out``."""
    xml = bz2.decompress(sample.read_bytes()).decode("utf-8")
    parts = xml.split("</page>")
    step = len(parts) // (len(bad) + 1)
    for k, (title, wikitext) in enumerate(bad.items()):
        page_id = first_id + k
        page = (
            f"\n  <page>\n    <title>{escape(title)}</title>\n    <ns>0</ns>\n"
            f"    <id>{page_id}</id>\n    <revision>\n      <id>{page_id}</id>\n"
            "      <timestamp>2025-02-01T00:00:00Z</timestamp>\n"
            "      <model>wikitext</model>\n      <format>text/x-wiki</format>\n"
            f'      <text xml:space="preserve">{escape(wikitext)}</text>\n'
            "    </revision>\n  </page>\n"
        )
        parts[(k + 1) * step] = page + parts[(k + 1) * step].lstrip("\n")
    out.write_bytes(bz2.compress("</page>".join(parts).encode("utf-8"), 1))
    return out


def child_parse(out: str, inputs: list[str]) -> None:
    """In a child process: the parse stage with local[2]; print the rows of crafted pages."""
    import pyarrow.parquet as pq

    from pipeline.spark.parse_stage import run_parse
    from pipeline.stage_config import load_config

    cfg = load_config(
        overrides=[
            f"parse.input={json.dumps(inputs)}",
            f"parse.out={out}",
            "spark.master=local[2]",
            "spark.ui_enabled=false",
            "spark.log_level=ERROR",
        ]
    )
    stats = run_parse(cfg, progress=False)
    rows = pq.read_table([f"{out}/{f}" for f in stats["files"]]).to_pylist()
    bad = sorted(
        {
            r["title"]: r["error"] or r["status"] for r in rows if r["title"].startswith("Guard")
        }.items()
    )
    print(
        "BENCH "
        + json.dumps({"status": stats["totals"]["status"], "bad": bad, "tasks": stats["tasks"]})
    )


def bench_rss() -> list[dict]:
    """Peak RSS of the whole parse job on the crafted dumps (two inputs, local[2])."""
    rows = []
    sample = parse_bench.SAMPLE
    for label, bad in (("issue-12 shapes", BAD), ("+ 4 MiB dense-links page", BAD | DENSE)):
        with tempfile.TemporaryDirectory(prefix="bench-guard-rss-") as tmp:
            inputs = [
                str(
                    crafted(
                        sample,
                        Path(tmp) / f"enwiki-crafted{i}-pages-articles.xml.bz2",
                        bad,
                        90_000_000 + 100 * i,
                    )
                )
                for i in range(2)
            ]
            argv = [sys.executable, __file__, "--child", f"{tmp}/pages", *inputs]
            m = parse_bench.run_measured(argv)
        lines = [x for x in m.stdout.splitlines() if x.startswith("BENCH ")]
        if m.returncode != 0 or not lines:
            raise SystemExit(f"parse failed ({m.returncode}):\n{m.stderr[-3000:]}")
        r = json.loads(lines[-1][6:])
        rows.append(
            {
                "table": "rss",
                "dump": label,
                "seconds": m.seconds,
                "cpu_s": m.cpu_seconds,
                "peak_rss": m.peak_rss,
                "status": r["status"],
                "bad": r["bad"],
                "tasks": r["tasks"],
            }
        )
    return rows


def print_tables(rows: list[dict]) -> None:
    """Markdown tables of the measured rows."""
    for name, title in (
        ("samples", "every page of the shared samples, in-process"),
        ("task", "run_task on the parse benchmark's dump, one task"),
    ):
        part = [r for r in rows if r["table"] == name]
        if not part:
            continue
        print(
            f"### Guard cost on normal pages: {title} ({part[0]['pages']} pages, "
            f"{part[0]['mb']:.1f} MB of wikitext/XML)\n"
        )
        print("| way | CPU s | vs no guards | wall s | vs no guards | same output |")
        print("|---|---:|---:|---:|---:|---|")
        for r in part:
            print(
                f"| {r['way']} | {r['cpu_s']:.2f} | {r['cpu_pct']:+.1f}% | {r['wall_s']:.2f} "
                f"| {r['wall_pct']:+.1f}% | {'yes' if r['same'] else 'NO'} |"
            )
        print()
    part = [r for r in rows if r["table"] == "rss"]
    if part:
        print("### Whole parse job (local[2], 2 tasks) on crafted dumps\n")
        print("| dump | seconds | CPU s | peak RSS MiB | < 2 GB | statuses | crafted pages |")
        print("|---|---:|---:|---:|---|---|---|")
        for r in part:
            st = ", ".join(f"{k} {v}" for k, v in r["status"].items() if v)
            bad = "; ".join(f"{t.removeprefix('Guard ')}: {e}" for t, e in r["bad"])
            print(
                f"| {r['dump']} | {r['seconds']:.1f} | {r['cpu_s']:.1f} "
                f"| {r['peak_rss'] / 2**20:.0f} | {'yes' if r['peak_rss'] < 2e9 else 'NO'} "
                f"| {st} | {bad} |"
            )
        print()


def main(argv: list[str] | None = None) -> int:
    """Run the chosen tables and print them."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="samples,task,rss", help="tables: samples,task,rss")
    p.add_argument("--mb", type=int, default=10, help="MB of XML for the task table (10)")
    p.add_argument("--repeat", type=int, default=3, help="runs per way; the fastest counts")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child_parse(args.child[0], args.child[1:])
        return 0
    only = args.only.split(",")
    if unknown := set(only) - {"samples", "task", "rss"}:
        p.error(f"unknown tables {sorted(unknown)}")
    load = os.getloadavg()[0]
    rows: list[dict] = []
    if "samples" in only:
        rows += bench_samples(args.repeat)
    if "task" in only:
        rows += bench_task(args.mb, args.repeat)
    if "rss" in only:
        rows += bench_rss()
    print(
        f"## Page guard benchmark\n\n{os.cpu_count()} cores; load average {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after. Limits: nesting {guard.MAX_NESTING}, table rows "
        f"{guard.MAX_TABLE_ROWS}, time guard 30 s of CPU, memory 1 GiB per page.\n"
    )
    print_tables(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
