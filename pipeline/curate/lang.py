"""Language identification with ``py3langid`` (model weights inside the package, no
download) and the language of a wiki from its database name.

py3langid is a fork of langid.py (Lui and Baldwin 2012, "langid.py: An Off-the-shelf
Language Identification Tool", ACL demo), a naive Bayes model over byte n-grams covering
97 languages, stored as NumPy arrays in LZMA (no pickle).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

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


def detect(text: str) -> tuple[str | None, float]:
    """``(language code, probability)`` of ``text``'s first :data:`LANG_PREFIX_CHARS`
    characters; ``(None, 0.0)`` for text without a letter."""
    head = text[:LANG_PREFIX_CHARS]
    if not any(c.isalpha() for c in head):
        return None, 0.0
    lang, prob = _identifier().classify(head)
    return str(lang), round(float(prob), 4)


def supported_languages() -> frozenset[str]:
    """Codes the detector can report."""
    return frozenset(str(c) for c in _identifier().nb_classes)
