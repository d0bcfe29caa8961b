"""Cut ``<ref>`` footnotes out of wikitext before it is tokenized (issue 15: parse speed).

The cleaner drops every ``<ref>`` with all it holds (:data:`pipeline.wiki.clean._DROP_TAGS`),
but mwparserfromhell's tokenizer still has to read them first: on English articles they
are 18–28% of the wikitext (the shared English samples), and tokenizing is about half of
the cleaner's time. :func:`strip_refs` removes them with one regular expression, so the
tokenizer and the passes after it see less text, and the cleaned text is the same.

Only spans whose removal cannot change how the rest of the page parses are cut:

- ``<ref …/>`` and ``<ref …>…</ref>`` whose content holds no ``<ref``, ``</ref`` or
  ``<!--`` (a nested or commented-out ref is left to the tokenizer);
- never inside a comment (``<!-- … -->``, to its end when unclosed) or inside a tag whose
  content MediaWiki does not parse (``<nowiki>``, ``<pre>``, ``<math>``…:
  mwparserfromhell's ``definitions.PARSER_BLACKLIST``; to the end of the page when
  unclosed): those regions are copied as they are.

Every match attempt stops at the next ``<``-markup it cannot pass, so the cost is linear in
the page (no quadratic scan on a page of unclosed ``<ref>``\\s). The output of
:func:`pipeline.wiki.clean.clean_wikitext` with and without this step is compared on every
page of every shared sample (``tests/unit/test_prestrip.py``).
"""

from __future__ import annotations

import re

from mwparserfromhell.definitions import PARSER_BLACKLIST

__all__ = ["strip_refs"]

_UNPARSED = "|".join(sorted(map(re.escape, PARSER_BLACKLIST), key=len, reverse=True))
_SCAN = re.compile(  # one alternation behind a literal "<": the engine skips to each "<"
    r"<(?:"
    # Copied as they are: a comment, a non-self-closing unparsed tag with its content.
    r"!--.*?(?:-->|\Z)"
    r"|(" + _UNPARSED + r")(?=[\s>])[^<>]*(?<!/)>.*?(?:</\1\s*>|\Z)"
    # Cut: a self-closing ref, or a ref whose content has no <ref, </ref or <!--.
    r"|(?P<ref>ref(?:\s[^<>]*)?/>"
    r"|ref(?:\s[^<>]*)?>[^<]*(?:<(?!/?ref[\s>/]|!--)[^<]*)*</ref\s*>))",
    re.IGNORECASE | re.DOTALL,
)


def _replace(m: re.Match[str]) -> str:
    return "" if m.lastgroup == "ref" else m.group()


def strip_refs(wikitext: str) -> str:
    """``wikitext`` without the ``<ref>`` spans the cleaner would drop anyway (see the
    module's docstring for which ones); the text itself when it has none.

    Args:
        wikitext: one page's raw wikitext (``str``, any length).

    Returns:
        The same text with those spans removed, nothing else changed (no whitespace is
        added or joined).
    """
    if "<ref" not in wikitext and "<REF" not in wikitext and "<Ref" not in wikitext:
        return wikitext
    return _SCAN.sub(_replace, wikitext)
