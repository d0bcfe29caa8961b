"""Curate benchmark: per-step documents/s per core, the stage against parse, near-duplicate
precision and recall on real articles with known edits, and language-ID accuracy on the
shared multilingual samples. Prints markdown tables; asserts nothing.

Usage (from the repository root; a few minutes on 2 cores)::

    .venv/bin/python benchmarks/curate.py [--dump DUMP] [--work DIR]

1. Steps, one process, one core: the ``ok`` pages of ``--dump`` (default: the shared
   English sample; ``benchmarks/parse.py --keep`` builds the 100 MB one) through each
   per-document function of :mod:`pipeline.curate` (exact hash, language ID, quality
   rules, shingles + MinHash + bands) and Jaccard on pairs.
2. Stage: ``run_parse`` and then ``run_curate`` on that dump under ``local[1]`` in one
   Spark session (started before the clock), documents/s per core for both. Target:
   curate >= 0.5x parse.
3. Near duplicates: 60 real English articles, each with copies that have 5%, 10%, 20% or
   30% of their words replaced by words of another article, the paragraphs reordered, or
   a boilerplate header and footer added, mixed with the other articles of the sample;
   written as a pages table and curated at the default config (``local[1]``). Recall per
   edit kind = copies marked near_duplicate of their original; precision = flagged
   documents whose ``dup_of`` is their own original; also the true Jaccard of each edit
   kind for shingles of 1, 2, 3 and 5 words. Copies that a quality rule removes first are
   left out of recall. Targets: recall >= 0.95, precision >= 0.99.
4. Language ID: every namespace-0 page of >= 200 characters of the dbpedia minidumps (the
   file name is the label) and of the German, Greek and English samples. Target >= 0.97.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / ".." / "shared" / "data" / "wiki"
EN = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
KINDS = ("edit 5%", "edit 10%", "edit 20%", "edit 30%", "reordered", "boilerplate")
BOILERPLATE = (
    "This article is mirrored from Wikipedia, the free encyclopedia. Text is available "
    "under the Creative Commons Attribution-ShareAlike License. Home | About | Contact"
)


def table(header: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def steps(texts: list[str]) -> str:
    from pipeline.curate import lang
    from pipeline.curate import text as T
    from pipeline.curate.config import QualityConfig
    from pipeline.curate.quality import quality_failure

    q = QualityConfig()
    lang.detect("warm up")
    found = [lang.detect(t) for t in texts]
    sh = [T.shingles(t, 2) for t in texts]
    fns = {
        "normalise + exact hash": lambda: [T.exact_hash(t) for t in texts],
        "language ID": lambda: [lang.detect(t) for t in texts],
        "quality rules": lambda: [
            quality_failure(t, c, q) for t, (c, _) in zip(texts, found, strict=True)
        ],
        "shingles + MinHash + bands": lambda: [
            T.band_hashes(T.minhash(T.shingles(t, 2), 100), 20, 5) for t in texts
        ],
        "Jaccard of a pair": lambda: [
            T.jaccard(a, b) for a, b in zip(sh, sh[1:] + sh[:1], strict=True)
        ],
    }
    rows = []
    mb = sum(len(t.encode()) for t in texts) / 1e6
    for name, fn in fns.items():
        started = time.perf_counter()
        fn()
        s = time.perf_counter() - started
        rows.append([name, len(texts), f"{s:.2f}", f"{len(texts) / s:,.0f}", f"{mb / s:.2f}"])
    return table(["step (1 core)", "docs", "s", "docs/s", "MB/s"], rows)


def stage(dump: Path, work: Path) -> tuple[str, list[str]]:
    import pyarrow.parquet as pq

    from pipeline.spark.curate_stage import run_curate
    from pipeline.spark.parse_stage import run_parse
    from pipeline.spark.session import build_spark_session
    from pipeline.stage_config import load_config

    cfg = load_config(
        overrides=[
            f"parse.input=[{dump}]",
            f"parse.out={work / 'pages'}",
            "parse.overwrite=true",
            f"curate.out={work / 'curated'}",
            f"curate.pages={work / 'pages'}",
            "curate.overwrite=true",
            "spark.master=local[1]",
            "spark.ui_enabled=false",
            "spark.shuffle_partitions=4",
        ]
    )
    build_spark_session(cfg.spark)
    p = run_parse(cfg, progress=False)
    c = run_curate(cfg, progress=False)
    pages, ok = p["totals"]["pages"], p["totals"]["status"]["ok"]
    rows = [
        ["parse (local[1])", pages, f"{p['seconds']:.1f}", f"{pages / p['seconds']:.1f}", "-"],
        [
            "curate (local[1])",
            pages,
            f"{c['seconds']:.1f}",
            f"{pages / c['seconds']:.1f}",
            ", ".join(f"{k} {v:.1f}s" for k, v in c["phases"].items()),
        ],
    ]
    ratio = (pages / c["seconds"]) / (pages / p["seconds"])
    page_rows = pq.read_table(work / "pages", columns=["text", "status"]).to_pylist()
    texts = [r["text"] for r in page_rows if r["status"] == "ok"]
    note = f"curate/parse pages per second per core: {ratio:.2f} (target >= 0.5); {ok} ok pages"
    return table(["stage", "pages", "s", "pages/s/core", "phases"], rows) + "\n\n" + note, texts


def near_dups(work: Path) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.contracts.pages import PAGES_SCHEMA, STATS_FILE, read_pages_dir
    from pipeline.curate import text as T
    from pipeline.spark.curate_stage import run_curate
    from pipeline.stage_config import load_config
    from tests.support.curate_data import add_boilerplate, edit_words, reorder_paragraphs

    source = read_pages_dir(str(work / "pages"))
    rows = [r for f in source.files for r in pq.read_table(f).to_pylist()]
    ok = [r for r in rows if r["status"] == "ok"]
    originals = [r for r in ok if len(r["text"]) >= 1500][:60]
    copies, truth, every, pid = [], {}, {}, 10**9
    jac: dict[tuple[str, int], list[float]] = {}
    for i, r in enumerate(originals):
        donor = originals[(i + 1) % len(originals)]["text"]
        variants = [edit_words(r["text"], f, donor, i) for f in (0.05, 0.1, 0.2, 0.3)]
        variants += [reorder_paragraphs(r["text"], i), add_boilerplate(r["text"], BOILERPLATE)]
        for kind, text in zip(KINDS, variants, strict=True):
            copies.append({**r, "page_id": pid, "text": text})
            every[pid] = truth[pid] = (kind, r["page_id"])
            for n in (1, 2, 3, 5):
                j = T.jaccard(T.shingles(text, n), T.shingles(r["text"], n))
                jac.setdefault((kind, n), []).append(j)
            pid += 1
    folder = work / "near"
    folder.mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows + copies, PAGES_SCHEMA), folder / "part-00000.parquet")
    t = source.stats.totals
    n = len(rows) + len(copies)
    stats = replace(source.stats, files=("part-00000.parquet",), totals=replace(t, rows=n, pages=n))
    (folder / STATS_FILE).write_bytes(stats.to_json())
    (folder / "_SUCCESS").write_bytes(b"")
    cfg = load_config(
        overrides=[
            f"curate.pages={folder}",
            f"curate.out={work / 'near-curated'}",
            "curate.overwrite=true",
            "spark.master=local[1]",
            "spark.ui_enabled=false",
            "spark.shuffle_partitions=4",
        ]
    )
    run_curate(cfg, progress=False)
    out = pq.read_table(work / "near-curated").to_pylist()
    flagged = [r for r in out if r["curate_status"] == "near_duplicate"]
    correct = sum(
        1
        for r in flagged
        if r["page_id"] in truth and r["dup_of"] == f"enwiki:{truth[r['page_id']][1]}"
    )
    found = {r["page_id"] for r in flagged}
    # copies removed by a quality or language rule first never reach near dedup
    other = {r["page_id"] for r in out if r["curate_status"] in ("quality", "language")}
    truth = {p: t for p, t in truth.items() if p not in other}
    result = []
    for kind in KINDS:
        ids = [p for p, (k, _) in truth.items() if k == kind]
        result.append(
            [kind, len(ids), f"{sum(p in found for p in ids) / len(ids):.3f}"]
            + [f"{statistics.median(jac[(kind, n)]):.2f}" for n in (1, 2, 3, 5)]
        )
    above = []
    for kind in KINDS:
        ids = [p for p, (k, _) in every.items() if k == kind]
        above += [p for p, j in zip(ids, jac[(kind, 2)], strict=True) if j >= 0.8 and p in truth]
    lsh_recall = sum(p in found for p in above) / max(1, len(above))
    precision = correct / max(1, len(flagged))
    all_recall = len(found & set(truth)) / len(truth)
    head = ["copies", "n (not removed by quality)", "recall", "J median n=1", "n=2", "n=3", "n=5"]
    return (
        table(head, result)
        + f"\n\nprecision {precision:.3f} ({correct}/{len(flagged)} flagged point at their own "
        f"original; target >= 0.99); recall over all copies {all_recall:.3f} (target >= 0.95); "
        f"recall over copies whose real Jaccard (n=2) >= 0.8: {lsh_recall:.3f} "
        f"({len(above)} copies)"
    )


def languages() -> str:
    from pipeline.curate import lang
    from pipeline.wiki.clean import clean_wikitext
    from tests.support.samples import read_sample

    supported = lang.supported_languages()
    files = sorted((DATA / "dbpedia-minidumps").glob("*.xml.bz2"))
    labelled = [(f, lang.wiki_language(f.name.split(".")[0] + "wiki")) for f in files]
    labelled += [
        (DATA / "dewiki-20170701-sample.xml", "de"),
        (DATA / "elwikivoyage-sample-pages-articles.xml.bz2", "el"),
        (DATA / EN, "en"),
    ]
    unsupported = 0
    counts: dict[str, list[int]] = {"minidumps": [0, 0], "samples": [0, 0]}
    wrong: list[str] = []
    for path, label in labelled:
        if label is None:
            continue
        if label not in supported:
            unsupported += 1
            continue
        group = counts["minidumps" if path.parent.name == "dbpedia-minidumps" else "samples"]
        _, pages = read_sample(path)
        for p in pages:
            if p.ns != 0 or p.redirect_to or not p.text:
                continue
            text = clean_wikitext(p.text, title=p.title).text
            if len(text) < 200:
                continue
            got, _ = lang.detect(text)
            group[0] += 1
            group[1] += got == label
            if got != label:
                wrong.append(f"{path.name.split('.')[0].split('-')[0]}->{got}")
    total = sum(c[0] for c in counts.values())
    right = sum(c[1] for c in counts.values())
    parts = ", ".join(f"{k} {c[1]}/{c[0]}" for k, c in counts.items())
    return (
        f"language ID: {right}/{total} = {right / max(1, total):.3f} correct on pages >= 200 "
        f"chars (target >= 0.97; {parts}); {unsupported} minidump languages the model lacks "
        f"were left out; wrong: {', '.join(wrong[:30]) or '-'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", type=Path, default=DATA / EN)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="curate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# curate benchmark ({args.dump.name}, work {work})\n")
    print(languages() + "\n")
    stage_table, texts = stage(args.dump, work)
    print(steps(texts) + "\n")
    print(stage_table + "\n")
    print(near_dups(work))


if __name__ == "__main__":
    main()
