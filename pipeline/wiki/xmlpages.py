"""Streaming, secure reader of MediaWiki XML export (schemas 0.8-0.11) into pages.

An expat parser is fed bytes incrementally and hands back each ``<page>`` when its end tag
arrives, so memory is bounded by one page (plus the text of its kept revision), never by
the dump. DTDs, entity declarations and external entities are refused, never expanded or
fetched. The encoding is the one the XML declaration or BOM names (expat: UTF-8, UTF-16,
ISO-8859-1, US-ASCII).

Format reference: https://www.mediawiki.org/xml/export-0.11.xsd (``<mediawiki>`` →
``<siteinfo>`` + ``<page>``*; a page has ``title``, ``ns``, ``id``, optional
``redirect title=…``, and one or more ``<revision>`` with ``id``, ``timestamp``,
``model``, ``format``, ``text``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat


class DumpError(ValueError):
    """Bad dump input, with the file and the position where it was found.

    Attributes:
        source: the input's name (file path or URI).
        position: human-readable position, e.g. ``"line 1001, uncompressed byte 74372"``.
        offset: uncompressed byte offset of the problem, or None.
    """

    def __init__(self, source: str, message: str, position: str = "", offset: int | None = None):
        self.source, self.position, self.offset, self.reason = source, position, offset, message
        where = f" at {position}" if position else ""
        super().__init__(f"{source}{where}: {message}")


@dataclass
class SiteInfo:
    """The ``<siteinfo>`` header: database name and namespace names (key → name)."""

    dbname: str | None = None
    sitename: str | None = None
    base: str | None = None
    namespaces: dict[int, str] = field(default_factory=dict)


@dataclass
class Page:
    """One ``<page>`` with its latest revision (by timestamp, then revision id).

    ``text`` is the raw wikitext, or None when the dump has none (stub dumps, deleted or
    suppressed revisions). ``timestamp`` is the ISO 8601 UTC string of the dump.
    """

    page_id: int | None = None
    ns: int | None = None
    title: str | None = None
    redirect_to: str | None = None
    revision_id: int | None = None
    timestamp: str | None = None
    content_model: str | None = None
    text: str | None = None
    revisions: int = 0


# Elements whose character data we keep, by the element's parent.
_PAGE_FIELDS = {"title", "ns", "id"}
_REV_FIELDS = {"id", "timestamp", "model", "text"}
_SITE_FIELDS = {"dbname", "sitename", "base"}


class PageReader:
    """Incremental parser: ``feed(bytes)`` returns the pages completed by those bytes.

    Args:
        source: name of the input, used in errors.
        fragment: the bytes are a run of ``<page>`` elements without the ``<mediawiki>``
            root (a multistream byte range); a synthetic root is added around them.

    Raises (from :meth:`feed` and :meth:`close`):
        DumpError: malformed or truncated XML, a DTD or entity declaration, or a page
            without ``<id>``/``<ns>``/``<title>``; the message names the position.
    """

    def __init__(self, source: str, *, fragment: bool = False) -> None:
        self.source = source
        self.siteinfo = SiteInfo()
        self.pages_started = 0
        self.pages_completed = 0
        self.bytes_fed = 0
        self._fragment = fragment
        self.origin: Callable[[], str] | None = None
        """Where the fed bytes come from when not the input's start (a split task's
        part), for error positions; set by the task."""
        self._root_closed = False
        self._done: list[Page] = []
        self._stack: list[str] = []
        self._page: Page | None = None
        self._rev: dict[str, Any] | None = None
        self._text: list[str] | None = None
        self._text_deleted = False
        self._ns_key: str | None = None
        self._p = p = expat.ParserCreate()
        p.buffer_text = True
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartDoctypeDeclHandler = self._refuse_dtd
        p.EntityDeclHandler = self._refuse_entity
        p.ExternalEntityRefHandler = self._refuse_external
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._chars
        if fragment:
            self._feed(b"<mediawiki>")
            self.bytes_fed = 0

    # -- public ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Page]:
        """Parse ``data`` (the next bytes of the input); return the pages it completed."""
        self.bytes_fed += len(data)
        self._feed(data)
        done, self._done = self._done, []
        return done

    def close(self) -> list[Page]:
        """Signal the end of input; return the last pages. Raises DumpError if truncated."""
        if self._fragment and not self._root_closed:
            if len(self._stack) > 1:  # the synthetic root would hide the real cause
                raise self._here(
                    f"input ends inside an element (<{self._stack[-1]}>): "
                    "the file is truncated or corrupt"
                )
            self._feed(b"</mediawiki>")
        try:
            self._p.Parse(b"", True)
        except expat.ExpatError as e:
            raise self._error(e) from None
        done, self._done = self._done, []
        return done

    def position(self) -> tuple[int, int]:
        """Current (line, uncompressed byte offset) of the parser in the input."""
        return self._p.CurrentLineNumber, self._p.CurrentByteIndex

    # -- internals ------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        try:
            self._p.Parse(data, False)
        except expat.ExpatError as e:
            raise self._error(e) from None

    def _error(self, e: expat.ExpatError) -> DumpError:
        line, offset = e.lineno, self._p.ErrorByteIndex
        if self._fragment:
            offset -= len(b"<mediawiki>")
        msg = expat.ErrorString(e.code)
        if msg == "no element found" or "unclosed token" in msg:
            msg = f"input ends inside an element ({msg}): the file is truncated or corrupt"
        return DumpError(self.source, msg, self._where(line, offset), offset)

    def _here(self, message: str) -> DumpError:
        line, offset = self.position()
        if self._fragment:
            offset -= len(b"<mediawiki>")
        return DumpError(self.source, message, self._where(line, offset), offset)

    def _where(self, line: int, offset: int) -> str:
        where = f"line {line}, uncompressed byte {offset}"
        return f"{where} of {self.origin()}" if self.origin is not None else where

    def _refuse_dtd(self, *args: Any) -> None:
        raise self._here("a DOCTYPE/DTD is not allowed in a dump; refusing to process it")

    def _refuse_entity(self, name: str, *args: Any) -> None:
        raise self._here(f"entity declaration '{name}' is not allowed; refusing to expand it")

    def _refuse_external(self, *args: Any) -> int:
        raise self._here("external entity reference is not allowed; refusing to fetch it")

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        stack = self._stack
        parent = stack[-1] if stack else None
        stack.append(name)
        if name == "page" and parent == "mediawiki":
            self.pages_started += 1
            self._page = Page()
        elif self._page is not None:
            if name == "revision" and parent == "page":
                self._rev = {}
            elif name == "redirect" and parent == "page":
                self._page.redirect_to = attrs.get("title")
            elif parent == "page" and name in _PAGE_FIELDS:
                self._text = []
            elif parent == "revision" and self._rev is not None and name in _REV_FIELDS:
                self._text = []
                if name == "text":
                    self._text_deleted = "deleted" in attrs
        elif parent == "siteinfo" and name in _SITE_FIELDS:
            self._text = []
        elif parent == "namespaces" and name == "namespace":
            self._text = []
            self._ns_key = attrs.get("key")

    def _chars(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def _end(self, name: str) -> None:
        stack = self._stack
        stack.pop()
        parent = stack[-1] if stack else None
        value = "".join(self._text) if self._text is not None else None
        self._text = None
        page = self._page
        if name == "mediawiki" and not stack:
            self._root_closed = True
        elif name == "page" and parent == "mediawiki" and page is not None:
            self._finish_page(page)
            self._page = None
        elif page is not None and parent == "page" and name in _PAGE_FIELDS:
            if name == "title":
                page.title = value
            else:
                setattr(page, "ns" if name == "ns" else "page_id", self._int(value, name))
        elif page is not None and name == "revision" and parent == "page":
            self._keep_latest(page, self._rev or {})
            self._rev = None
        elif page is not None and parent == "revision" and self._rev is not None:
            if name == "text":
                self._rev["text"] = None if self._text_deleted else value
            elif name in _REV_FIELDS:
                self._rev[name] = value
        elif parent == "siteinfo" and name in _SITE_FIELDS:
            setattr(self.siteinfo, name, value)
        elif name == "namespace" and parent == "namespaces" and self._ns_key is not None:
            self.siteinfo.namespaces[int(self._ns_key)] = value or ""

    def _int(self, value: str | None, name: str) -> int:
        try:
            return int((value or "").strip())
        except ValueError:
            raise self._here(f"<{name}> is not an integer: {value!r}") from None

    def _keep_latest(self, page: Page, rev: dict[str, Any]) -> None:
        page.revisions += 1
        rev_id = self._int(rev["id"], "id") if rev.get("id") else None
        ts = (rev.get("timestamp") or "").strip() or None
        # ISO 8601 UTC strings compare in time order; ties go to the higher revision id.
        key = (ts or "", rev_id or -1)
        if page.revision_id is not None and key < (page.timestamp or "", page.revision_id):
            return
        page.revision_id, page.timestamp = rev_id, ts
        page.content_model = (rev.get("model") or "").strip() or None
        page.text = rev.get("text")

    def _finish_page(self, page: Page) -> None:
        tags = {"page_id": "id", "ns": "ns", "title": "title"}
        missing = [tag for n, tag in tags.items() if getattr(page, n) is None]
        if missing:
            raise self._here(f"<page> #{self.pages_started} has no <{'>, <'.join(missing)}>")
        self.pages_completed += 1
        self._done.append(page)
