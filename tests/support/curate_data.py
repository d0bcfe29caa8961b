"""Real article text for the curate tests and benchmark: cleaned pages of a shared sample,
and edited copies (words replaced by words of another real page) with known edits."""

from __future__ import annotations

import random
from pathlib import Path

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
