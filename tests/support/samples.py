"""The shared samples: expected per-file ``<page>`` counts from ``SOURCES.md``, and
reading every page of one sample file through the project's own opener."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.wiki.sources import open_task
from pipeline.wiki.xmlpages import Page, PageReader


def expected_page_counts(wiki_data: Path) -> dict[str, int | None]:
    """``{relative path: <page> count}`` from the SOURCES.md table; None where the table
    gives no plain count (the index file, the truncated file)."""
    counts: dict[str, int | None] = {}
    for line in (wiki_data / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split(" | ")]
        if len(cells) < 6 or not cells[0].startswith("| `"):
            continue
        name = cells[0][3:].strip("`")
        m = re.fullmatch(r"(\d+)", cells[5])
        counts[name] = int(m.group(1)) if m else None
    return counts


def read_sample(path: Path, chunk: int = 1 << 16) -> tuple[PageReader, list[Page]]:
    """Read every page of one sample file through the project's own opener."""
    task = {"source": str(path), "name": path.name, "kind": "whole", "start": 0, "end": None}
    reader, pages = PageReader(str(path)), []
    with open_task(task) as (stream, _):
        while data := stream.read(chunk):
            pages += reader.feed(data)
    pages += reader.close()
    return reader, pages


def wikitext_pages(wiki_data: Path, articles_only: bool = False) -> Iterator[tuple[str, Page, Any]]:
    """``(file name, page, CleanOptions)`` for every page with wikitext in every readable
    sample under ``wiki_data`` (the truncated file and the indexes left out); with
    ``articles_only``, only namespace 0 pages that are not redirects."""
    from pipeline.wiki.clean import CleanOptions

    for path in sorted(wiki_data.rglob("*")):
        if path.suffix not in (".bz2", ".gz", ".xml") or "index" in path.name:
            continue
        if "TRUNCATED" in path.name:
            continue
        reader, pages = read_sample(path)
        opts = CleanOptions.for_namespaces(reader.siteinfo.namespaces)
        for p in pages:
            if not p.text or p.content_model not in (None, "wikitext"):
                continue
            if articles_only and (p.ns != 0 or p.redirect_to):
                continue
            yield path.name, p, opts
