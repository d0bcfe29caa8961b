"""Language identification with ``py3langid`` (model weights inside the package, no
download) and the language of a wiki from its database name.

py3langid is a fork of langid.py (Lui and Baldwin 2012, "langid.py: An Off-the-shelf
Language Identification Tool", ACL demo), a naive Bayes model over byte n-grams covering
97 languages, stored as NumPy arrays in LZMA (no pickle).
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any

import numpy as np

LANG_PREFIX_CHARS = 3000
"""Characters of a document given to the detector: time grows linearly with the text,
and on the shared samples accuracy is the same as with 10,000 (benchmarks/curate.py)."""

_PROJECTS = re.compile(
    r"(wiki|wikivoyage|wiktionary|wikibooks|wikinews|wikiquote|wikisource|wikiversity)$"
)
# Wiki language prefixes that are not the ISO 639-1 code the detector reports.
_ALIASES = {
    "simple": "en",
    "be_x_old": "be",
    "zh_yue": "zh",
    "zh_classical": "zh",
    "nb": "no",
}
# Database names of multilingual wikis: no language to compare with.
_MULTILINGUAL = {"commons", "wikidata", "meta", "species", "mediawiki", "incubator", "sources"}


def wiki_language(wiki: str | None) -> str | None:
    """The language code of a wiki database name (``dewiki`` → ``de``, ``simplewiki`` →
    ``en``, ``elwikivoyage`` → ``el``), or None for multilingual wikis (``wikidatawiki``,
    ``commonswiki``) and names that are not of the ``<lang><project>`` form."""
    if not wiki:
        return None
    m = _PROJECTS.search(wiki)
    if m is None:
        return None
    prefix = wiki[: m.start()]
    if not prefix or prefix in _MULTILINGUAL:
        return None
    prefix = _ALIASES.get(prefix, prefix)
    return prefix.split("_")[0]


@cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


_KNOWN_DEPTH = {(104_583, 9_816_576): 6}
"""Deepest automaton state of py3langid 0.4.0's model, keyed by (states, transitions):
:func:`automaton_depth` takes seconds, and every executor's Python worker would pay it
(``tests/unit/test_curate_rules.py`` checks the value). Any other model is searched."""


def automaton_depth(nextmove: np.ndarray, rowbase: np.ndarray) -> int:
    """Largest breadth-first distance from the start state 0 of a byte automaton
    (``nextmove[rowbase[state] + byte]`` is the next state): for an Aho-Corasick
    automaton, the length of its longest keyword prefix."""
    depth = np.full(len(rowbase), -1, dtype=np.int64)
    depth[0] = 0
    frontier, d = np.array([0]), 0
    while len(frontier):
        nxt = np.unique(nextmove[(rowbase[frontier][:, None] + np.arange(256)).ravel()])
        nxt = nxt[depth[nxt] < 0]
        d += 1
        depth[nxt] = d
        frontier = nxt
    return int(depth.max())


class _Scanner:
    """py3langid's byte n-gram scan, vectorised with NumPy; same result as the model's
    own per-byte Python loop (``visit_counts``), several times faster.

    The model's tokenizer is an Aho-Corasick automaton (langid.py ``scanner.py``; Aho and
    Corasick 1975, "Efficient string matching"): its state after a byte is the node of
    the longest suffix of the input that is a prefix of a feature, so it depends only on
    the last ``depth`` bytes (``depth`` = the deepest node, :func:`automaton_depth`).
    Every position's state is therefore the walk from the start state over the
    ``depth`` bytes ending there: ``depth`` vectorised steps instead of one Python step
    per byte. Features are then counted in first-seen order, as the model's ``Counter``
    does, so the naive Bayes sum adds in the same order and scores are bit-identical
    (``tests/unit/test_curate_rules.py`` compares both on real pages).
    """

    def __init__(self, ident: Any) -> None:
        self.ident = ident
        self.nextmove = np.frombuffer(ident.tk_nextmove, dtype=np.dtype(ident.tk_nextmove.typecode))
        self.rowbase = np.asarray(ident.tk_row, dtype=np.int64) << 8
        self.output = np.asarray(ident.tk_output, dtype=np.int64)
        # float16 in the package; converting the gathered rows per call costs more than
        # the product. float32 once (~57 MB): the same products, bit for bit (float16
        # values are exact in float32; NumPy casts them to float32 for the product anyway)
        self.ptc = np.asarray(ident.nb_ptc, dtype=np.float32)
        key = (len(self.output), len(self.nextmove))
        self.depth = _KNOWN_DEPTH.get(key) or automaton_depth(self.nextmove, self.rowbase)

    def states(self, data: bytes) -> np.ndarray:
        """The automaton's state after each byte of ``data`` (int64 array)."""
        b = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        n = len(b)
        state = np.zeros(n, dtype=np.int64)
        for k in range(self.depth):
            lo = self.depth - 1 - k  # positions whose window reaches back this far
            if lo >= n:
                continue
            state[lo:] = self.nextmove[self.rowbase[state[lo:]] + b[: n - lo]]
        return state

    def classify(self, text: str) -> tuple[str, float]:
        """``(language, probability)`` exactly as ``LanguageIdentifier.classify``."""
        ident = self.ident
        data = ident._encode(text)
        f = self.output[self.states(data)]
        f = f[f >= 0]
        if len(f):
            values, first, counts = np.unique(f, return_index=True, return_counts=True)
            order = np.argsort(first)
            idx = values[order].astype(np.intp)
            scores = np.log1p(counts[order].astype(np.float32)) @ self.ptc[idx] + ident.nb_pc
        else:
            scores = np.full(len(ident.nb_classes), 0.0, dtype=np.float32)
        # the rest of LanguageIdentifier._decide and classify (norm_probs=True)
        scores *= 1.0 / math.sqrt(len(data) or 1)
        np.exp(scores - scores.max(), out=scores)
        scores /= scores.sum()
        for i, j in ident._alias_pairs:
            scores[i] += scores[j]
            scores[j] = 0.0
        i = int(scores.argmax())
        return ident.nb_classes[i], float(scores[i])


@cache
def _scanner() -> _Scanner:
    return _Scanner(_identifier())


def detect(text: str) -> tuple[str | None, float]:
    """``(language code, probability)`` of ``text``'s first :data:`LANG_PREFIX_CHARS`
    characters; ``(None, 0.0)`` for text without a letter."""
    head = text[:LANG_PREFIX_CHARS]
    if not any(c.isalpha() for c in head):
        return None, 0.0
    lang, prob = _scanner().classify(head)
    return str(lang), round(float(prob), 4)


def supported_languages() -> frozenset[str]:
    """Codes the detector can report."""
    return frozenset(str(c) for c in _identifier().nb_classes)
