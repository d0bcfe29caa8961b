"""Wikitext → plain text, with mwparserfromhell (its C tokenizer).

:func:`clean_wikitext` is a pure function of the text and :class:`CleanOptions`: it keeps
section headings as their own lines and paragraphs separated by a blank line, turns links
into their label, drops templates, ``<ref>``s, tables, galleries, comments, magic words
and behaviour switches, file/image/media links (in every language the options know) and
interwiki links, lists category links in the result instead of the text, decodes HTML
entities and removes bold/italic quote marks. Only mwparserfromhell's own
``ParserError`` and this module's :class:`CleanTimeout` signal a page that could not be
cleaned; anything else is a bug and propagates.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import mwparserfromhell
from mwparserfromhell import nodes
from mwparserfromhell.parser import ParserError
from mwparserfromhell.parser import tokens as tk
from mwparserfromhell.parser.builder import Builder

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
_QUOTES = re.compile(r"'{2,}")
_EMPTY_PARENS = re.compile(r"\(\s*(?:[,;:]\s*)*\)|\[\s*\]")
_SPACES = re.compile(r"[ \t\u00a0]{2,}")
_SPACE_PUNCT = re.compile(r" +([,.;:!?])")
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
    """Time guard per page, checked while walking the parsed page."""

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
    """Plain text and the category names found in the wikitext."""

    text: str
    categories: list[str]


def _norm(name: str) -> str:
    return name.replace("_", " ").strip().casefold()


def clean_wikitext(wikitext: str, options: CleanOptions | None = None) -> CleanResult:
    """Turn one page's wikitext into plain text.

    Args:
        wikitext: raw wikitext of a page.
        options: namespace names and the time guard; defaults know English and the common
            local names.

    Returns:
        :class:`CleanResult` with ``text`` (headings on their own lines, paragraphs
        separated by one blank line, no markup) and ``categories`` (in order, unique).

    Raises:
        mwparserfromhell.parser.ParserError: the tokenizer failed on this text.
        CleanTimeout: the page took longer than ``options.timeout_s``.
    """
    opts = options or CleanOptions()
    if "&lt;" in wikitext:
        # Markup stored entity-escaped (seen in real dumps re-exported by tools): decode it
        # first, as WikiExtractor does, so that <ref>s and comments are parsed as such.
        wikitext = html.unescape(wikitext)
    # Bold and italic quotes stay text (removed by _tidy): parsed as style tags, an
    # unbalanced '' lets a table or <ref> swallow the rest of the page.
    code = _parse_pruned(wikitext)
    walker = _Walker(opts, time.perf_counter() + opts.timeout_s)
    raw = walker.render(code.nodes)
    return CleanResult(_tidy(_residue(raw, walker)), list(dict.fromkeys(walker.categories)))


# Token pairs whose whole span the walker renders as "" (templates, template arguments,
# comments): dropped from the token list before the tree is built.
_DROP_SPANS = {tk.TemplateOpen: tk.TemplateClose, tk.ArgumentOpen: tk.ArgumentClose,
               tk.CommentStart: tk.CommentEnd}  # fmt: skip
_TAG_ENDS = (tk.TagCloseSelfclose, tk.TagCloseClose)


def _parse_pruned(wikitext: str) -> mwparserfromhell.wikicode.Wikicode:
    """``mwparserfromhell.parse(wikitext, skip_style_tags=True)`` without the subtrees the
    walker drops anyway.

    The tokenizer's output is a flat, balanced token list; templates, arguments, comments
    and :data:`_DROP_TAGS` tags (``<ref>``, tables, galleries…) are cut out of it before
    :class:`~mwparserfromhell.parser.builder.Builder` turns it into nodes. Building those
    subtrees in Python was most of the cleaning time (templates and refs are a large share
    of an article's tokens); the rendered text is the same, since the walker renders each
    of them as "".

    Raises:
        mwparserfromhell.parser.ParserError: the tokenizer or builder failed.
    """
    toks = _Tokenizer().tokenize(wikitext, 0, True)
    kept: list[tk.Token] = []
    i, n = 0, len(toks)
    while i < n:
        t = toks[i]
        kind = type(t)
        close = _DROP_SPANS.get(kind)
        if close is None and kind is tk.TagOpenOpen and i + 1 < n:
            name = toks[i + 1]
            if type(name) is tk.Text and name.text.strip().lower() in _DROP_TAGS:
                close = _TAG_ENDS
        if close is None:
            kept.append(t)
            i += 1
            continue
        depth, i = 1, i + 1  # skip to the matching close token
        while i < n and depth:
            k = type(toks[i])
            if k is kind:
                depth += 1
            elif k is close or (close is _TAG_ENDS and k in _TAG_ENDS):
                depth -= 1
            i += 1
        if depth:  # unbalanced: let the builder see (and reject) the original list
            return Builder().build(toks)
    return Builder().build(kept)


class _Walker:
    def __init__(self, opts: CleanOptions, deadline: float) -> None:
        self.opts, self.deadline = opts, deadline
        self.categories: list[str] = []
        self.count = 0

    def render(self, items: Iterable[nodes.Node]) -> str:
        return "".join(self.node(n) for n in items)

    def node(self, n: nodes.Node) -> str:
        self.count += 1
        if self.count % 256 == 0 and time.perf_counter() > self.deadline:
            raise CleanTimeout(f"cleaning took longer than {self.opts.timeout_s:g}s")
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
        # Template, Argument, Comment and anything else: not prose.
        return ""

    def wikilink(self, n: nodes.Wikilink) -> str:
        target = str(n.title).strip()
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
        if sep and n.text is not None and _IMAGE_OPTION.match(str(n.text).split("|", 1)[0]):
            return ""
        if n.text is not None:
            return self.render(n.text.nodes)
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
_REF = re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref\s*>", re.IGNORECASE | re.DOTALL)
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
    while "{{" in text:
        text, n = _INNER_TEMPLATE.subn("", text)
        if not n:
            break
    while "[[" in text:
        text, n = _INNER_LINK.subn(lambda m: walker.wikilink_text(m.group(1)), text)
        if not n:
            break
    if "|" in text:
        text = _UNCLOSED_MEDIA.sub("", text)  # "[[File:x.jpg|thumb|caption" never closed
    if "<" in text:
        text = _HTML_TAG.sub("", text)
    return _STRAY.sub("", text)


def _drop_table_lines(text: str) -> str:
    out, depth = [], 0
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


def _tidy(text: str) -> str:
    text = html.unescape(text)  # entities inside <nowiki> or produced by rendering
    text = _SWITCH.sub("", text)
    text = _QUOTES.sub("", text)
    text = _EMPTY_PARENS.sub("", text)
    text = _SPACE_PUNCT.sub(r"\1", _SPACES.sub(" ", text))  # neither crosses a line
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        if line in ("*", "#", ":", ";", "|", "!"):
            line = ""
        lines.append(line)
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()
