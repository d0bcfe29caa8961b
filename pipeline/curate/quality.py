"""Document quality rules: Gopher quality and repetition filters, C4 page filters.

:func:`quality_failure` returns the first rule a document fails as ``"rule: detail"``
(the ``curate_reason``; the rule name before the colon is what the stats count), or None.
Thresholds and their sources are in :class:`pipeline.curate.config.QualityConfig`:
Gopher is Rae et al. 2021 (arXiv:2112.11446, appendix A.1.1 and table A1), C4 is Raffel
et al. 2020 (JMLR 21(140), section 2.2).

Words are whitespace-separated tokens as in Gopher; lines split on newlines, paragraphs
on blank lines; empty lines are not counted.
"""

from __future__ import annotations

import re
import zlib

import numpy as np

from pipeline.curate.config import QualityConfig

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
"""Gopher's stop words: an English document needs at least two of them."""
BULLETS = ("•", "-", "*", "‣", "●", "◦", "–")
ELLIPSES = ("...", "…")
TERMINAL = (".", "!", "?", '"', "”", "'")
_PARAGRAPH = re.compile(r"\n\s*\n")
RULES = (
    "words",
    "mean_word_length",
    "symbol_word_ratio",
    "ellipsis_lines",
    "bullet_lines",
    "stop_words",
    "terminal_punct",
    "lorem_ipsum",
    "curly_brace",
    "dup_lines",
    "dup_paragraphs",
    "dup_line_chars",
    "dup_paragraph_chars",
    "top_ngram",
    "dup_ngram",
)
"""Rule names, in the order they are checked."""


def _dup_fractions(parts: list[str]) -> tuple[float, float]:
    """(fraction of items repeating an earlier item, their characters over all
    characters) — Gopher's duplicate line/paragraph measures."""
    if not parts:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_n = dup_chars = 0
    for p in parts:
        if p in seen:
            dup_n += 1
            dup_chars += len(p)
        seen.add(p)
    total = sum(len(p) for p in parts)
    return dup_n / len(parts), dup_chars / max(1, total)


def _ngram_hashes(wh: np.ndarray, n: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = np.zeros(len(wh) - n + 1, dtype=np.uint64)
        for j in range(n):
            h = h * np.uint64(1_000_003) + wh[j : len(wh) - n + 1 + j]
    return h


def _runs(sorted_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and length of each run of equal values in a sorted array."""
    starts = np.flatnonzero(np.concatenate(([True], sorted_h[1:] != sorted_h[:-1])))
    return starts, np.diff(np.append(starts, len(sorted_h)))


def top_ngram_char_fraction(lens: np.ndarray, wh: np.ndarray, n: int) -> float:
    """Characters of the most frequent word ``n``-gram's occurrences over all word
    characters (Gopher table A1, "fraction of characters in most common n-gram").

    ``lens`` are the words' lengths and ``wh`` their 32-bit hashes (n-grams are compared
    by a 64-bit polynomial hash of the word hashes). Among equally frequent n-grams the
    one of the smallest hash counts, measured at its first occurrence.
    """
    if len(wh) < n:
        return 0.0
    h = _ngram_hashes(wh, n)
    s = np.sort(h)
    starts, counts = _runs(s)
    top = int(np.argmax(counts))
    if counts[top] < 2:
        return 0.0
    start = int(np.argmax(h == s[starts[top]]))
    return float(counts[top] * lens[start : start + n].sum() / max(1, lens.sum()))


def _dup_starts(h: np.ndarray) -> np.ndarray:
    """Positions whose value occurs more than once in ``h``, ascending."""
    order = np.argsort(h)
    s = h[order]
    eq = s[1:] == s[:-1]
    dup = np.zeros(len(h), dtype=bool)
    dup[1:] = eq
    dup[:-1] |= eq
    out = np.zeros(len(h), dtype=bool)
    out[order] = dup
    return np.flatnonzero(out)


def dup_ngram_char_fraction(toks: list[str], lens: np.ndarray, wh: np.ndarray, n: int) -> float:
    """Characters of words covered by a word ``n``-gram that occurs more than once, over
    all word characters, each word counted once (Gopher table A1, "fraction of
    characters in duplicate n-grams")."""
    if len(toks) < n:
        return 0.0
    starts = _dup_starts(_ngram_hashes(wh, n))
    if len(starts) == 0:
        return 0.0
    covered = np.zeros(len(toks) + 1, dtype=np.int32)
    covered[starts] += 1  # starts are distinct, and so are starts + n
    covered[starts + n] -= 1
    mask = np.cumsum(covered[:-1]) > 0
    return float(lens[mask].sum() / max(1, lens.sum()))


def quality_failure(text: str, lang: str | None, q: QualityConfig) -> str | None:
    """The first quality rule ``text`` fails, as ``"rule: detail"``, or None if it passes.

    ``lang`` is the detected language; the stop-word rule applies to English only.
    """
    if not q.enabled:
        return None
    toks = text.split()
    n = len(toks)
    if q.min_words is not None and n < q.min_words:
        return f"words: {n} < {q.min_words}"
    if q.max_words is not None and n > q.max_words:
        return f"words: {n} > {q.max_words}"
    lens = np.fromiter(map(len, toks), np.int64, n)
    if n:
        mean = float(lens.mean())
        if q.min_mean_word_length is not None and mean < q.min_mean_word_length:
            return f"mean_word_length: {mean:.2f} < {q.min_mean_word_length}"
        if q.max_mean_word_length is not None and mean > q.max_mean_word_length:
            return f"mean_word_length: {mean:.2f} > {q.max_mean_word_length}"
        symbols = text.count("#") + text.count("...") + text.count("…")
        if q.max_symbol_word_ratio is not None and symbols / n > q.max_symbol_word_ratio:
            return f"symbol_word_ratio: {symbols / n:.3f} > {q.max_symbol_word_ratio}"
    lines = [ln for ln in map(str.strip, text.split("\n")) if ln]
    if lines:
        frac = sum(ln.endswith(ELLIPSES) for ln in lines) / len(lines)
        if q.max_ellipsis_line_fraction is not None and frac > q.max_ellipsis_line_fraction:
            return f"ellipsis_lines: {frac:.3f} > {q.max_ellipsis_line_fraction}"
        frac = sum(ln.startswith(BULLETS) for ln in lines) / len(lines)
        if q.max_bullet_line_fraction is not None and frac > q.max_bullet_line_fraction:
            return f"bullet_lines: {frac:.3f} > {q.max_bullet_line_fraction}"
    if q.min_stop_words is not None and lang == "en":
        found = len(STOP_WORDS.intersection(map(str.lower, toks)))
        if found < q.min_stop_words:
            return f"stop_words: {found} < {q.min_stop_words}"
    if q.max_no_terminal_punct_line_fraction is not None and lines:
        frac = sum(not ln.endswith(TERMINAL) for ln in lines) / len(lines)
        if frac > q.max_no_terminal_punct_line_fraction:
            return f"terminal_punct: {frac:.3f} > {q.max_no_terminal_punct_line_fraction}"
    if q.lorem_ipsum and "lorem ipsum" in text.lower():
        return "lorem_ipsum: contains 'lorem ipsum'"
    if q.curly_brace and "{" in text:
        return "curly_brace: contains '{'"
    frac, chars = _dup_fractions(lines)
    if q.max_dup_line_fraction is not None and frac > q.max_dup_line_fraction:
        return f"dup_lines: {frac:.3f} > {q.max_dup_line_fraction}"
    paragraphs = [p.strip() for p in _PARAGRAPH.split(text) if p.strip()]
    pfrac, pchars = _dup_fractions(paragraphs)
    if q.max_dup_paragraph_fraction is not None and pfrac > q.max_dup_paragraph_fraction:
        return f"dup_paragraphs: {pfrac:.3f} > {q.max_dup_paragraph_fraction}"
    if q.max_dup_line_char_fraction is not None and chars > q.max_dup_line_char_fraction:
        return f"dup_line_chars: {chars:.3f} > {q.max_dup_line_char_fraction}"
    if q.max_dup_paragraph_char_fraction is not None and pchars > q.max_dup_paragraph_char_fraction:
        return f"dup_paragraph_chars: {pchars:.3f} > {q.max_dup_paragraph_char_fraction}"
    if not n:
        return None
    wh = np.fromiter(map(zlib.crc32, map(str.encode, toks)), np.uint64, n)  # UTF-8
    for i, limit in enumerate(q.max_top_ngram_char_fraction):
        frac = top_ngram_char_fraction(lens, wh, i + 2)
        if frac > limit:
            return f"top_ngram: {i + 2}-gram {frac:.3f} > {limit}"
    for i, limit in enumerate(q.max_dup_ngram_char_fraction):
        frac = dup_ngram_char_fraction(toks, lens, wh, i + 5)
        if frac > limit:
            return f"dup_ngram: {i + 5}-gram {frac:.3f} > {limit}"
        if frac == 0.0:  # no repeated n-gram: no repeated longer one either
            break
    return None
