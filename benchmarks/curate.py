"""Curate benchmark: per-step documents/s per core, the stage against parse, near-duplicate
precision and recall on real articles with known edits, and language-ID accuracy on the
shared multilingual samples. Prints markdown tables; asserts nothing.

Usage (from the repository root; a few minutes on 2 cores)::

    .venv/bin/python benchmarks/curate.py [--dump DUMP | --mb MB] [--work DIR] [--json PATH]

``--mb 100`` uses (and builds if missing) the 100 MB bench dump of ``benchmarks/parse.py``
(what ``pipeline bench`` runs; ``--mb 10`` with ``--quick``). ``--json PATH`` also writes
the tables and targets as data (:mod:`benchmarks.results`).

1. Steps, one process, one core: the ``ok`` pages of the dump (default: the shared
   English sample) through each per-document function of :mod:`pipeline.curate`, as the
   stage calls them (the text normalised once for the exact hash and the words), and
   Jaccard on pairs.
2. Stage: ``run_parse`` and then ``run_curate`` on that dump under ``local[1]`` in one
   Spark session (started before the clock), pages/s per core for both. Target:
   curate >= 0.5x parse pages/s. Per-job Spark costs dominate small inputs, so the ratio
   grows with the input: measure on the 100 MB dump (``--mb 100``).
3. Near duplicates: 60 real English articles (one per exact-duplicate group), each with
   copies that have 5%, 10%, 20% or 30% of their words replaced by words of another
   article, the paragraphs reordered, or a boilerplate header and footer added, mixed
   with the other pages of the dump; written as a pages table and curated by the stage
   at the default threshold (``local[1]``); the stage's decisions are replayed in-process
   (:func:`_replay`, checked to give the stage's own output at the default) at the other
   thresholds of :data:`THRESHOLDS`. Per edit kind
   and threshold: recall = copies marked near_duplicate; precision = of those, the share
   whose ``dup_of`` is their own original. Overall precision counts every near_duplicate
   row (originals and unrelated pages too). "LSH recall" is the recall over the copies
   whose real Jaccard (stage shingles) to their original is at least the threshold: what
   the banding must find; recall over all copies also depends on how far an edit moves
   the real Jaccard (the last table: the median per edit kind for 1, 2, 3, 5-word
   shingles). Copies that a quality rule removes first are left out. Targets at the
   default threshold: precision >= 0.99 and LSH recall >= 0.95. The issue's recall goal
   over all copies (0.95) is printed as a note: 10-30% word edits bring the real Jaccard
   well below 0.8, so no threshold with precision kept reaches it for them.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import Results  # noqa: E402

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


def steps(texts: list[str], res: Results) -> str:
    from pipeline.curate import lang
    from pipeline.curate import text as T
    from pipeline.curate.config import QualityConfig
    from pipeline.curate.quality import quality_failure

    q = QualityConfig()
    lang.detect("warm up")
    found = [lang.detect(t) for t in texts]
    norms = [T.normalise(t) for t in texts]
    sh = [T.shingles_of(T.words_of(n), 2) for n in norms]
    fns = {
        "normalise + exact hash": lambda: [T.exact_hash_of(T.normalise(t)) for t in texts],
        "language ID": lambda: [lang.detect(t) for t in texts],
        "quality rules": lambda: [
            quality_failure(t, c, q) for t, (c, _) in zip(texts, found, strict=True)
        ],
        "words + shingles + MinHash + bands": lambda: [
            T.band_hashes(T.minhash(T.shingles_of(T.words_of(n), 2), 100), 20, 5) for n in norms
        ],
        "Jaccard of a pair": lambda: [
            T.jaccard(a, b) for a, b in zip(sh, sh[1:] + sh[:1], strict=True)
        ],
    }
    rows, data = [], []
    mb = sum(len(t.encode()) for t in texts) / 1e6
    for name, fn in fns.items():
        started = time.perf_counter()
        fn()
        s = time.perf_counter() - started
        rows.append([name, len(texts), f"{s:.2f}", f"{len(texts) / s:,.0f}", f"{mb / s:.2f}"])
        data.append({"step": name, "docs": len(texts), "docs_per_s": round(len(texts) / s, 1)})
    res.table("steps (1 core)", data)
    return table(["step (1 core)", "docs", "s", "docs/s", "MB/s"], rows)


def stage(dump: Path, work: Path, res: Results) -> tuple[str, list[str]]:
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
        [
            "parse (local[1])",
            pages,
            f"{p['seconds']:.1f}",
            f"{pages / p['seconds']:.1f}",
            "-",
        ],
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
    res.table(
        "stage (local[1])",
        [
            {"stage": "parse", "pages": pages, "wall_s": p["seconds"]},
            {
                "stage": "curate",
                "pages": pages,
                "wall_s": c["seconds"],
                **{f"{k}_s": v for k, v in c["phases"].items()},
            },
        ],
    )
    res.target("curate ÷ parse pages/s per core (local[1])", round(ratio, 3), 0.5)
    return table(["stage", "pages", "s", "pages/s/core", "phases"], rows) + "\n\n" + note, texts


THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _near_run(folder: Path, out: Path, threshold: float) -> list[dict[str, Any]]:
    """Curate the near-duplicate set at ``threshold`` (default config otherwise)."""
    import pyarrow.parquet as pq

    from pipeline.spark.curate_stage import run_curate
    from pipeline.stage_config import load_config

    cfg = load_config(
        overrides=[
            f"curate.pages={folder}",
            f"curate.out={out}",
            "curate.overwrite=true",
            f"curate.near_dup_threshold={threshold}",
            "spark.master=local[1]",
            "spark.ui_enabled=false",
            "spark.shuffle_partitions=4",
        ]
    )
    run_curate(cfg, progress=False)
    return pq.read_table(out, columns=["page_id", "curate_status", "dup_of"]).to_pylist()


def _replay(rows: list[dict[str, Any]], thresholds: tuple[float, ...]) -> dict[float, list]:
    """The stage's decisions (:mod:`pipeline.spark.curate_stage` steps 2-4) replayed in
    this process at each threshold, so one annotation pass serves every threshold:
    annotate each ``ok`` row, keep the smallest ``(wiki, page_id, row)`` of each exact
    group, pair every kept document with the smallest of each LSH bucket it is in,
    keep the pairs whose real Jaccard is >= the threshold, and label each connected
    component by its smallest node. Returns, per threshold, rows like the stage's output
    (``page_id``, ``curate_status``, ``dup_of``); the benchmark checks the replay against
    the real stage at the default threshold."""
    from pipeline.curate import text as T
    from pipeline.curate.annotate import CurateOptions, annotate
    from pipeline.curate.config import CurateConfig

    opts = CurateOptions.from_config(CurateConfig())
    nodes, ann = [], []
    for i, r in enumerate(rows):
        if r["status"] == "ok" and r["text"] is not None:
            nodes.append((r["wiki"], r["page_id"], i))
            ann.append(annotate(r["text"], r["wiki"], opts))
    rep: dict[str, tuple] = {}
    for n, a in zip(nodes, ann, strict=True):
        if a["pre_status"] is None and (a["norm_hash"] not in rep or n < rep[a["norm_hash"]]):
            rep[a["norm_hash"]] = n
    kept = [
        (n, a)
        for n, a in zip(nodes, ann, strict=True)
        if a["pre_status"] is None and rep[a["norm_hash"]] == n
    ]
    buckets: dict[tuple[int, int], tuple] = {}
    for n, a in kept:
        for band, h in enumerate(a["bands"]):
            if (band, h) not in buckets or n < buckets[(band, h)]:
                buckets[(band, h)] = n
    pairs = {
        (n, buckets[(band, h)])
        for n, a in kept
        for band, h in enumerate(a["bands"])
        if buckets[(band, h)] != n
    }
    shingles = {n: T.shingles(rows[n[2]]["text"], opts.shingle_words) for n, _ in kept}
    jac = {p: T.jaccard(shingles[p[0]], shingles[p[1]]) for p in pairs}
    out = {}
    for t in thresholds:
        parent = {n: n for n, _ in kept}

        def find(x: tuple, parent: dict = parent) -> tuple:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for (a, b), j in jac.items():
            if j >= t:
                ra, rb = find(a), find(b)
                parent[max(ra, rb)] = min(ra, rb)  # the root stays the smallest node
        result = []
        for n, a in zip(nodes, ann, strict=True):
            root = find(n) if n in parent else n
            if a["pre_status"] is not None:
                st = a["pre_status"]
            elif rep[a["norm_hash"]] != n:
                st = "duplicate"
            else:
                st = "ok" if root == n else "near_duplicate"
            dup_of = f"{root[0]}:{root[1]}" if st == "near_duplicate" else None
            result.append({"page_id": n[1], "curate_status": st, "dup_of": dup_of})
        out[t] = result
    return out


def near_dups(work: Path, res: Results) -> str:
    """Build the near-duplicate set, curate it at each of :data:`THRESHOLDS`, and tabulate
    recall and precision per edit kind and threshold (see the module docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.contracts.pages import PAGES_SCHEMA, STATS_FILE, read_pages_dir
    from pipeline.curate import text as T
    from pipeline.curate.config import CurateConfig
    from tests.support.curate_data import add_boilerplate, edit_words, reorder_paragraphs

    default = CurateConfig().near_dup_threshold
    n_words = CurateConfig().shingle_words
    source = read_pages_dir(str(work / "pages"))
    rows = [r for f in source.files for r in pq.read_table(f).to_pylist()]
    ok = [r for r in rows if r["status"] == "ok"]
    # one of each exact group: the bench dump repeats its sample, and copies of a
    # repeated original would have several equally right answers
    seen: set[str] = set()
    unique = []
    for r in ok:
        if (h := T.exact_hash(r["text"])) not in seen:
            seen.add(h)
            unique.append(r)
    originals = [r for r in unique if len(r["text"]) >= 1500][:60]
    copies, truth, pid = [], {}, 10**9
    jac: dict[tuple[str, int], list[float]] = {}
    true_j: dict[int, float] = {}  # copy -> real Jaccard to its original (stage shingles)
    for i, r in enumerate(originals):
        donor = originals[(i + 1) % len(originals)]["text"]
        variants = [edit_words(r["text"], f, donor, i) for f in (0.05, 0.1, 0.2, 0.3)]
        variants += [reorder_paragraphs(r["text"], i), add_boilerplate(r["text"], BOILERPLATE)]
        for kind, text in zip(KINDS, variants, strict=True):
            copies.append({**r, "page_id": pid, "text": text})
            truth[pid] = (kind, r["page_id"])
            for n in (1, 2, 3, 5):
                j = T.jaccard(T.shingles(text, n), T.shingles(r["text"], n))
                jac.setdefault((kind, n), []).append(j)
                if n == n_words:
                    true_j[pid] = j
            pid += 1
    folder = work / "near"
    folder.mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows + copies, PAGES_SCHEMA), folder / "part-00000.parquet")
    t = source.stats.totals
    n = len(rows) + len(copies)
    stats = replace(source.stats, files=("part-00000.parquet",), totals=replace(t, rows=n, pages=n))
    (folder / STATS_FILE).write_bytes(stats.to_json())
    (folder / "_SUCCESS").write_bytes(b"")

    head = ["threshold", *KINDS, "precision", "recall (all copies)", "copies J >= t", "LSH recall"]
    out_rows, data = [], []
    staged = _near_run(folder, work / "near-curated", default)
    replayed = _replay(rows + copies, THRESHOLDS)
    mine = {r["page_id"]: (r["curate_status"], r["dup_of"]) for r in replayed[default]}
    theirs = {
        r["page_id"]: (
            r["curate_status"],
            r["dup_of"] if r["curate_status"] == "near_duplicate" else None,
        )
        for r in staged
        if r["page_id"] in mine
    }
    agree = mine == theirs
    res.notes.append(f"near-duplicate replay equals the stage at {default:g}: {agree}")
    for threshold in THRESHOLDS:
        out = staged if threshold == default else replayed[threshold]
        # copies removed by a quality or language rule first never reach near dedup
        other = {r["page_id"] for r in out if r["curate_status"] in ("quality", "language")}
        live = {p: k for p, k in truth.items() if p not in other}
        flagged = [r for r in out if r["curate_status"] == "near_duplicate"]
        found = {r["page_id"] for r in flagged}
        right = {
            r["page_id"]
            for r in flagged
            if r["page_id"] in live and r["dup_of"] == f"enwiki:{live[r['page_id']][1]}"
        }
        cells, row = [], {"threshold": threshold}
        for kind in KINDS:
            ids = [p for p, (k, _) in live.items() if k == kind]
            got = [p for p in ids if p in found]
            recall = len(got) / max(1, len(ids))
            prec = sum(p in right for p in got) / max(1, len(got))
            cells.append(f"{recall:.2f} / {prec:.2f}")
            row[f"recall {kind}"], row[f"precision {kind}"] = round(recall, 4), round(prec, 4)
        precision = len(right) / max(1, len(flagged))
        recall = len(found & set(live)) / max(1, len(live))
        above = [p for p in live if true_j[p] >= threshold]
        lsh = sum(p in right for p in above) / max(1, len(above))
        cells += [
            f"{precision:.3f} ({len(right)}/{len(flagged)})",
            f"{recall:.3f}",
            len(above),
            f"{lsh:.3f}",
        ]
        out_rows.append([f"{threshold:g}" + (" (default)" if threshold == default else ""), *cells])
        row.update(precision=round(precision, 4), recall=round(recall, 4), lsh_recall=round(lsh, 4))
        data.append(row)
        if threshold == default:
            res.target(
                f"near-duplicate precision at the default threshold {default:g}", precision, 0.99
            )
            res.target(
                f"near-duplicate recall of copies with real Jaccard >= {default:g} (LSH)", lsh, 0.95
            )
            res.notes.append(
                f"near-duplicate recall over all edited copies at {default:g}: {recall:.3f} "
                "(issue goal 0.95; unreachable for 10-30% word edits, whose real Jaccard is "
                "below the threshold: see the Jaccard table)"
            )
    res.table("near duplicates per threshold", data)
    jrows = [
        [kind, len(jac[(kind, 2)])]
        + [f"{statistics.median(jac[(kind, n)]):.2f}" for n in (1, 2, 3, 5)]
        for kind in KINDS
    ]
    res.table(
        "real Jaccard of copies (median)",
        [
            {
                "copies": kind,
                **{f"n={n}": round(statistics.median(jac[(kind, n)]), 4) for n in (1, 2, 3, 5)},
            }
            for kind in KINDS
        ],
    )
    return (
        "Near duplicates: each cell is recall / precision of that edit kind (copies marked "
        "near_duplicate; of those, the share whose dup_of is their own original). precision: "
        "all near_duplicate rows, originals and unrelated pages included; LSH recall: of the "
        f"copies whose real Jaccard (word {n_words}-grams) to their original is >= the "
        "threshold, the share found (what MinHash banding must reach). The default row is "
        "the stage's output; the others replay its decisions in this process (_replay), which "
        f"gives the stage's own output at the default: {agree}.\n\n"
        + table(head, out_rows)
        + "\n\nReal Jaccard of each copy to its original, median, by shingle words n:\n\n"
        + table(["copies", "n", "J n=1", "n=2", "n=3", "n=5"], jrows)
    )


def languages(res: Results) -> str:
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
    res.table(
        "language ID",
        [{"pages": c[0], "correct": c[1], "set": k} for k, c in counts.items()],
    )
    res.target("language-ID accuracy, pages >= 200 chars", right / max(1, total), 0.97)
    parts = ", ".join(f"{k} {c[1]}/{c[0]}" for k, c in counts.items())
    return (
        f"language ID: {right}/{total} = {right / max(1, total):.3f} correct on pages >= 200 "
        f"chars (target >= 0.97; {parts}); {unsupported} minidump languages the model lacks "
        f"were left out; wrong: {', '.join(wrong[:30]) or '-'}"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--dump", type=Path, default=DATA / EN, help="dump to parse and curate")
    src.add_argument(
        "--mb", type=int, help="use benchmarks/parse.py's MB-sized bench dump (built if missing)"
    )
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    args = ap.parse_args(argv)
    dump = args.dump
    if args.mb is not None:
        from benchmarks.parse import build_input

        dump = build_input(args.mb).dump
    work = args.work or Path(tempfile.mkdtemp(prefix="curate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    res = Results("curate")
    print(f"# curate benchmark ({dump.name}, work {work})\n")
    print(languages(res) + "\n")
    stage_table, texts = stage(dump, work, res)
    print(steps(texts, res) + "\n")
    print(stage_table + "\n")
    print(near_dups(work, res) + "\n")
    print("Targets:\n\n" + "\n".join(f"- {t.line()}" for t in res.targets))
    if args.json:
        res.write(args.json)


if __name__ == "__main__":
    main()
