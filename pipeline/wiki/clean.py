"""Wikitext → plain text, with mwparserfromhell (its C tokenizer).

:func:`clean_wikitext` is a pure function of the text and :class:`CleanOptions`: it keeps
section headings as their own lines and paragraphs separated by a blank line, turns links
into their label, drops templates, ``<ref>``s, tables, galleries, comments, magic words
and behaviour switches, file/image/media links (in every language the options know) and
interwiki links, lists category links in the result instead of the text, decodes HTML
entities and removes bold/italic quote marks. Only mwparserfromhell's own
``ParserError`` and this module's :class:`CleanTimeout` signal a page that could not be
cleaned; anything else is a bug and propagates.

Speed: the page is tokenized once; templates, ``<ref>``s, tables, comments and the other
dropped tags are cut out of the token list, and the rest is rendered straight from the
tokens (mwparserfromhell's tree builder, pure Python, only runs for rare nodes such as
HTML entities). On the English sample this is 4x faster than walking the full tree, with
identical output on every sample page (``tests/unit/test_clean.py``).
"""

from __future__ import annotations

import html
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat

import mwparserfromhell
from mwparserfromhell import nodes
from mwparserfromhell.parser import ParserError
from mwparserfromhell.parser import tokens as tk
from mwparserfromhell.parser.builder import Builder

from pipeline.wiki import templates
from pipeline.wiki.prestrip import strip_refs

try:  # the C tokenizer, as mwparserfromhell.parse itself picks it
    from mwparserfromhell.parser._tokenizer import CTokenizer as _Tokenizer
except ImportError:  # pragma: no cover - pure-Python fallback of the same tokenizer
    from mwparserfromhell.parser.tokenizer import Tokenizer as _Tokenizer

__all__ = ["CleanOptions", "CleanTimeout", "CleanResult", "ParserError", "clean_wikitext"]

# Common names and aliases of the File (6), Media (-2) and Category (14) namespaces, used
# in addition to the names a dump's <siteinfo><namespaces> gives (MediaWiki's English
# canonical names plus the local names of large wikis; from MessagesXx.php).
DEFAULT_FILE_NAMES = frozenset(
    "file image media datei bild medium fichier archivo imagen ficheiro arquivo imagem "
    "immagine bestand afbeelding plik grafika fil файл изображение медиа αρχείο εικόνα "
    "μέσο dosya resim soubor obrázek tiedosto kuva fájl kép fișier imagine файл ファイル 画像 "
    "文件 檔案 图像 圖像 파일 그림 ملف صورة מדיה קובץ תמונה चित्र संचिका".split()
)
DEFAULT_CATEGORY_NAMES = frozenset(
    "category kategorie catégorie categoría categoria categorie kategoria kategori "
    "категория категорія κατηγορία kategória kategorija luokka kategoriya カテゴリ 分类 分類 분류 "
    "تصنيف קטגוריה श्रेणी".split()
)

# Tags whose whole content is not prose.
_DROP_TAGS = frozenset(
    "ref references table gallery math chem ce score timeline graph mapframe maplink "
    "templatedata templatestyles imagemap syntaxhighlight source hiero inputbox "
    "categorytree indicator noinclude includeonly section charinsert rss dynamicpagelist "
    "style script".split()
)
_BREAK_TAGS = frozenset({"br", "hr"})
_BLOCK_TAGS = frozenset({"p", "div", "li", "dd", "dt", "blockquote", "pre", "center", "poem"})

_SWITCH = re.compile(r"__[A-Z_]{2,30}__")
_QUOTES = re.compile(r"('{2,})")
_EMPTY_PARENS = re.compile(r"\(\s*(?:[,;:]\s*)*\)|\[\s*\]")
# Punctuation left orphaned where content was removed: "( ; born 1900)", "name; )",
# ",,,, and".
_PAREN_LEAD = re.compile(r"\([ \t]*[,;:][ \t,;:]*")
_PAREN_TRAIL = re.compile(r"[ \t]*[,;:][ \t,;:]*\)")
_PAREN_TRAIL_QUICK = re.compile(r"[,;:][ \t,;:]*\)")  # no scan from every space
_REPEATED_PUNCT = re.compile(r"([,;])(?:[ \t]*[,;])+")
_SPACES = re.compile(r"[ \t\u00a0][ \t\u00a0]+")  # [ \t\u00a0]{2,}, which sre scans slower
_SPACE_PUNCT = re.compile(r" +([,.;:!?)])")
_SPACE_BEFORE_PUNCT = re.compile(r" (?=[,.;:!?)])")  # _SPACE_PUNCT once no two spaces touch
_BLANKS = re.compile(r"\n{3,}")
# A link whose target has a media file extension, or whose first option is an image
# option, is a file link whatever its namespace is called (dumps without <siteinfo>, or
# whose header lies about the language, do not tell us the local name of "File:").
_MEDIA_TARGET = re.compile(
    r"\.(?:jpe?g|png|gif|svg|tiff?|webp|xcf|bmp|ogg|oga|ogv|webm|mp3|mp4|wav|flac|mid|pdf|djvu)\s*$",
    re.IGNORECASE,
)
_IMAGE_OPTION = re.compile(
    r"^\s*(?:thumb|thumbnail|frame|framed|frameless|border|left|right|center|centre|none|"
    r"upright(?:\s*=.*)?|\d*x?\d+\s*px|alt\s*=.*|link\s*=.*)\s*$",
    re.IGNORECASE,
)
_UNCLOSED_MEDIA = re.compile(
    r"(?:\[\[)?[^\[\]\n|]+\.(?:jpe?g|png|gif|svg|tiff?|webp)\s*\|[^\n]*", re.IGNORECASE
)
# A character the tokenizer could start a node at; strings without any are plain text.
_MARKUP = re.compile(r"[\[\]{}<>&'~:/\n_=|!*#;-]")
_MEDIA_PIPE = re.compile(r"\.(?:jpe?g|png|gif|svg|tiff?|webp)\s*\|", re.IGNORECASE)
_INTERWIKI = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$|^simple$")


class CleanTimeout(RuntimeError):
    """Cleaning one page took longer than the time guard allowed."""


@dataclass(frozen=True)
class CleanOptions:
    """What the cleaner needs to know about a wiki; build with :meth:`for_namespaces`.

    Names are compared case-insensitively, with ``_`` as a space.
    """

    file_names: frozenset[str] = DEFAULT_FILE_NAMES
    """Namespace names and aliases whose links are files/images/media (dropped)."""
    category_names: frozenset[str] = DEFAULT_CATEGORY_NAMES
    """Namespace names of categories (links listed in ``categories``, not the text)."""
    namespace_names: frozenset[str] = field(default_factory=frozenset)
    """All namespace names of the wiki; a ``prefix:`` in them is not an interwiki."""
    timeout_s: float = 30.0
    """Time guard per page, in CPU seconds of the calling thread, checked while walking
    the parsed page; the C tokenizer never checks it (:mod:`pipeline.wiki.guard` does)."""

    @classmethod
    def for_namespaces(cls, namespaces: Mapping[int, str], timeout_s: float = 30.0):
        """Options from ``<siteinfo><namespaces>`` (key → local name) plus the defaults."""
        norm = {k: _norm(v) for k, v in namespaces.items() if v}
        return cls(
            file_names=DEFAULT_FILE_NAMES | {v for k, v in norm.items() if k in (6, -2)},
            category_names=DEFAULT_CATEGORY_NAMES | {v for k, v in norm.items() if k == 14},
            namespace_names=frozenset(norm.values()),
            timeout_s=timeout_s,
        )


@dataclass
class CleanResult:
    """Plain text, the category names found in the wikitext, and the templates met
    outside dropped markup: rendered (:mod:`pipeline.wiki.templates`) or dropped, as
    ``{normalised name: count}``."""

    text: str
    categories: list[str]
    templates_rendered: dict[str, int] = field(default_factory=dict)
    templates_dropped: dict[str, int] = field(default_factory=dict)


def _norm(name: str) -> str:
    return name.replace("_", " ").strip().casefold()


def clean_wikitext(
    wikitext: str, options: CleanOptions | None = None, title: str | None = None
) -> CleanResult:
    """Turn one page's wikitext into plain text.

    Inline templates that carry prose or numbers (``{{convert}}``, ``{{lang}}``,
    ``{{as of}}``…, :mod:`pipeline.wiki.templates`) are rendered as the reader sees them;
    every other template is dropped.

    Args:
        wikitext: raw wikitext of a page.
        options: namespace names and the time guard; defaults know English and the common
            local names.
        title: the page's title, for ``{{PAGENAME}}``; without it that magic word is
            dropped.

    Returns:
        :class:`CleanResult` with ``text`` (headings on their own lines, paragraphs
        separated by one blank line, no markup) and ``categories`` (in order, unique).

    Raises:
        mwparserfromhell.parser.ParserError: the tokenizer failed on this text.
        CleanTimeout: the page took more than ``options.timeout_s`` of CPU.
    """
    opts = options or CleanOptions()
    if "&lt;" in wikitext:
        # Markup stored entity-escaped (seen in real dumps re-exported by tools): decode it
        # first, as WikiExtractor does, so that <ref>s and comments are parsed as such.
        wikitext = html.unescape(wikitext)
    # <ref>s are dropped whole: cut before tokenizing (same text, less to tokenize).
    wikitext = strip_refs(wikitext)
    # Bold and italic quotes stay text (removed by _tidy): parsed as style tags, an
    # unbalanced '' lets a table or <ref> swallow the rest of the page.
    walker = _Walker(opts, time.thread_time() + opts.timeout_s, title)
    raw = walker.render_wikitext(wikitext)
    return CleanResult(
        _tidy(_residue(raw, walker)),
        list(dict.fromkeys(walker.categories)),
        dict(walker.rendered),
        dict(walker.dropped),
    )


# Token pairs whose whole span the walker renders as "" (templates, template arguments,
# comments): dropped from the token list before anything is built.
_DROP_SPANS = {
    tk.TemplateOpen: tk.TemplateClose,
    tk.ArgumentOpen: tk.ArgumentClose,
    tk.CommentStart: tk.CommentEnd,
}
_TAG_ENDS = (tk.TagCloseSelfclose, tk.TagCloseClose)
# Every node's opening and closing token, and the tokens that split a node into parts.
_OPENERS = frozenset(
    {
        tk.WikilinkOpen,
        tk.ExternalLinkOpen,
        tk.HTMLEntityStart,
        tk.HeadingStart,
        tk.TagOpenOpen,
        *_DROP_SPANS,
    }
)
_CLOSERS = frozenset(
    {
        tk.WikilinkClose,
        tk.ExternalLinkClose,
        tk.HTMLEntityEnd,
        tk.HeadingEnd,
        *_TAG_ENDS,
        *_DROP_SPANS.values(),
    }
)
_SPLITS = frozenset({tk.WikilinkSeparator, tk.ExternalLinkSeparator, tk.TagCloseOpen})


_NAME_ENDS = (tk.TemplateParamSeparator, tk.TemplateClose)
# Raw template name → (normalised name, has a renderer); names repeat across pages.
_NAMES: dict[str, tuple[str, bool]] = {}


class _Unbalanced(Exception):
    """The token list does not nest; the builder reports it properly."""


@dataclass
class _Tokens:
    """A page's tokens with the subtrees the walker drops cut out (:func:`_prune`).

    ``end[i]`` is the index of the closing token of the node opened at ``i``; ``split[i]``
    the index of its first part separator (``|`` of a link, ``>`` of a tag's start) and
    ``inner_end[i]`` that of a tag's ``</``.
    """

    toks: list[tk.Token]
    end: dict[int, int]
    split: dict[int, int]
    inner_end: dict[int, int]


# Token kinds as one byte each, so that a dropped span's end is found with bytes.find and
# bytes.count (loops in C) rather than a Python step per token. Letters only: no code is a
# regular-expression metacharacter.
_CODES: dict[type, int] = {
    getattr(tk, name): ord(letter)
    for name, letter in zip(
        (n for n in tk.__all__ if n != "Token"),
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxy",
        strict=False,
    )
}
_OTHER = ord("z")  # a kind the table does not know (none of the codes below)
_TEXT = _CODES[tk.Text]
_TAG_OPEN = _CODES[tk.TagOpenOpen]
_TEMPLATE_OPEN = _CODES[tk.TemplateOpen]
_SPAN_CLOSE = {_CODES[a]: bytes([_CODES[b]]) for a, b in _DROP_SPANS.items()}
_TAG_END = re.compile(b"[" + bytes(_CODES[k] for k in _TAG_ENDS) + b"]")
_ROLE = {  # code -> 1: opens a node, 2: closes one, 3: splits one, 4: a tag's "</"
    **dict.fromkeys((_CODES[k] for k in _OPENERS), 1),
    **dict.fromkeys((_CODES[k] for k in _CLOSERS), 2),
    **dict.fromkeys((_CODES[k] for k in _SPLITS), 3),
    _CODES[tk.TagOpenClose]: 4,
}


def _span_end(codes: bytes, i: int, opener: int, close: bytes | None) -> int:
    """The index after the token closing the span opened at ``i``: the first close
    (``close``, or either tag end when None) at which the ``opener`` tokens since ``i``
    are all closed.

    Raises:
        _Unbalanced: the span is never closed.
    """
    depth, pos, open_code = 1, i + 1, bytes([opener])
    while True:
        if close is None:
            m = _TAG_END.search(codes, pos)
            j = m.start() if m else -1
        else:
            j = codes.find(close, pos)
        if j < 0:
            raise _Unbalanced
        depth += codes.count(open_code, pos, j) - 1
        if not depth:
            return j + 1
        pos = j + 1


def _prune(
    toks: list[tk.Token], on_template: Callable[[list[tk.Token], int, int], str | None]
) -> _Tokens:
    """Cut templates, arguments, comments and :data:`_DROP_TAGS` tags (``<ref>``, tables,
    galleries…) out of a page's tokens and match every node's opening and closing tokens.
    ``on_template(toks, i, j)`` sees each template cut (``toks[i:j]``): the text it
    returns, if any, replaces the template as one text token.

    Raises:
        _Unbalanced: the token list does not nest (the caller falls back to the builder,
            which raises mwparserfromhell's ``ParserError``).
    """
    n = len(toks)
    codes = bytes(map(_CODES.get, map(type, toks), repeat(_OTHER, n)))
    kept: list[tk.Token] = []
    end: dict[int, int] = {}
    split: dict[int, int] = {}
    inner_end: dict[int, int] = {}
    stack: list[int] = []
    append, role_of, span_close = kept.append, _ROLE.get, _SPAN_CLOSE.get
    i = 0
    while i < n:
        c = codes[i]
        if c == _TEXT:
            append(toks[i])
            i += 1
            continue
        close = span_close(c)
        if close is not None or (
            c == _TAG_OPEN
            and i + 1 < n
            and codes[i + 1] == _TEXT
            and toks[i + 1]["text"].strip().lower() in _DROP_TAGS
        ):
            start, i = i, _span_end(codes, i, c, close)
            if c == _TEMPLATE_OPEN:
                text = on_template(toks, start, i)
                if text:
                    append(tk.Text(text=text))
            continue
        role = role_of(c)
        if role is not None:
            if role == 1:
                stack.append(len(kept))
            elif not stack:
                raise _Unbalanced
            elif role == 2:
                end[stack.pop()] = len(kept)
            elif role == 3:
                split.setdefault(stack[-1], len(kept))
            else:
                inner_end[stack[-1]] = len(kept)
        append(toks[i])
        i += 1
    if stack:
        raise _Unbalanced
    return _Tokens(kept, end, split, inner_end)


def _build(toks: list[tk.Token]) -> mwparserfromhell.wikicode.Wikicode:
    """The mwparserfromhell tree of a (sub)list of tokens (the list is not modified)."""
    return Builder().build(list(toks))


class _Walker:
    def __init__(self, opts: CleanOptions, deadline: float, title: str | None = None) -> None:
        self.opts, self.deadline, self.title = opts, deadline, title
        self.categories: list[str] = []
        self.rendered: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.count = 0

    def tick(self) -> None:
        self.count += 1
        if self.count % 256 == 0:
            self.check_deadline()

    def check_deadline(self) -> None:
        """Raise :class:`CleanTimeout` once the thread's CPU time is past the deadline."""
        if time.thread_time() > self.deadline:
            raise CleanTimeout(f"cleaning took longer than {self.opts.timeout_s:g}s of CPU")

    def render_wikitext(self, wikitext: str) -> str:
        """Render a whole page: straight from its tokens, so that no mwparserfromhell tree
        is built for most nodes (building trees in Python was most of the cleaning time);
        the result is the same as :meth:`render` of ``mwparserfromhell.parse(wikitext,
        skip_style_tags=True).nodes``.

        Raises:
            mwparserfromhell.parser.ParserError: the tokens do not form a tree.
            CleanTimeout: past the deadline.
        """
        toks = _Tokenizer().tokenize(wikitext, 0, True)  # skip_style_tags
        try:
            t = _prune(toks, self.template_tokens)
        except _Unbalanced:
            return self.render(_build(toks).nodes)
        return self.render_tokens(t, 0, len(t.toks))

    def render_tokens(self, t: _Tokens, lo: int, hi: int) -> str:
        """Render ``t.toks[lo:hi]``, a run of whole nodes, as :meth:`node` would."""
        toks, ends, out, i = t.toks, t.end, [], lo
        while i < hi:
            self.count += 1  # self.tick(), inline
            if not self.count % 256:
                self.check_deadline()
            tok = toks[i]
            kind = type(tok)
            if kind is tk.Text:
                out.append(tok["text"])
                i += 1
                continue
            j = ends[i]
            if kind is tk.WikilinkOpen:
                out.append(self.wikilink_tokens(t, i, j))
            elif kind is tk.TagOpenOpen:
                out.append(self.tag_tokens(t, i, j))
            elif kind is tk.HeadingStart:
                out.append("\n\n" + self.render_tokens(t, i + 1, j).strip() + "\n\n")
            elif kind is tk.ExternalLinkOpen:
                s = t.split.get(i)
                out.append(self.render_tokens(t, s + 1, j) if s is not None else "")
            else:  # an HTML entity
                out.append(self.render(_build(toks[i : j + 1]).nodes))
            i = j + 1
        return "".join(out)

    def wikilink_tokens(self, t: _Tokens, i: int, j: int) -> str:
        toks, s = t.toks, t.split.get(i)
        stop = j if s is None else s
        if stop == i + 2 and type(toks[i + 1]) is tk.Text:  # most links: one text token
            target = toks[i + 1]["text"]
        else:
            title = toks[i + 1 : stop]
            if all(type(x) is tk.Text for x in title):
                target = "".join(x["text"] for x in title)
            else:
                target = str(_build(title))
        if s is None:
            return self.link(target, None, None)
        if j == s + 2 and type(toks[s + 1]) is tk.Text:
            joined = toks[s + 1]["text"]
            return self.link(target, lambda: joined, lambda: joined)
        text = toks[s + 1 : j]
        if all(type(x) is tk.Text for x in text):
            joined = "".join(x["text"] for x in text)
            return self.link(target, lambda: joined, lambda: joined)
        return self.link(target, lambda: str(_build(text)), lambda: self.render_tokens(t, s + 1, j))

    def tag_tokens(self, t: _Tokens, i: int, j: int) -> str:
        toks = t.toks
        name = toks[i + 1] if i + 2 <= j else None
        if name is None or type(name) is not tk.Text or type(toks[i + 2]) is tk.Text:
            return self.render(_build(toks[i : j + 1]).nodes)  # name is not one text token
        key, markup = name["text"].strip().lower(), toks[i].get("wiki_markup")
        if key in _DROP_TAGS:
            return ""
        if key in _BREAK_TAGS:
            return "\n"
        if markup and key in ("li", "dt", "dd"):
            return ""
        s, m = t.split.get(i), t.inner_end.get(i)
        if type(toks[j]) is tk.TagCloseSelfclose or s is None or m is None:
            inner = ""
        else:
            inner = self.render_tokens(t, s + 1, m)
        if key in _BLOCK_TAGS and not markup:
            return "\n" + inner + "\n"
        return inner

    def render(self, items: Iterable[nodes.Node]) -> str:
        return "".join(self.node(n) for n in items)

    def node(self, n: nodes.Node) -> str:
        self.tick()
        if isinstance(n, nodes.Text):
            return n.value
        if isinstance(n, nodes.Wikilink):
            return self.wikilink(n)
        if isinstance(n, nodes.Tag):
            return self.tag(n)
        if isinstance(n, nodes.Heading):
            return "\n\n" + self.render(n.title.nodes).strip() + "\n\n"
        if isinstance(n, nodes.HTMLEntity):
            return n.normalize()
        if isinstance(n, nodes.ExternalLink):
            return self.render(n.title.nodes) if n.title is not None else ""
        if isinstance(n, nodes.Template):
            return self.template(n)
        # Argument, Comment and anything else: not prose.
        return ""

    def template_tokens(self, toks: list[tk.Token], i: int, j: int) -> str | None:
        """The rendering of the template ``toks[i:j]`` (None when dropped). Its tree is
        built only when its name has a renderer and its arguments hold markup; plain
        arguments are read from the tokens."""
        name, after = toks[i + 1], toks[i + 2] if i + 2 < j else None
        if type(name) is tk.Text and type(after) in _NAME_ENDS:
            raw = name["text"]
            known = _NAMES.get(raw)
            if known is None:
                key = templates.normalise(raw)
                if len(_NAMES) > 100_000:  # bounded memory on wikis with many names
                    _NAMES.clear()
                known = _NAMES[raw] = (key, templates.lookup(key) is not None)
            if not known[1]:
                self.dropped[known[0]] += 1
                return None
            params: list[list] = []  # [shows its key, key, value parts]
            for x in toks[i + 2 : j - 1]:
                kind = type(x)
                if kind is tk.TemplateParamSeparator:
                    params.append([False, "", []])
                elif kind is tk.TemplateParamEquals:
                    p = params[-1]
                    p[0], p[1], p[2] = True, "".join(p[2]).strip(), []
                elif kind is tk.Text:
                    params[-1][2].append(x["text"])
                else:
                    break
            else:
                found = templates.lookup(known[0])
                if found is not None:  # always: known[1] says so
                    args = [(p[0], p[1], "".join(p[2])) for p in params]
                    return self.apply(known[0], raw, found, args)
        node = _build(toks[i:j]).nodes[0]
        return self.template(node) if isinstance(node, nodes.Template) else self.node(node)

    def template(self, n: nodes.Template) -> str:
        """A template's rendering by its renderer, or "" (dropped); counted either way."""
        raw = str(n.name)
        key = templates.normalise(raw)
        renderer = templates.lookup(key)
        if renderer is None:
            self.dropped[key] += 1
            return ""
        params = [
            (bool(p.showkey), str(p.name).strip() if p.showkey else "", self.render(p.value.nodes))
            for p in n.params
        ]
        return self.apply(key, raw, renderer, params)

    def apply(
        self, key: str, raw: str, renderer: templates.Renderer, params: list[tuple[bool, str, str]]
    ) -> str:
        """Call ``renderer`` on a template's rendered ``(shows key, key, value)``
        arguments, numbering the unnamed ones as MediaWiki does (after the argument of a
        parser function such as ``formatnum:``); count it rendered or dropped."""
        args = templates.Args(key, title=self.title)
        numbered: dict[int, str] = {}
        nth = 0
        if key.endswith(":"):  # parser function: {{formatnum:1234|R}}
            nth = 1
            numbered[1] = self.plain(raw.split(":", 1)[1]).strip()
        for shows_key, pkey, value in params:
            if not shows_key:
                nth += 1
                numbered[nth] = value.strip()
            elif pkey.isdigit():
                numbered[int(pkey)] = value.strip()
            else:
                args.named[pkey.casefold()] = value.strip()
        args.pos = [numbered.get(k, "") for k in range(1, max(numbered, default=0) + 1)]
        text = renderer(args)
        if text is None:
            self.dropped[key] += 1
            return ""
        self.rendered[key] += 1
        return text

    def wikilink(self, n: nodes.Wikilink) -> str:
        if n.text is None:
            return self.link(str(n.title), None, None)
        return self.link(str(n.title), lambda: str(n.text), lambda: self.render(n.text.nodes))

    def link(self, title: str, text_source, render_text) -> str:
        """A wikilink's rendering from its title's source and, when it has a ``|text``
        part, callables giving that part's source and its rendered text."""
        target = title.strip()
        visible = target.startswith(":")  # [[:Category:X]] shows a link, not a tag
        target = target.lstrip(":").strip()
        prefix, sep, rest = target.partition(":")
        key = _norm(prefix) if sep else ""
        if key and (key in self.opts.file_names or _MEDIA_TARGET.search(rest)):
            return ""  # file links are dropped, shown ([[:File:X]]) or not
        if key and not visible:
            if key in self.opts.category_names:
                name = self.plain(rest).replace("_", " ")
                if name.strip():
                    self.categories.append(name.strip())
                return ""
            if key not in self.opts.namespace_names and _INTERWIKI.match(key):
                return ""  # interlanguage link such as [[de:Berlin]]
        if sep and text_source is not None and _IMAGE_OPTION.match(text_source().split("|", 1)[0]):
            return ""
        if render_text is not None:
            return render_text()
        label = target.split("#", 1)[0] or target.lstrip("#")
        return self.plain(label)

    def plain(self, text: str) -> str:
        """Render a link target or label given as a string (parsed only if it has markup)."""
        if _MARKUP.search(text) is None:
            return text
        return self.render(mwparserfromhell.parse(text).nodes)

    def wikilink_text(self, inner: str) -> str:
        """Render ``inner`` of a ``[[inner]]`` found as plain text by the residue pass."""
        target, _, label = inner.partition("|")
        link = mwparserfromhell.nodes.Wikilink(target, label.rsplit("|", 1)[-1] if label else None)
        return self.wikilink(link)

    def tag(self, n: nodes.Tag) -> str:
        name = str(n.tag).strip().lower()
        if name in _DROP_TAGS:
            return ""
        if name in _BREAK_TAGS:
            return "\n"
        if n.wiki_markup and name in ("li", "dt", "dd"):
            return ""  # list marker: the item's text follows as sibling nodes
        inner = self.render(n.contents.nodes) if n.contents is not None else ""
        if name in _BLOCK_TAGS and not n.wiki_markup:
            return "\n" + inner + "\n"
        return inner


_INNER_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_INNER_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_REF = re.compile(r"<ref[^<>]*/>|<ref[^<>]*>.*?</ref\s*>", re.IGNORECASE | re.DOTALL)
# Containment of broken markup (issue 14). A <ref whose ">" is missing ("<ref name=x։
# text</ref>") is dropped up to its </ref>; one never closed loses only its attributes.
_BROKEN_REF = re.compile(
    r"<ref\b[^<>]*</ref\s*>|<ref\b(?:\s+[\w-]+\s*=\s*(?:\"[^\"<>\n]*\"|'[^'<>\n]*'|[^\s<>]*))*",
    re.IGNORECASE,
)
# A template the tokenizer could not close (broken closing braces): its "{{Name" line and
# the lines after it up to its last "|param = value" or closing-brace line before a
# blank line (the value lines between go with it; the prose after it stays).
_LEAKED_TEMPLATE = re.compile(
    r"^[ \t]*\{\{[^{}\n|]*\n(?:[ \t]*\S[^\n]*\n)*?(?:[ \t]*[|}][^\n]*(?:\n|$))"
    r"(?:(?:[ \t]*\S[^\n]*\n)*[ \t]*[|}][^\n]*(?:\n|$))?",
    re.MULTILINE,
)
# A leaked template parameter line: "|native_name = …", "| population = 1,000".
_PARAM_LINE = re.compile(r"^[ \t]*\|[ \t]*[^\W\d][\w \-]{0,40}=[^\n]*(?:\n|$)", re.MULTILINE)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_HTML_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")
_STRAY = re.compile(r"\{\{|\}\}|\[\[|\]\]")


def _residue(text: str, walker: _Walker) -> str:
    """Remove markup the tokenizer left as plain text (it gives up on malformed tables,
    links spanning lines, unbalanced templates): a second, text-level pass."""
    if "{|" in text or "|}" in text:
        text = _drop_table_lines(text)
    if "<" in text:
        text = _COMMENT.sub("", _REF.sub("", text))
        if "<ref" in text or "<REF" in text or "<Ref" in text:
            text = _BROKEN_REF.sub("", text)
    while "{{" in text:
        text, n = _INNER_TEMPLATE.subn("", text)
        if not n:
            text = _LEAKED_TEMPLATE.sub("", text)
            break
    if "\n|" in text or text.startswith("|"):
        text = _PARAM_LINE.sub("", text)
    while "[[" in text:
        text, n = _INNER_LINK.subn(lambda m: walker.wikilink_text(m.group(1)), text)
        if not n:
            break
    if "|" in text and _MEDIA_PIPE.search(text):
        # "[[File:x.jpg|thumb|caption" never closed. _UNCLOSED_MEDIA backtracks over every
        # line, so it only runs where its "x.jpg|" core occurs.
        text = _UNCLOSED_MEDIA.sub("", text)
    if "<" in text:
        text = _HTML_TAG.sub("", text)
    return _STRAY.sub("", text)


def _drop_table_lines(text: str) -> str:
    out: list[str] = []
    depth = 0
    for line in text.split("\n"):
        s = line.lstrip(":*# \t")
        if s.startswith("{|"):
            depth += 1
        elif s.startswith("|}"):
            if not depth:  # a table opened by a template: drop its row lines before this
                while out and out[-1].lstrip()[:1] in ("|", "!"):
                    out.pop()
            depth = max(0, depth - 1)
        elif not depth:
            out.append(line)
    return "\n".join(out)


def do_quotes(line: str) -> str:
    """Remove the bold/italic apostrophes of one line and keep the literal ones, by the
    rules of MediaWiki's ``Parser::doQuotes`` (includes/parser/Parser.php): 4 quotes are
    an apostrophe and bold, more than 5 are apostrophes and bold italic; if both the
    italic and the bold counts are odd, one bold is an apostrophe and italic: the first
    after a one-letter word, else after a longer word, else after a space. So
    ``''Star'''s`` gives ``Star's``. (Parser.php compares bytes; this compares characters.)
    """
    arr = _QUOTES.split(line)
    if len(arr) == 1:
        return line
    italics = bold = 0
    for i in range(1, len(arr), 2):
        n = len(arr[i])
        if n == 4:
            arr[i - 1] += "'"
            arr[i] = "'''"
        elif n > 5:
            arr[i - 1] += "'" * (n - 5)
            arr[i] = "'''''"
        n = len(arr[i])
        if n == 2:
            italics += 1
        elif n == 3:
            bold += 1
        elif n == 5:
            italics += 1
            bold += 1
    if italics % 2 and bold % 2:
        single = multi = space = -1
        for i in range(1, len(arr), 2):
            if len(arr[i]) != 3:
                continue
            x1, x2 = arr[i - 1][-1:], arr[i - 1][-2:-1]
            if x1 == " ":
                if space == -1:
                    space = i
            elif x2 == " ":
                single = i
                break
            elif multi == -1:
                multi = i
        at = single if single > -1 else multi if multi > -1 else space
        if at > -1:
            arr[at - 1] += "'"
    return "".join(arr[0::2])


def _paren_trail(text: str) -> str:
    """``_PAREN_TRAIL.sub(")", text)``, faster: its ``[ \t]*`` lead would make the
    regex try a match at every character, so the matches are found from their first
    ``[,;:]`` (:data:`_PAREN_TRAIL_QUICK`) and widened over the spaces and tabs before it
    (never into the previous match, which ends with ``)``)."""
    out: list[str] = []
    last = 0
    for m in _PAREN_TRAIL_QUICK.finditer(text):
        start = m.start()
        while start > last and text[start - 1] in " \t":
            start -= 1
        out += (text[last:start], ")")
        last = m.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _tidy(text: str) -> str:
    text = html.unescape(text)  # entities inside <nowiki> or produced by rendering
    text = _SWITCH.sub("", text)
    if "''" in text:
        text = "\n".join(do_quotes(line) if "''" in line else line for line in text.split("\n"))
    text = _EMPTY_PARENS.sub("", text)
    if "(" in text:
        text = _PAREN_LEAD.sub("(", text)
    if ")" in text:
        text = _paren_trail(text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    # Neither crosses a line. A run of 2+ blanks holds "  ", a tab or a no-break space.
    if "  " in text or "\t" in text or "\u00a0" in text:
        text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub("", text)  # _SPACE_PUNCT.sub(r"\1", text): no "  " left
    lines: list[str] = []
    blank = False  # the last line kept is empty: _BLANKS, "\n{3,}" -> "\n\n", line by line
    for line in text.split("\n"):
        line = line.strip()
        if line and line not in ("*", "#", ":", ";", "|", "!"):
            lines.append(line)
            blank = False
        elif not blank:
            lines.append("")
            blank = True
    return "\n".join(lines).strip()
