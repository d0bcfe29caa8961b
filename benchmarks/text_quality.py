"""Text quality of the cleaner on the shared samples (issue 14); prints markdown tables.

Run from the repository root::

    .venv/bin/python benchmarks/text_quality.py            # default sample set
    .venv/bin/python benchmarks/text_quality.py --files dewiki-20170701-sample.xml

Per sample file, on its namespace-0 articles (no redirects):

* **residue /10k chars**: leftover-markup hits per 10,000 characters of text, ours and
  WikiExtractor's (``python -m wikiextractor.WikiExtractor``, driven as in
  ``compare_wikiextractor.py``). The patterns are ``LEFTOVERS`` of
  ``tests/unit/test_clean.py`` plus leaked template-parameter lines (``|name = …``) and
  opened ``<ref`` tags.
* **WE 4-gram recall**: share of WikiExtractor's word 4-grams (multiset) found in ours;
  **chars ratio**: our characters / WikiExtractor's.
* With a template-expanding reference, the npm package ``wtf_wikipedia``
  (``wtf(wikitext).text()``, run by ``node``; install it with ``mkdir -p benchmarks/.wtf &&
  npm install --prefix benchmarks/.wtf wtf_wikipedia``, the folder is git-ignored):
  **numbers kept** (its numeric
  tokens that the wikitext holds, thousands separators removed, found in ours) and
  **ref 4-gram recall** (its word 4-grams found in ours). Shown as ``n/a`` without node
  or the package.
* **templates rendered / dropped**: totals of :class:`pipeline.wiki.clean.CleanResult`'s
  counts, and the most dropped names over all files.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from compare_wikiextractor import run_wikiextractor

from pipeline.wiki.clean import CleanOptions, clean_wikitext
from pipeline.wiki.sources import open_task
from pipeline.wiki.xmlpages import Page, PageReader

WIKI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "wiki"
WTF_DIR = Path(__file__).resolve().parent / ".wtf"  # git-ignored; see the docstring
DEFAULT_FILES = [
    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "dbpedia-minidumps/en.xml.bz2",
    "enwiki-10k.xml.bz2",
    "enwiki-wikapidia-en_test.xml",
    "simplewiki-camchenry.xml.bz2",
    "dewiki-20170701-sample.xml",
    "elwikivoyage-pages-articles.xml-p2566p2583.bz2",
    *(f"dbpedia-minidumps/{x}.xml.bz2" for x in "de fr es it nl pl pt ru sv zh ar el".split()),
]
LEFTOVERS = [
    "{{", "}}", "[[", "]]", "<ref", "{|", "|}", "'''", "<!--", "&amp;", "&nbsp;", "__TOC__",
    "__NOTOC__", "thumb|", "</", "<br",
]  # fmt: skip
_PARAM_LINE = re.compile(r"^\s*\|\s*[^\W\d][\w \-]{0,40}=", re.MULTILINE)
_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_LIST_NUMBER = re.compile(r"^[ *]*\d+\) ", re.MULTILINE)
_WTF_SCRIPT = """
const wtf = require('wtf_wikipedia');
const rl = require('readline').createInterface({input: process.stdin});
rl.on('line', (line) => {
  const d = JSON.parse(line);
  let text = '';
  try { text = wtf(d.wikitext).text(); } catch (e) { text = ''; }
  process.stdout.write(JSON.stringify({id: d.id, text: text}) + '\\n');
});
"""


def read_pages(path: Path) -> tuple[PageReader, list[Page]]:
    """Every page of one sample file, through the project's own opener."""
    task = {"source": str(path), "name": path.name, "kind": "whole", "start": 0, "end": None}
    reader, pages = PageReader(str(path)), []
    with open_task(task) as (stream, _):
        while data := stream.read(1 << 16):
            pages += reader.feed(data)
    return reader, pages + reader.close()


def residue(text: str) -> int:
    """Leftover-markup hits in ``text`` (see the module docstring)."""
    return sum(text.count(m) for m in LEFTOVERS) + len(_PARAM_LINE.findall(text))


def grams(text: str, n: int = 4) -> Counter:
    """Multiset of the lower-cased word ``n``-grams of ``text``."""
    w = _WORD.findall(text.lower())
    return Counter(tuple(w[i : i + n]) for i in range(len(w) - n + 1))


def numbers(text: str) -> Counter:
    """Multiset of the numeric tokens of ``text``, thousands separators removed."""
    return Counter(m.replace(",", "").rstrip(".") for m in _NUMBER.findall(text))


def article_numbers(ref: str, wikitext: str) -> Counter:
    """:func:`numbers` of the reference text that the article itself holds: without the
    numbering wtf_wikipedia gives ordered list items (``1)``) and without numbers whose
    digits are nowhere in the wikitext (made by the reference: list numbering, inflation
    to the current year)."""
    digits = wikitext.replace(",", "")
    found = numbers(_LIST_NUMBER.sub("", ref))
    return Counter({n: c for n, c in found.items() if n in digits})


def recall(ref: Counter, ours: Counter) -> tuple[int, int]:
    """(found, total) of the multiset ``ref`` in ``ours``."""
    return sum((ref & ours).values()), sum(ref.values())


def run_wtf(pages: dict[int, str]) -> dict[int, str] | None:
    """``wtf(wikitext).text()`` of each page, or None without node or wtf_wikipedia."""
    node = shutil.which("node")
    if node is None or not (WTF_DIR / "node_modules" / "wtf_wikipedia").is_dir():
        return None
    lines = "".join(json.dumps({"id": k, "wikitext": v}) + "\n" for k, v in pages.items())
    proc = subprocess.run(
        [node, "-e", _WTF_SCRIPT], input=lines, capture_output=True, text=True,
        cwd=WTF_DIR, timeout=1800, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"wtf_wikipedia failed: {proc.stderr[-2000:]}")
    return {d["id"]: d["text"] for d in map(json.loads, proc.stdout.splitlines())}


def measure(name: str, dropped: Counter) -> dict:
    """The row of one sample file (``dropped`` gathers the dropped template names)."""
    path = WIKI / name
    reader, pages = read_pages(path)
    opts = CleanOptions.for_namespaces(reader.siteinfo.namespaces)
    arts = {
        p.page_id: p
        for p in pages
        if p.ns == 0 and p.text and not p.redirect_to and p.content_model in (None, "wikitext")
    }
    ours, rendered, dropped_here = {}, 0, 0
    for pid, p in arts.items():
        res = clean_wikitext(p.text or "", opts, title=p.title)
        ours[pid] = res.text
        rendered += sum(res.templates_rendered.values())
        dropped_here += sum(res.templates_dropped.values())
        dropped.update(res.templates_dropped)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            theirs = {k: d["text"] for k, d in run_wikiextractor(path, Path(tmp) / "we").items()}
        except RuntimeError:
            theirs = {}
    ref = run_wtf({k: p.text or "" for k, p in arts.items()})
    both = [k for k in ours if k in theirs]
    our_chars = sum(len(ours[k]) for k in ours)
    we_chars = sum(len(theirs[k]) for k in both)
    row = {
        "file": name.rsplit("/", 1)[-1] if "dbpedia" not in name else name.split("/")[-1],
        "pages": len(arts),
        "ours /10k": 1e4 * sum(residue(t) for t in ours.values()) / max(our_chars, 1),
        "WE /10k": 1e4 * sum(residue(theirs[k]) for k in both) / max(we_chars, 1) if both else None,
        "WE 4g recall": _ratio(
            [recall(grams(theirs[k]), grams(ours[k])) for k in both]
        ),  # fmt: skip
        "chars ratio": sum(len(ours[k]) for k in both) / we_chars if we_chars else None,
        "numbers kept": None,
        "ref 4g recall": None,
        "rendered": rendered,
        "dropped": dropped_here,
    }
    if ref is not None:
        row["numbers kept"] = _ratio(
            [recall(article_numbers(ref[k], arts[k].text or ""), numbers(ours[k])) for k in ours]
        )
        row["ref 4g recall"] = _ratio([recall(grams(ref[k]), grams(ours[k])) for k in ours])
    return row


def _ratio(pairs: list[tuple[int, int]]) -> float | None:
    total = sum(t for _, t in pairs)
    return sum(f for f, _ in pairs) / total if total else None


def _cell(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}" if v < 10 else f"{v:.1f}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", nargs="+", default=DEFAULT_FILES, help="sample files, relative")
    ap.add_argument("--top", type=int, default=20, help="most dropped template names shown")
    args = ap.parse_args(argv)
    dropped: Counter = Counter()
    rows = [measure(f, dropped) for f in args.files]
    reference = "wtf_wikipedia (node)" if rows and rows[0]["numbers kept"] is not None else "n/a"
    print(f"## Text quality (template-expanding reference: {reference})\n")
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(_cell(r[c]) for c in cols) + " |")
    print(f"\n## Most dropped templates (all files, top {args.top})\n")
    print("| template | dropped |\n|---|---|")
    for name, n in dropped.most_common(args.top):
        print(f"| {name.replace('|', '/')} | {n} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
