"""Real article text for the curate tests and benchmark: cleaned pages of a shared sample,
and edited copies (words replaced by words of another real page) with known edits."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.contracts.pages import PAGES_SCHEMA, STATS_FILE, PagesStats, read_pages_dir
from pipeline.wiki.clean import clean_wikitext
from tests.support.samples import read_sample

EN = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def real_articles(path: Path, n: int, min_chars: int = 1500) -> list[tuple[int, str, str]]:
    """The first ``n`` namespace-0, non-redirect pages of the dump at ``path`` whose
    cleaned text has at least ``min_chars`` characters: ``(page_id, title, text)``."""
    _, pages = read_sample(path)
    out = []
    for p in pages:
        if p.ns != 0 or p.redirect_to or not p.text:
            continue
        text = clean_wikitext(p.text, title=p.title).text
        if len(text) >= min_chars:
            out.append((int(p.page_id or 0), p.title or "", text))
        if len(out) == n:
            break
    return out


def edit_words(text: str, fraction: float, donor: str, seed: int) -> str:
    """``text`` with ``fraction`` of its words (whitespace tokens, chosen at random with
    ``seed``) replaced by random words of ``donor``; line structure kept."""
    rng = random.Random(seed)
    lines = [ln.split(" ") for ln in text.split("\n")]
    slots = [(i, j) for i, ln in enumerate(lines) for j, w in enumerate(ln) if w]
    words = [w for w in donor.split() if w]
    for i, j in rng.sample(slots, round(fraction * len(slots))):
        lines[i][j] = rng.choice(words)
    return "\n".join(" ".join(ln) for ln in lines)


def reorder_paragraphs(text: str, seed: int) -> str:
    """``text`` with its paragraphs (blank-line separated) shuffled."""
    paras = text.split("\n\n")
    random.Random(seed).shuffle(paras)
    return "\n\n".join(paras)


def add_boilerplate(text: str, boilerplate: str) -> str:
    """``text`` with ``boilerplate`` prepended and appended (as a mirror site adds)."""
    return f"{boilerplate}\n\n{text}\n\n{boilerplate}"


EDITS = (0.01, 0.03, 0.05, 0.1, 0.3)
"""Fractions of words replaced in the edited copies of :func:`with_copies`."""
COPIES = 40
"""Identical copies of one page in :func:`with_copies`: one exact group, collapsed before LSH."""


def with_copies(parsed: Path, folder: Path) -> Path:
    """A pages folder at ``folder``: the parts of the pages folder ``parsed`` plus one part,
    ``part-09999.parquet``, of copies of its English ``ok`` articles over 3,000 characters
    (``page_id >= 10**9``): articles 0-4 with :data:`EDITS` of their words replaced,
    article 6 with paragraphs reordered, 7 with boilerplate added, 8 upper-cased (exact
    after case folding) and :data:`COPIES` identical copies of article 9. ``_stats.json``
    counts the added rows, so the folder reads as a complete pages folder."""
    table = read_pages_dir(str(parsed))
    rows = [r for f in table.files for r in pq.read_table(f).to_pylist()]
    ok = [r for r in rows if r["status"] == "ok" and r["source"].endswith(EN)]
    ok = [r for r in ok if len(r["text"]) > 3000]
    extra, pid = [], 10**9
    donor = ok[-1]["text"]
    for i, fraction in enumerate(EDITS):
        extra.append(
            {**ok[i], "page_id": pid, "text": edit_words(ok[i]["text"], fraction, donor, i)}
        )
        pid += 1
    extra.append({**ok[6], "page_id": pid, "text": reorder_paragraphs(ok[6]["text"], 1)})
    extra.append(
        {
            **ok[7],
            "page_id": pid + 1,
            "text": add_boilerplate(ok[7]["text"], "Mirror of Wikipedia."),
        }
    )
    extra.append(
        {**ok[8], "page_id": pid + 2, "text": ok[8]["text"].upper()}
    )  # exact after case folding
    extra += [{**ok[9], "page_id": pid + 3 + k} for k in range(COPIES)]
    folder.mkdir()
    names = []
    for f in table.files:
        name = f.rsplit("/", 1)[-1]
        (folder / name).write_bytes(Path(f).read_bytes())
        names.append(name)
    pq.write_table(pa.Table.from_pylist(extra, PAGES_SCHEMA), folder / "part-09999.parquet")
    names.append("part-09999.parquet")
    t = table.stats.totals
    totals = replace(t, rows=t.rows + len(extra), pages=t.pages + len(extra))
    stats = replace(table.stats, files=tuple(names), totals=totals)
    (folder / STATS_FILE).write_bytes(stats.to_json())
    (folder / "_SUCCESS").write_bytes(b"")
    PagesStats.from_json((folder / STATS_FILE).read_bytes(), "check")
    return folder
