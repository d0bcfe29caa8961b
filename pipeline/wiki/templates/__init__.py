"""Inline templates rendered as the reader sees them (issue 14).

:func:`lookup` finds the renderer of a template name; renderers are small pure functions
(:mod:`.render`, :mod:`.convert`) keyed by renderer kind, and the names each kind answers
to, per language, are data (:mod:`.names`). A template without a renderer is dropped by
the cleaner, as before; the cleaner counts both (:class:`pipeline.wiki.clean.CleanResult`).
"""

from __future__ import annotations

import re
from functools import lru_cache

from pipeline.wiki.templates.names import FAMILIES, NAMES
from pipeline.wiki.templates.render import RENDERERS, Args, Renderer

__all__ = ["Args", "Renderer", "TABLE", "lookup", "normalise"]

_SPACES = re.compile(r"[\s_]+")
_PREFIXES = ("template:", "subst:", "safesubst:", "msgnw:")


@lru_cache(maxsize=4096)
def normalise(name: str) -> str:
    """A template name as the tables key it: case-folded, ``_`` and runs of white space
    as one space, a ``Template:``/``subst:`` prefix removed; a parser function or magic
    word with an argument (``formatnum:1234``) keeps only its name and colon
    (``formatnum:``).

    >>> normalise(" Convert_ "), normalise("formatnum: 1,234"), normalise("Lang-fr")
    ('convert', 'formatnum:', 'lang-fr')
    """
    key = _SPACES.sub(" ", name).strip().casefold()
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :].strip()
    head, colon, _ = key.partition(":")
    return head.strip() + ":" if colon else key


def _table() -> dict[str, Renderer]:
    table: dict[str, Renderer] = {}
    for kind, languages in NAMES.items():
        for names in languages.values():
            for name in names:
                table[normalise(name)] = RENDERERS[kind]
    return table


TABLE: dict[str, Renderer] = _table()
"""Normalised template name → renderer, every language's names together."""


def lookup(key: str) -> Renderer | None:
    """The renderer of normalised name ``key`` (:func:`normalise`), or None (dropped)."""
    found = TABLE.get(key)
    if found is None and "-" in key:
        for prefix, kind in FAMILIES.items():
            if key.startswith(prefix) and len(key) > len(prefix):
                return RENDERERS[kind]
    return found
