"""Parse-stage throughput and memory against WikiExtractor and bz2 alone; prints markdown.

Run from the repository root (a few minutes; ``--quick`` for a 10 MB smoke run)::

    .venv/bin/python benchmarks/parse.py            # 100 MB input, and 200 MB for memory
    .venv/bin/python benchmarks/parse.py --mb 300 --no-double
    .venv/bin/python benchmarks/parse.py --only local1,local2   # rerun some rows
    .venv/bin/python benchmarks/parse.py --quick

Input: the real English sample (``../shared/data/wiki/enwiki-…-shortened.bz2``, 206 pages,
6.1 MB of XML) repeated until it holds ``--mb`` MB (10^6 bytes) of XML, each copy with
its page and revision ids shifted so all are unique, written as a Wikimedia multistream
dump: the ``<mediawiki><siteinfo>`` header as its own bz2 stream, then streams of 100
pages, then the ``</mediawiki>`` footer stream, plus the ``…-multistream-index.txt.bz2``
index beside it (``offset:page_id:title``). Built once per size under ``--cache-dir``.

Each configuration runs in its own process, timed from start to exit; the peak memory is
the largest sum of RSS over that process and all its children (JVM, Python workers,
WikiExtractor's workers), sampled every 0.2 s. Forked workers share pages, which the sum
counts once per process, so it is an upper bound. ``CPU s`` is user + system time summed
over the tree (as last sampled), which other work on a shared machine disturbs less than
wall time. Our rows include Python start-up and the JVM start; ``stage s`` is
:func:`pipeline.spark.parse_stage.run_parse` alone (a session already running). Rows:

- ``ours local[N]``: the parse stage with ``spark.master=local[N]`` and
  ``parse.split_bytes`` = compressed size / ``--tasks``, so the dump is read in parallel.
- ``WikiExtractor X``: ``python -m wikiextractor.WikiExtractor --processes 1`` on the same
  file (its reader, one extract process and its output process; it also reads the dump
  once more first, for templates). ``kept`` = documents it wrote.
- ``ours local[N], single-stream bz2``: the same XML compressed as one bz2 stream (no
  index): the stage splits it at bz2 blocks (:mod:`pipeline.wiki.split`).
- ``bz2 only``: Python's ``bz2`` decompressing the whole file in one process.

Each row runs ``--rounds`` times (default 2), the rows interleaved, and the round with the
shortest whole-process time is shown (the same run varies by 10-25% on a shared VM; the
best is the least disturbed); every round's seconds are printed below the targets. The
memory rows (``double``, ``bz2``) run once.

pages/s and MB/s count every ``<page>`` and XML byte of the input. Targets (issue 15;
printed, never asserted): our local[1] pages/s >= 1.0x WikiExtractor's; local[2] >= 1.7x
local[1]; peak RSS of local[1] on the 2x input <= 1.25x that on the 1x input (flat);
single-stream local[2] >= 1.8x local[1]. The machine may be
shared with other work: rerun before trusting a close call. ``--json PATH`` also writes the
rows and the targets as data (:mod:`benchmarks.results`), which ``pipeline bench`` reads.
"""

from __future__ import annotations

import argparse
import bz2
import contextlib
import hashlib
import html
import importlib.metadata
import json
import math
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import Results  # noqa: E402
from pipeline import outputs  # noqa: E402
from pipeline.errors import OutputError  # noqa: E402

SAMPLE = (
    ROOT.parent
    / "shared"
    / "data"
    / "wiki"
    / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
CACHE = CACHE / "spark-gpu-pipeline" / "bench" / "parse"
BUILD_VERSION = 1  # bump when the built file changes
PAGES_PER_STREAM = 100
ID_STEP, REV_STEP = 10**6, 10**9  # per copy; the sample's ids are below both
MB = 10**6
_PAGE = re.compile(r"  <page>\n.*?</page>\n", re.S)


@dataclass
class BenchInput:
    """A built multistream dump and what it holds."""

    dump: Path
    index: Path
    pages: int
    xml_bytes: int
    streams: int


def _compress(chunk: str) -> bytes:
    return bz2.compress(chunk.encode("utf-8"), 9)


def _copy(page: str, k: int) -> tuple[str, int, str]:
    """Page ``page`` of copy ``k``: ids shifted; returns (xml, page id, title)."""

    def shift(step: int):
        return lambda m: f"{m.group(1)}{int(m.group(2)) + k * step}{m.group(3)}"

    page = re.sub(r"(</ns>\s*<id>)(\d+)(</id>)", shift(ID_STEP), page, count=1)
    page = re.sub(r"(<revision>\s*<id>)(\d+)(</id>)", shift(REV_STEP), page)
    page = re.sub(r"(<parentid>)(\d+)(</parentid>)", shift(REV_STEP), page)
    page_id = int(re.search(r"</ns>\s*<id>(\d+)</id>", page).group(1))
    title = html.unescape(re.search(r"<title>(.*?)</title>", page).group(1))
    return page, page_id, title


def build_input(mb: int, cache_dir: Path = CACHE) -> BenchInput:
    """Build (or reuse from ``cache_dir``) the multistream dump of ``mb`` MB of XML."""
    if not SAMPLE.is_file():
        raise SystemExit(f"sample not found: {SAMPLE}; the shared data lives in ../shared")
    text = bz2.decompress(SAMPLE.read_bytes()).decode("utf-8")
    header = text[: text.index("  <page>\n")]
    pages = _PAGE.findall(text)
    footer = text[text.rindex("</page>\n") + len("</page>\n") :]
    copies = math.ceil(mb * MB / sum(len(p.encode()) for p in pages))
    tag = hashlib.sha256(SAMPLE.read_bytes()).hexdigest()[:8] + f"v{BUILD_VERSION}"
    stem = f"enwiki-bench{mb}mb-{tag}-pages-articles"
    dump = cache_dir / f"{stem}-multistream.xml.bz2"
    index = cache_dir / f"{stem}-multistream-index.txt.bz2"
    meta = cache_dir / f"{stem}.json"
    if dump.is_file() and index.is_file() and meta.is_file():
        return BenchInput(dump, index, **json.loads(meta.read_text()))
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"building {dump.name} ({copies} copies of the sample)...", file=sys.stderr)
    started = time.perf_counter()
    lines: list[str] = []
    offset = streams = xml_bytes = 0
    tmp = dump.with_suffix(".tmp")
    order = [(p, k) for k in range(copies) for p in pages]
    groups = [order[i : i + PAGES_PER_STREAM] for i in range(0, len(order), PAGES_PER_STREAM)]
    with open(tmp, "wb") as out, multiprocessing.Pool(os.cpu_count() or 1) as pool:
        # A batch of streams at a time, so memory stays bounded whatever the size.
        for first in range(-1, len(groups) + 1, 64):
            chunks, entries = [], []
            for g in range(first, min(first + 64, len(groups) + 1)):
                if g in (-1, len(groups)):  # the header and the footer streams
                    chunks.append(header if g == -1 else footer)
                    entries.append([])
                    continue
                copied = [_copy(page, k) for page, k in groups[g]]
                chunks.append("".join(c[0] for c in copied))
                entries.append([(pid, title) for _, pid, title in copied])
            for chunk, entry, data in zip(
                chunks, entries, pool.map(_compress, chunks), strict=True
            ):
                lines += [f"{offset}:{pid}:{title}\n" for pid, title in entry]
                out.write(data)
                offset += len(data)
                streams += 1
                xml_bytes += len(chunk.encode("utf-8"))
    index.write_bytes(bz2.compress("".join(lines).encode("utf-8"), 9))
    tmp.rename(dump)
    info = {"pages": len(order), "xml_bytes": xml_bytes, "streams": streams}
    meta.write_text(json.dumps(info))
    print(f"built in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return BenchInput(dump, index, **info)


def build_single(inp: BenchInput) -> BenchInput:
    """The same XML as ``inp`` as one bz2 stream (what Wikimedia publishes beside the
    multistream dump), cached beside it; no index, so parse splits it at bz2 blocks."""
    single = inp.dump.with_name(inp.dump.name.replace("-multistream.xml.bz2", ".xml.bz2"))
    if not single.is_file():
        print(f"building {single.name}...", file=sys.stderr)
        tmp = single.with_suffix(".tmp")
        comp = bz2.BZ2Compressor(9)
        with bz2.open(inp.dump, "rb") as src, open(tmp, "wb") as out:
            while data := src.read(1 << 20):
                out.write(comp.compress(data))
            out.write(comp.flush())
        tmp.rename(single)
    return BenchInput(single, inp.index, inp.pages, inp.xml_bytes, 1)


@dataclass
class Measured:
    """One process tree's wall time, CPU time, peak summed RSS and output."""

    seconds: float
    cpu_seconds: float  # user + system, summed over every process of the tree
    peak_rss: int
    returncode: int
    stdout: str
    stderr: str


def run_measured(argv: list[str], interval: float = 0.2) -> Measured:
    """Run ``argv`` to completion, sampling its process tree every ``interval`` seconds.

    Peak RSS is the largest sum over the tree at one sample. CPU time is each process's
    user + system time when last seen (children are not always waited for by their
    parents, e.g. PySpark's JVM, so ``getrusage`` would miss them); a process's last
    ``interval`` and processes shorter than that are not counted.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = psutil.Popen(argv, stdout=out, stderr=err, cwd=ROOT)
        peak, cpu = 0, {}
        while proc.poll() is None:
            total = 0
            try:
                tree = [proc, *proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                tree = []
            for p in tree:
                with (
                    contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied),
                    p.oneshot(),
                ):
                    total += p.memory_info().rss
                    times = p.cpu_times()
                    cpu[(p.pid, p.create_time())] = times.user + times.system
            peak = max(peak, total)
            time.sleep(interval)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return Measured(seconds, sum(cpu.values()), peak, proc.returncode, out.read(), err.read())


def child_parse(dump: str, out: str, master: str, split_bytes: int) -> None:
    """In a child process: start Spark, then time run_parse alone; print JSON."""
    from pipeline.spark.parse_stage import run_parse
    from pipeline.spark.session import build_spark_session
    from pipeline.stage_config import load_config

    cfg = load_config(
        overrides=[
            f"parse.input={json.dumps([dump])}",
            f"parse.out={out}",
            f"parse.split_bytes={split_bytes}",
            f"spark.master={master}",
            "spark.ui_enabled=false",
            "spark.log_level=ERROR",
        ]
    )
    started = time.perf_counter()
    spark = build_spark_session(cfg.spark)
    ready = time.perf_counter()
    stats = run_parse(cfg, progress=False)
    done = time.perf_counter()
    spark.stop()
    result = {
        "jvm_s": ready - started,
        "stage_s": done - ready,
        "pages": stats["totals"]["pages"],
        "ok": stats["totals"]["status"]["ok"],
        "tasks": stats["tasks"],
    }
    print("BENCH " + json.dumps(result))


def _keep_claim(keep: Path) -> outputs.Claim:
    """What lies at ``--keep-pages``; exits naming it when it is not ours to replace."""
    try:
        return outputs.claim_output("parse", str(keep), overwrite=True)
    except OutputError as e:
        raise SystemExit(f"benchmarks/parse.py: --keep-pages: {e}") from None


def keep_pages(pages: Path, keep: Path) -> None:
    """Copy the pages folder ``pages`` to ``keep``, replacing only a previous parse output's
    own files there (anything else is kept).

    Raises:
        SystemExit: ``keep`` holds something else (named), before anything is copied.
    """
    claim = _keep_claim(keep)
    if claim.previous is not None:
        outputs.remove_owned(outputs.LOCAL, str(keep.resolve()), claim.previous)
    shutil.copytree(pages, keep, dirs_exist_ok=True)


def bench_ours(inp: BenchInput, master: str, tasks: int, keep: Path | None = None) -> dict:
    """Our parse stage on ``inp`` with ``master``, in its own process; the pages it made
    are copied to ``keep`` when given: a new or empty folder, or a previous parse output
    (its own files are replaced, anything else there is kept; :mod:`pipeline.outputs`)."""
    if keep is not None:
        _keep_claim(keep)  # before the run: a folder of someone else's is refused at once
    split = max(1, inp.dump.stat().st_size // tasks)
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as tmp:
        argv = [sys.executable, __file__, "--child", str(inp.dump), f"{tmp}/pages", master]
        m = run_measured([*argv, str(split)])
        if keep is not None and m.returncode == 0:
            keep_pages(Path(tmp) / "pages", keep)
    lines = [x for x in m.stdout.splitlines() if x.startswith("BENCH ")]
    if m.returncode != 0 or not lines:
        raise SystemExit(f"parse with {master} failed ({m.returncode}):\n{m.stderr[-3000:]}")
    r = json.loads(lines[-1][6:])
    return {
        "config": f"ours {master}",
        "pages": r["pages"],
        "kept": r["ok"],
        "tasks": r["tasks"],
        "seconds": m.seconds,
        "stage_s": r["stage_s"],
        "jvm_s": r["jvm_s"],
        "cpu_s": m.cpu_seconds,
        "peak_rss": m.peak_rss,
    }


def bench_wikiextractor(inp: BenchInput) -> dict | None:
    """WikiExtractor 3.x on ``inp`` with one extract process; None if not installed."""
    try:
        version = importlib.metadata.version("wikiextractor")
    except importlib.metadata.PackageNotFoundError:
        print("wikiextractor not installed: its row is left out", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory(prefix="bench-wikiextractor-") as tmp:
        argv = [sys.executable, "-m", "wikiextractor.WikiExtractor", "--processes", "1"]
        m = run_measured([*argv, "-q", "-o", tmp, str(inp.dump)])
        docs = sum(
            f.read_text(encoding="utf-8").count("<doc ")
            for f in Path(tmp).rglob("*")
            if f.is_file()
        )
    if m.returncode != 0:
        raise SystemExit(f"WikiExtractor failed ({m.returncode}):\n{m.stderr[-3000:]}")
    return {
        "config": f"WikiExtractor {version} --processes 1",
        "pages": inp.pages,
        "kept": docs,
        "seconds": m.seconds,
        "cpu_s": m.cpu_seconds,
        "peak_rss": m.peak_rss,
    }


def bench_bz2(inp: BenchInput) -> dict:
    """Decompressing the whole dump with Python's bz2, 1 MiB reads, one process."""
    code = (
        "import bz2,sys\nn=0\nwith bz2.open(sys.argv[1]) as f:\n"
        "    while b := f.read(1 << 20):\n        n += len(b)\nprint(n)"
    )
    m = run_measured([sys.executable, "-c", code, str(inp.dump)])
    if m.returncode != 0 or int(m.stdout.split()[-1]) != inp.xml_bytes:
        raise SystemExit(f"bz2 decompression failed or gave the wrong size: {m.stderr[-2000:]}")
    return {
        "config": "bz2 decompression only",
        "pages": inp.pages,
        "seconds": m.seconds,
        "cpu_s": m.cpu_seconds,
        "peak_rss": m.peak_rss,
    }


def table(rows: list[tuple[BenchInput, dict]]) -> str:
    """Markdown table of the measured rows."""
    out = [
        "| config | input MB | pages | kept | tasks | seconds | stage s | CPU s | pages/s "
        "| pages/s (stage) | MB/s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for inp, r in rows:
        stage = r.get("stage_s")
        out.append(
            f"| {r['config']} | {inp.xml_bytes / MB:.0f} | {r['pages']} | {r.get('kept', '-')} "
            f"| {r.get('tasks', '-')} | {r['seconds']:.1f} "
            f"| {f'{stage:.1f}' if stage else '-'} | {r['cpu_s']:.1f} "
            f"| {inp.pages / r['seconds']:.1f} "
            f"| {f'{inp.pages / stage:.1f}' if stage else '-'} "
            f"| {inp.xml_bytes / MB / r['seconds']:.2f} | {r['peak_rss'] / 2**20:.0f} |"
        )
    return "\n".join(out)


def targets(rows: dict[str, dict], results: Results | None = None) -> str:
    """Markdown table of the targets whose rows were run, pass/fail, on process and stage
    times. ``rows`` maps ``local1``, ``local2``, ``wikiextractor``, ``double`` to rows.
    Each verdict is also recorded in ``results``."""

    def verdict(what: str, value: float, goal: float, higher: bool = True) -> str:
        if results is not None:
            results.target(what, value, goal, higher=higher)
        ok = value >= goal if higher else value <= goal
        return f"{value:.2f} ({'pass' if ok else 'FAIL'})"

    one, two, we, double = (rows.get(k) for k in ("local1", "local2", "wikiextractor", "double"))
    out = [
        "| target | goal | whole process | stage only | per CPU second |",
        "|---|---:|---:|---:|---:|",
    ]
    if one and we:
        ratio = "ours local[1] pages/s ÷ WikiExtractor pages/s"
        out.append(
            "| ours local[1] pages/s ÷ WikiExtractor pages/s | ≥ 1.00 | "
            f"{verdict(f'{ratio} (whole process)', we['seconds'] / one['seconds'], 1.0)} | "
            f"{verdict(f'{ratio} (stage only)', we['seconds'] / one['stage_s'], 1.0)} | "
            f"{verdict(f'{ratio} (per CPU second)', we['cpu_s'] / one['cpu_s'], 1.0)} |"
        )
    if one and two:
        ratio = "local[2] pages/s ÷ local[1] pages/s"
        out.append(
            "| local[2] pages/s ÷ local[1] pages/s | ≥ 1.70 | "
            f"{verdict(f'{ratio} (whole process)', one['seconds'] / two['seconds'], 1.7)} | "
            f"{verdict(f'{ratio} (stage only)', one['stage_s'] / two['stage_s'], 1.7)} | - |"
        )
    one_s, two_s = rows.get("single1"), rows.get("single2")
    if one_s and two_s:
        ratio = "local[2] ÷ local[1] pages/s, single-stream bz2"
        out.append(
            f"| {ratio} | ≥ 1.80 | "
            f"{verdict(f'{ratio} (whole process)', one_s['seconds'] / two_s['seconds'], 1.8)} | "
            f"{verdict(f'{ratio} (stage only)', one_s['stage_s'] / two_s['stage_s'], 1.8)} "
            "| - |"
        )
    if one and double:
        what = "local[1] peak RSS at 2x input ÷ at 1x"
        out.append(
            "| local[1] peak RSS at 2x input ÷ at 1x | ≤ 1.25 | "
            f"{verdict(what, double['peak_rss'] / one['peak_rss'], 1.25, higher=False)} | - | - |"
        )
    if len(out) == 2:
        out.append("| (none: run local1 with local2, wikiextractor or double) | | | | |")
    return "\n".join(out)


CONFIGS = ("local1", "local2", "single1", "single2", "wikiextractor", "bz2", "double")


def main(argv: list[str] | None = None) -> int:
    """Build the input, run the configurations, print the two tables."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mb", type=int, default=100, help="MB of XML to parse (default 100)")
    p.add_argument("--quick", action="store_true", help="smoke run: --mb 10")
    p.add_argument("--no-double", action="store_true", help="skip local[1] on 2x the input")
    p.add_argument(
        "--only", default=",".join(CONFIGS), help=f"rows to run, comma-separated: {CONFIGS}"
    )
    p.add_argument("--tasks", type=int, default=16, help="tasks to split the dump into")
    p.add_argument("--cache-dir", type=Path, default=CACHE, help=f"built inputs ({CACHE})")
    p.add_argument("--keep-pages", type=Path, help="keep the pages of the local[2] run here")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    p.add_argument(
        "--rounds", type=int, default=2, help="rounds of the timed rows, interleaved; best kept"
    )
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child_parse(*args.child[:3], int(args.child[3]))
        return 0
    only = [c for c in args.only.split(",") if c and not (args.no_double and c == "double")]
    if unknown := set(only) - set(CONFIGS):
        p.error(f"unknown rows {sorted(unknown)}; choose from {CONFIGS}")
    mb = 10 if args.quick else args.mb
    inp = build_input(mb, args.cache_dir)
    big = build_input(2 * mb, args.cache_dir) if "double" in only else None
    single = build_single(inp) if {"single1", "single2"} & set(only) else None
    print(
        f"input: {inp.dump} ({inp.dump.stat().st_size / MB:.1f} MB bz2, "
        f"{inp.xml_bytes / MB:.1f} MB XML, {inp.pages} pages, {inp.streams} streams)",
        file=sys.stderr,
    )
    runs = {
        "local1": lambda: bench_ours(inp, "local[1]", args.tasks),
        "local2": lambda: bench_ours(inp, "local[2]", args.tasks, keep),
        "single1": lambda: {**bench_ours(single, "local[1]", args.tasks), "config": s1},
        "single2": lambda: {**bench_ours(single, "local[2]", args.tasks), "config": s2},
        "wikiextractor": lambda: bench_wikiextractor(inp),
        "bz2": lambda: bench_bz2(inp),
        "double": lambda: bench_ours(big, "local[1]", args.tasks),
    }
    s1, s2 = "ours local[1], single-stream bz2", "ours local[2], single-stream bz2"
    load_before = os.getloadavg()[0]
    # Every row runs --rounds times, the rows interleaved so that a slow spell of a shared
    # machine hits them all; the round with the shortest whole-process time is kept (the
    # least disturbed). The memory-only rows run once.
    rounds: dict[str, list[dict]] = {}
    for i in range(max(1, args.rounds)):
        keep = args.keep_pages if i == 0 else None
        for name in only:
            if i and name in ("double", "bz2"):
                continue
            print(f"running {name} (round {i + 1})...", file=sys.stderr)
            if (row := runs[name]()) is not None:
                rounds.setdefault(name, []).append(row)
    rows = {k: min(v, key=lambda r: r["seconds"]) for k, v in rounds.items()}
    load_after = os.getloadavg()[0]
    print(
        f"## Parse benchmark: {inp.xml_bytes / MB:.0f} MB of XML ({inp.pages} pages, "
        f"{inp.streams} bz2 streams, {inp.dump.stat().st_size / MB:.1f} MB compressed)\n"
    )
    print(
        f"{os.cpu_count()} cores; load average {load_before:.2f} before, {load_after:.2f} "
        "after (above the core count = other work competed). seconds = whole process (our "
        "rows: Python + JVM start + stage + stop); stage s = run_parse alone; CPU s = user "
        "+ system time of the process tree (less sensitive to other work than seconds); "
        "peak RSS = sum over the process tree.\n"
    )
    used = {"double": big, "single1": single, "single2": single}
    print(table([(used.get(k) or inp, r) for k, r in rows.items()]) + "\n")
    results = Results("parse")
    print(targets(rows, results))
    per_round = "; ".join(
        f"{k} " + " / ".join(f"{r['seconds']:.1f}" for r in v) for k, v in rounds.items()
    )
    print(f"\nbest of {max(1, args.rounds)} interleaved rounds; seconds of each: {per_round}")
    if args.json:
        results.table(
            "runs",
            [
                {
                    **r,
                    "input_mb": (big if k == "double" else inp).xml_bytes / MB,
                    "pages_per_s": (big if k == "double" else inp).pages / r["seconds"],
                    "peak_rss_mib": r["peak_rss"] / 2**20,
                }
                for k, r in rows.items()
            ],
        )
        results.notes.append(f"load average {load_before:.2f} before, {load_after:.2f} after")
        results.notes.append(f"best of {max(1, args.rounds)} rounds; seconds: {per_round}")
        results.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
