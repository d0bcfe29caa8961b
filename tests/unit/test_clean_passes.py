"""The cleaner's faster text passes give what the regular expressions they replace give.

:func:`pipeline.wiki.clean._tidy` runs some passes in a cheaper form (issue 15): trailing
orphaned punctuation widened from its first ``[,;:]``, spaces before punctuation removed
once no two spaces touch, blank runs collapsed line by line; :func:`_prune` finds the end
of a dropped span with ``bytes.find``. Each is checked here against its definition on
random strings over the characters that matter, and on real pages against the tree
(``test_clean.py``).
"""

from __future__ import annotations

import html
import random
import re

from mwparserfromhell.parser import tokens as tk

from pipeline.wiki import clean

_ALPHABET = [" ", " ", "\t", "\u00a0", ",", ";", ":", ".", ")", "(", "[", "]", "a", "b", "\n"]


def _strings(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return ["".join(rnd.choices(_ALPHABET, k=rnd.randint(0, 40))) for _ in range(n)]


def test_paren_trail_is_the_regex() -> None:
    texts = _strings(20_000, 1) + ["a ;)", "a , ; )b ,)", "\t \t:)", "x, y ;) z ;)", ";)"]
    for text in texts:
        assert clean._paren_trail(text) == clean._PAREN_TRAIL.sub(")", text), repr(text)


def test_spaces_and_space_before_punctuation_are_the_regexes() -> None:
    before = re.compile(r"[ \t\u00a0]{2,}")
    for text in _strings(20_000, 2):
        spaced = clean._SPACES.sub(" ", text)
        assert spaced == before.sub(" ", text), repr(text)
        assert clean._SPACE_BEFORE_PUNCT.sub("", spaced) == clean._SPACE_PUNCT.sub(r"\1", spaced)


def _tidy_by_regex(text: str) -> str:
    """:func:`clean._tidy` with every pass as its regular expression (its old form)."""
    text = html.unescape(text)
    text = clean._SWITCH.sub("", text)
    if "''" in text:
        text = "\n".join(clean.do_quotes(x) if "''" in x else x for x in text.split("\n"))
    text = clean._EMPTY_PARENS.sub("", text)
    text = clean._PAREN_LEAD.sub("(", text)
    text = clean._PAREN_TRAIL.sub(")", text)
    text = clean._REPEATED_PUNCT.sub(r"\1", text)
    text = clean._SPACE_PUNCT.sub(r"\1", re.sub(r"[ \t\u00a0]{2,}", " ", text))
    lines = [
        "" if x.strip() in ("*", "#", ":", ";", "|", "!") else x.strip() for x in text.split("\n")
    ]
    return clean._BLANKS.sub("\n\n", "\n".join(lines)).strip()


def test_tidy_is_its_regular_expressions() -> None:
    texts = _strings(20_000, 3) + ["\n\n\na\n\n\n\n*\n#\n\nc\n\n", "''a'' (; b ,,; ) \u00a0 .\n\n|"]
    rnd = random.Random(5)
    texts += [
        "".join(rnd.choices([*_ALPHABET, "'", "''", "*", "#", "|", "&amp;"], k=60))
        for _ in range(5_000)
    ]
    for text in texts:
        assert clean._tidy(text) == _tidy_by_regex(text), repr(text)


def _prune_by_steps(toks: list) -> list:
    """The kept tokens of :func:`clean._prune`, a Python step per token (its old form)."""
    kept, i, n = [], 0, len(toks)
    while i < n:
        kind = type(toks[i])
        close = clean._DROP_SPANS.get(kind)
        if close is None and kind is tk.TagOpenOpen and i + 1 < n:
            name = toks[i + 1]
            if type(name) is tk.Text and name["text"].strip().lower() in clean._DROP_TAGS:
                close = clean._TAG_ENDS
        if close is None:
            kept.append(toks[i])
            i += 1
            continue
        depth, i = 1, i + 1
        while i < n and depth:
            k = type(toks[i])
            if k is kind:
                depth += 1
            elif k is close or (close is clean._TAG_ENDS and k in clean._TAG_ENDS):
                depth -= 1
            i += 1
    return kept


def test_prune_drops_the_same_spans_as_a_step_per_token() -> None:
    rnd = random.Random(4)
    parts = ["{{a|", "}}", "{{{x}}}", "<ref>", "</ref>", "<ref/>", "<!--c-->", "[[l|", "]]"]
    parts += ["<b>", "</b>", "text ", "<table>", "</table>", "== h ==\n", "[http://x y]"]
    checked = 0
    for _ in range(3_000):
        wikitext = "".join(rnd.choices(parts, k=rnd.randint(1, 30)))
        toks = clean._Tokenizer().tokenize(wikitext, 0, True)
        try:
            got = clean._prune(toks, lambda *_: None).toks
        except clean._Unbalanced:
            continue
        assert got == _prune_by_steps(toks), wikitext
        checked += 1
    assert checked > 1_000
