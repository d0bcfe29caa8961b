"""Scale run: parse and featurise at 1 GB and 2 GB of XML, memory flatness, and a
projection for the full English Wikipedia; prints markdown, asserts nothing.

Run from the repository root (about an hour at the default sizes on 2 cores; the machine
should be otherwise idle)::

    .venv/bin/python benchmarks/scale.py                      # 1000 and 2000 MB of XML
    .venv/bin/python benchmarks/scale.py --mb 20 40 --master 'local[2]'   # a small check

Input: ``benchmarks/parse.py``'s built dump (the real English sample repeated, page and
revision ids renumbered per copy), as a multistream dump with its index, or with
``--single`` as one bz2 stream (split at bz2 blocks). For each size it runs, each in its
own process, ``run_parse`` then ``pipeline featurise`` (the tokenizer trained on the
first size's pages, then given, so every size does the same work per page) and records
wall time, stage time and the peak RSS summed over the process tree (driver, JVM, Python
workers, cleaning children), sampled every 0.2 s.

Projection (printed with its assumptions): time for the full English Wikipedia,
``--target-gb`` (105) GB of XML and ``--target-articles`` (7 M) articles, on 8, 64 and 512
cores, from the per-core rates measured at the largest size:
``hours = XML bytes / (per-core XML bytes/s x cores)`` for parse, and ``tokens / (per-core
tokens/s x cores)`` for featurise, with tokens = measured tokens per XML byte x target
bytes. Assumed: throughput scales linearly with cores (a 105 GB dump at the default
``parse.split_bytes`` of 32 MiB compressed is ~1,000 tasks, enough for 512 cores);
storage and network deliver every core's input (~1 MB/s of compressed dump per core);
the page mix (redirects, sizes) of the sample is the real dump's; JVM start and commit
are not counted (minutes, paid once).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import featurise as fbench  # noqa: E402
from benchmarks import parse as pbench  # noqa: E402
from benchmarks.results import Results  # noqa: E402

MB = 10**6


def cores_of(master: str) -> int:
    """Cores of a ``local[N]`` master (``local[*]``: this machine's)."""
    inner = master.partition("[")[2].rstrip("]") or "1"
    return (os.cpu_count() or 1) if inner == "*" else int(inner)


def run_size(
    mb: int, master: str, cache: Path, work: Path, single: bool, tokenizer: Path | None
) -> dict:
    """Parse then featurise ``mb`` MB of XML; the row of this size."""
    inp = pbench.build_input(mb, cache)
    if single:
        inp = pbench.build_single(inp)
    pages = work / f"pages-{mb}"
    tasks = max(cores_of(master) * 4, inp.dump.stat().st_size // (32 << 20))
    parse = pbench.bench_ours(inp, master, tasks, keep=pages)
    extra = [f"featurise.tokenizer={tokenizer}"] if tokenizer else []
    feat = fbench.featurise(pages, work / f"shards-{mb}", master, *extra)
    return {"mb": mb, "input": inp, "parse": parse, "featurise": feat}


def projection(row: dict, cores: int, target_bytes: float, target_articles: float) -> str:
    """Markdown table of projected hours for the target corpus on 8, 64 and 512 cores."""
    inp, parse, feat = row["input"], row["parse"], row["featurise"]
    parse_rate = inp.xml_bytes / parse["stage_s"] / cores  # XML bytes/s per core
    tokens_per_byte = feat["tokens"] / inp.xml_bytes
    feat_rate = feat["tokens"] / feat["stage"] / cores  # tokens/s per core
    out = [
        f"per core: parse {parse_rate / MB:.2f} MB of XML/s "
        f"({inp.pages / parse['stage_s'] / cores:,.0f} pages/s), featurise "
        f"{feat_rate:,.0f} tokens/s; {tokens_per_byte:.3f} tokens per XML byte; "
        f"target {target_bytes / 1e9:.0f} GB of XML, {target_articles / 1e6:.0f} M articles, "
        f"about {tokens_per_byte * target_bytes / 1e9:.1f} G tokens\n",
        "| cores | parse hours | featurise hours | total hours |",
        "|---:|---:|---:|---:|",
    ]
    for n in (8, 64, 512):
        p = target_bytes / (parse_rate * n) / 3600
        f = tokens_per_byte * target_bytes / (feat_rate * n) / 3600
        out.append(f"| {n} | {p:.2f} | {f:.2f} | {p + f:.2f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run the sizes, print the table, the memory ratio and the projection."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, nargs="+", default=[1000, 2000], help="MB of XML")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--single", action="store_true", help="single-stream bz2 input")
    ap.add_argument("--cache-dir", type=Path, default=pbench.CACHE)
    ap.add_argument("--target-gb", type=float, default=105.0)
    ap.add_argument("--target-articles", type=float, default=7e6)
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    cores = cores_of(args.master)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        tokenizer = None
        for mb in sorted(args.mb):
            print(f"running {mb} MB...", file=sys.stderr)
            rows.append(run_size(mb, args.master, args.cache_dir, work, args.single, tokenizer))
            if tokenizer is None:
                tokenizer = work / "tokenizer.json"
                tokenizer.write_bytes((work / f"shards-{mb}" / "tokenizer.json").read_bytes())
    kind = "single-stream bz2" if args.single else "multistream bz2 + index"
    print(f"## Scale run: {args.master} ({cores} cores), {kind}, load {os.getloadavg()[0]:.2f}\n")
    print(
        "| XML MB | pages | parse s (stage) | parse MB/s/core | parse peak RSS MiB "
        "| featurise s (stage) | tokens | tokens/s/core | featurise peak RSS MiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    table = []
    for r in rows:
        inp, p, f = r["input"], r["parse"], r["featurise"]
        line = {
            "xml_mb": inp.xml_bytes / MB,
            "pages": inp.pages,
            "parse_stage_s": p["stage_s"],
            "parse_mb_s_core": inp.xml_bytes / MB / p["stage_s"] / cores,
            "parse_peak_rss_mib": p["peak_rss"] / 2**20,
            "featurise_stage_s": f["stage"],
            "tokens": f["tokens"],
            "tokens_s_core": f["tokens"] / f["stage"] / cores,
            "featurise_peak_rss_mib": f["peak"] / 2**20,
        }
        table.append(line)
        print(
            f"| {line['xml_mb']:.0f} | {inp.pages} | {p['stage_s']:.1f} "
            f"| {line['parse_mb_s_core']:.2f} | {line['parse_peak_rss_mib']:,.0f} "
            f"| {f['stage']:.1f} | {f['tokens']:,} | {line['tokens_s_core']:,.0f} "
            f"| {line['featurise_peak_rss_mib']:,.0f} |"
        )
    results = Results("scale")
    results.table("sizes", table)
    if len(rows) > 1:
        small, big = rows[0], rows[-1]
        for stage, key in (("parse", "peak_rss"), ("featurise", "peak")):
            ratio = big[stage][key] / small[stage][key]
            t = results.target(
                f"{stage} peak RSS at {big['mb']} MB ÷ at {small['mb']} MB",
                ratio,
                1.25,
                higher=False,
            )
            print(t.line())
    print("\n" + projection(rows[-1], cores, args.target_gb * 1e9, args.target_articles))
    print(
        "\nAssumptions: linear scaling with cores; storage/network keep every core fed; the "
        "sample's page mix is the real dump's; JVM start and commit not counted."
    )
    if args.json:
        results.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
