"""Compare our cleaned text with WikiExtractor's on the same dump, page by page.

Run from the repository root (prints markdown; needs the ``dev`` extra's wikiextractor)::

    .venv/bin/python benchmarks/compare_wikiextractor.py \\
        ../shared/data/wiki/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2

Our side is the parse stage's own per-page code (:func:`pipeline.wiki.pages.page_row`, no
Spark); WikiExtractor runs as ``python -m wikiextractor.WikiExtractor --processes 1
--json``. Pages are matched by page id. A page is *kept* by us when its status is ``ok``,
by WikiExtractor when it wrote a document with some text. For the pages both kept,
**word overlap** is the Jaccard index of the two multisets of lower-cased words
(``sum(min counts) / sum(max counts)``; 1.0 = the same words, order ignored).

Why they differ: the words one side has and the other lacks are traced back to the
page's wikitext, split into constructs (list items, tables, templates, refs, file links,
headings, other HTML tags, prose lines). A line that is mostly missing on the other side
goes whole to the construct it came from; scattered words are shared out over the
constructs they occur in, by how often; a word that is not in the wikitext at all is
``not in wikitext`` (entities, words split or joined differently).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import mwparserfromhell
from mwparserfromhell import nodes

from pipeline.wiki import pages, sources
from pipeline.wiki.clean import CleanOptions
from pipeline.wiki.xmlpages import PageReader

ENGLISH_SAMPLE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_WORD = re.compile(r"\w+")
_LIST_MARKERS = "*#:;"
_FILE_PREFIXES = ("file:", "image:", "media:")
_OTHER = "prose"
_MISSING = "not in wikitext"


def words(text: str) -> Counter:
    """Multiset of the lower-cased ``\\w+`` words of ``text``."""
    return Counter(_WORD.findall(text.lower()))


def overlap(a: Counter, b: Counter) -> float:
    """Jaccard index of two word multisets (1.0 when both are empty)."""
    union = sum((a | b).values())
    return sum((a & b).values()) / union if union else 1.0


@dataclass
class PageDiff:
    """One page id as each side saw it."""

    page_id: int
    title: str
    status: str  # our status (pages contract)
    ours: str  # our text ("" unless status is ok)
    theirs: str | None  # WikiExtractor's text, None when it wrote no document
    only_ours: dict[str, float] = field(default_factory=dict)  # construct -> words
    only_theirs: dict[str, float] = field(default_factory=dict)

    @property
    def kept_ours(self) -> bool:
        return self.status == "ok"

    @property
    def kept_theirs(self) -> bool:
        return bool(self.theirs and self.theirs.strip())

    @property
    def overlap(self) -> float:
        return overlap(words(self.ours), words(self.theirs or ""))

    def why(self) -> str:
        """One line: the main constructs behind the difference, in words."""
        parts = []
        for who, diff in (("we keep", self.only_ours), ("WikiExtractor keeps", self.only_theirs)):
            total = sum(diff.values())
            if total >= 1:
                top = sorted(diff.items(), key=lambda kv: -kv[1])[:2]
                parts.append(
                    f"{who} {total:.0f} more words ("
                    + ", ".join(f"{k} {v / total:.0%}" for k, v in top)
                    + ")"
                )
        return "; ".join(parts) or "same words"


def _kind(node: nodes.Node) -> str | None:
    """The construct a top-level node is, or None for running text (prose or list)."""
    if isinstance(node, nodes.Template):
        return "template"
    if isinstance(node, nodes.Heading):
        return "heading"
    if isinstance(node, nodes.Comment):
        return "comment"
    if isinstance(node, nodes.Tag):
        tag = str(node.tag).lower()
        if tag in ("ref", "table"):
            return tag
        return None if node.wiki_markup else "html tag"  # list markers run on
    if isinstance(node, nodes.Wikilink):
        target = str(node.title).strip().lstrip(":").lower()
        return "file link" if target.startswith(_FILE_PREFIXES) else None
    return None


def segments(wikitext: str) -> list[tuple[str, Counter]]:
    """Split ``wikitext`` into ``(construct, words)``: each template, ref, table, file link,
    heading, comment or other HTML tag whole, and each line of the remaining running text
    as ``list item`` (the line starts with one of ``*#:;``) or ``prose``."""
    out: list[tuple[str, Counter]] = []
    line: Counter = Counter()
    line_start = ""  # the first characters of running text on the current line
    for node in mwparserfromhell.parse(wikitext, skip_style_tags=True).nodes:
        kind = _kind(node)
        if kind is not None:
            out.append((kind, words(str(node))))
            continue
        first, *rest = str(node).split("\n")
        line_start = line_start or first.lstrip(" ")
        line.update(words(first))
        for text in rest:  # a new line starts: flush the one before
            out.append(("list item" if line_start[:1] in _LIST_MARKERS else _OTHER, line))
            line, line_start = words(text), text.lstrip(" ")
    out.append(("list item" if line_start[:1] in _LIST_MARKERS else _OTHER, line))
    return [(k, c) for k, c in out if c]


def _bigrams(text: str) -> set[tuple[str, str]]:
    ws = _WORD.findall(text.lower())
    return set(zip(ws, ws[1:], strict=False))


def attribute(text: str, other: str, where: list[tuple[str, Counter]]) -> dict[str, float]:
    """Trace the words ``text`` has more often than ``other`` to constructs of the wikitext.

    A line of ``text`` whose word pairs are mostly absent from ``other`` goes whole to the
    segment of ``where`` it overlaps most; the remaining extra words are shared out over
    the constructs they occur in, in proportion to how often.
    """
    out: dict[str, float] = defaultdict(float)
    left = words(text) - words(other)
    theirs = _bigrams(other)
    for line in text.split("\n"):
        pairs = _bigrams(line)
        if len(pairs) < 2 or len(pairs & theirs) * 2 > len(pairs):
            continue
        have = words(line) & left
        best = max(where, key=lambda seg: sum((seg[1] & have).values()), default=None)
        if best is not None and best[1] & have:
            out[best[0]] += sum(have.values())
            left -= have
    for word, n in left.items():
        seen: Counter = Counter()
        for k, c in where:
            seen[k] += c[word]
        total = sum(seen.values())
        if not total:
            out[_MISSING] += n
            continue
        for k, c in seen.items():
            if c:
                out[k] += n * c / total
    return dict(out)


def read_ours(dump: Path) -> tuple[dict[int, pages.Page], dict[int, dict]]:
    """Every page of ``dump`` and its pages-table row, as the parse stage makes them."""
    task = {"source": str(dump), "name": dump.name, "kind": "whole", "start": 0, "end": None}
    reader, raw, rows = PageReader(str(dump)), {}, {}
    opts, clean, wiki = pages.ParseOptions(), None, ""
    with sources.open_task(task) as (stream, _):
        while True:
            data = stream.read(pages.CHUNK)
            for page in reader.feed(data) if data else reader.close():
                if clean is None:  # <siteinfo> has been read by now
                    clean = CleanOptions.for_namespaces(reader.siteinfo.namespaces)
                    wiki = pages.wiki_name(reader.siteinfo, str(dump))
                raw[page.page_id] = page
                rows[page.page_id] = pages.page_row(page, wiki, dump.name, opts, clean)
            if not data:
                return raw, rows


def run_wikiextractor(dump: Path, out_dir: Path) -> dict[int, dict]:
    """Run WikiExtractor on ``dump`` into ``out_dir``; ``{page id: its JSON document}``.

    Raises:
        RuntimeError: wikiextractor is not installed, or it failed (with its stderr).
    """
    if importlib.util.find_spec("wikiextractor") is None:
        raise RuntimeError(
            "wikiextractor is not installed; .venv/bin/pip install -c "
            "requirements/constraints.txt wikiextractor (it is in the dev extra)"
        )
    argv = [sys.executable, "-m", "wikiextractor.WikiExtractor", "--processes", "1"]
    argv += ["--json", "-q", "-o", str(out_dir), str(dump)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"WikiExtractor failed ({proc.returncode}): {proc.stderr[-2000:]}")
    docs: dict[int, dict] = {}
    for f in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                doc = json.loads(line)
                docs[int(doc["id"])] = doc
    return docs


def compare(dump: Path, work_dir: Path | None = None) -> list[PageDiff]:
    """Parse ``dump`` with both tools and return one :class:`PageDiff` per page id."""
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        docs = run_wikiextractor(dump, Path(tmp) / "wikiextractor")
    raw, rows = read_ours(dump)
    diffs = []
    for pid in sorted(set(rows) | set(docs)):
        row, doc = rows.get(pid), docs.get(pid)
        d = PageDiff(
            page_id=pid,
            title=row["title"] if row else doc["title"],
            status=row["status"] if row else "missing",
            ours=(row["text"] or "") if row else "",
            theirs=doc["text"] if doc else None,
        )
        if (d.kept_ours or d.kept_theirs) and pid in raw:
            where = segments(raw[pid].text or "")
            d.only_ours = attribute(d.ours, d.theirs or "", where)
            d.only_theirs = attribute(d.theirs or "", d.ours, where)
        diffs.append(d)
    return diffs


def summary(diffs: list[PageDiff]) -> dict:
    """Overall numbers: pages kept by each side and both, overlap, characters, causes."""
    both = [d for d in diffs if d.kept_ours and d.kept_theirs]
    causes: dict[str, dict[str, float]] = {"we keep": Counter(), "WikiExtractor keeps": Counter()}
    for d in diffs:
        causes["we keep"].update(d.only_ours)
        causes["WikiExtractor keeps"].update(d.only_theirs)
    scores = [d.overlap for d in both]
    return {
        "pages": len(diffs),
        "kept_ours": sum(d.kept_ours for d in diffs),
        "kept_theirs": sum(d.kept_theirs for d in diffs),
        "docs_theirs": sum(d.theirs is not None for d in diffs),
        "kept_both": len(both),
        "only_ours": [d.page_id for d in diffs if d.kept_ours and not d.kept_theirs],
        "only_theirs": [d.page_id for d in diffs if d.kept_theirs and not d.kept_ours],
        "median_overlap": statistics.median(scores) if scores else None,
        "mean_overlap": statistics.fmean(scores) if scores else None,
        "chars_ours": sum(len(d.ours) for d in both),
        "chars_theirs": sum(len(d.theirs or "") for d in both),
        "words_ours": sum(sum(words(d.ours).values()) for d in both),
        "words_theirs": sum(sum(words(d.theirs or "").values()) for d in both),
        "causes": {k: dict(sorted(v.items(), key=lambda kv: -kv[1])) for k, v in causes.items()},
    }


def report(diffs: list[PageDiff], top: int = 15) -> str:
    """Markdown: overall summary, causes, the biggest differences, then every page."""
    s = summary(diffs)
    try:
        version = importlib.metadata.version("wikiextractor")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    lines = [
        f"## Ours vs WikiExtractor {version}",
        "",
        f"- pages in the dump: {s['pages']}; kept by us (status ok): {s['kept_ours']}; "
        f"documents written by WikiExtractor: {s['docs_theirs']}, with text: "
        f"{s['kept_theirs']}; kept by both: {s['kept_both']}",
        f"- kept only by us: {s['only_ours'] or '-'}; only by WikiExtractor: "
        f"{s['only_theirs'] or '-'}",
        f"- word overlap over pages kept by both: median {s['median_overlap'] or 0:.3f}, "
        f"mean {s['mean_overlap'] or 0:.3f}",
        f"- characters kept (pages kept by both): ours {s['chars_ours']:,}, WikiExtractor "
        f"{s['chars_theirs']:,}; words: ours {s['words_ours']:,}, WikiExtractor "
        f"{s['words_theirs']:,}",
    ]
    for who, causes in s["causes"].items():
        total = sum(causes.values())
        top_causes = ", ".join(f"{k} {v:,.0f} ({v / total:.0%})" for k, v in causes.items())
        lines.append(f"- words {who} that the other does not, by construct: {top_causes or '-'}")
    kept = [d for d in diffs if d.kept_ours or d.kept_theirs]
    lines += ["", f"### The {top} biggest differences", ""]
    lines += ["| page id | title | overlap | chars ours | chars WikiExtractor | why |"]
    lines += ["|---|---|---|---|---|---|"]
    for d in sorted(kept, key=lambda d: d.overlap)[:top]:
        lines.append(
            f"| {d.page_id} | {d.title} | {d.overlap:.3f} | {len(d.ours)} | "
            f"{len(d.theirs or '')} | {d.why()} |"
        )
    lines += ["", "### Every page kept by either", ""]
    lines += [
        "| page id | title | our status | kept by WikiExtractor | overlap | chars ours |"
        " chars WikiExtractor |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in kept:
        lines.append(
            f"| {d.page_id} | {d.title} | {d.status} | {'yes' if d.kept_theirs else 'no'} | "
            f"{d.overlap:.3f} | {len(d.ours)} | {len(d.theirs or '')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: compare one dump (default: the real English sample) and print."""
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "wiki"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dump", nargs="?", default=str(default / ENGLISH_SAMPLE))
    parser.add_argument("--top", type=int, default=15, help="biggest differences to list")
    args = parser.parse_args(argv)
    dump = Path(args.dump)
    if not dump.is_file():
        parser.error(f"dump not found: {dump}")
    try:
        diffs = compare(dump)
    except RuntimeError as e:
        print(f"compare_wikiextractor: {e}", file=sys.stderr)
        return 1
    print(report(diffs, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
