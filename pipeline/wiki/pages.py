"""One parse task: read its pages, give each a status, clean the kept ones, write Parquet.

The pages schema is the ``pages/`` contract of DESIGN.md. Everything here is plain Python
and pyarrow; :mod:`pipeline.spark.parse_stage` ships :func:`run_task` to executors.
Every ``<page>`` read becomes exactly one row, whatever its status.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.contracts.pages import PAGES_SCHEMA
from pipeline.fs import filesystem, join_uri
from pipeline.wiki import guard, sources
from pipeline.wiki.clean import CleanOptions
from pipeline.wiki.xmlpages import DumpError, Page, PageReader, SiteInfo

_WIKI_FROM_NAME = re.compile(r"^([a-z][a-z0-9_]*?wik[a-z]+)-")
CHUNK = 1 << 20  # bytes fed to the XML parser at a time
ROWS_PER_GROUP = 2000  # Parquet row group size; bounds the rows held in memory
PENDING_ROWS = 1000  # most rows held back while their batch waits to be cleaned
BATCH_CHARS = 1 << 18
"""Characters of wikitext per batch of pages cleaned (or fewer pages: at most
:data:`pipeline.wiki.guard.BATCH_PAGES`). The task reads and writes while the page worker
cleans the batch before, so only the first batch's reading and the last one's cleaning
are not overlapped: small batches (about 5 English article pages, 50 ms of cleaning)
keep that short, against about 0.1 ms of the task's CPU per round trip."""


@dataclass(frozen=True)
class ParseOptions:
    """Plain-value options of a parse task (shipped to executors).

    ``parse_timeout_s`` is CPU seconds per page; ``page_memory_bytes`` the memory one
    page's cleaning may add (see :class:`pipeline.wiki.guard.PageWorker`). With
    ``page_worker`` false (or where ``fork`` is missing) pages are cleaned in-process:
    only the pre-scan and the cleaner's own time guard, which the C tokenizer ignores.
    """

    namespaces: tuple[int, ...] = (0,)
    max_wikitext_bytes: int = 4 << 20
    parse_timeout_s: float = 30.0
    on_damaged: str = "fail"
    page_memory_bytes: int = 1 << 30
    page_worker: bool = True


@dataclass
class TaskStats:
    """What one task did; small, returned to the driver and summed into _stats.json."""

    task: int
    source: str
    pages: int = 0
    rows: int = 0
    bytes_read: int = 0
    uncompressed_bytes: int = 0
    status: Counter = field(default_factory=Counter)
    namespaces: Counter = field(default_factory=Counter)
    damaged: dict[str, Any] | None = None
    seconds: float = 0.0
    file: str | None = None
    templates_rendered: Counter = field(default_factory=Counter)
    """Templates rendered as text by the cleaner, by normalised name (issue 14)."""
    templates_dropped: Counter = field(default_factory=Counter)
    """Templates the cleaner dropped, by normalised name."""


def wiki_name(siteinfo: SiteInfo, source: str) -> str:
    """Database name from ``<siteinfo><dbname>``, else from the file name, else its stem."""
    if siteinfo.dbname:
        return siteinfo.dbname
    name = source.rsplit("/", 1)[-1]
    m = _WIKI_FROM_NAME.match(name)
    return m.group(1) if m else name.split(".", 1)[0]


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def page_row(
    page: Page,
    wiki: str,
    source: str,
    opts: ParseOptions,
    clean: CleanOptions,
    worker: guard.PageWorker | None = None,
):
    """Return the pages-table row (a dict) of one page; only cleaning errors are caught.

    Status order: ``namespace`` (not kept) → ``redirect`` → ``non_wikitext`` → ``empty`` →
    ``too_large`` → ``parse_error`` when :func:`pipeline.wiki.guard.prescan` rejects the
    markup → cleaned (in ``worker`` when given, else in-process): ``ok``, or
    ``parse_error`` on mwparserfromhell's ``ParserError``, the time guard, recursion too
    deep, or the worker's CPU or memory limit; ``empty`` if nothing is left. One page per
    call (a worker round trip each): :func:`iter_rows` cleans pages in batches instead.
    """
    row, raw = _row(page, wiki, source, opts)
    if raw is not None and worker is not None:
        _set_cleaned(row, worker.clean(raw, clean, row["title"]))
    elif raw is not None:
        _set_cleaned(row, guard.clean_or_error(raw, clean, row["title"]))
    return row


def _row(page: Page, wiki: str, source: str, opts: ParseOptions) -> tuple[dict, str | None]:
    """The row of ``page`` as :func:`page_row` gives it, and the wikitext left to clean:
    None when the status is settled without cleaning (then the row is final)."""
    raw = page.text or ""
    nbytes = len(raw.encode("utf-8"))
    error, todo = None, None
    if page.ns not in opts.namespaces:
        status = "namespace"
    elif page.redirect_to is not None:
        status = "redirect"
    elif page.content_model not in (None, "wikitext"):
        status = "non_wikitext"
    elif not raw.strip():
        status = "empty"
    elif nbytes > opts.max_wikitext_bytes:
        status = "too_large"
    elif (error := guard.prescan(raw)) is not None:
        status = "parse_error"
    else:
        status, todo = "ok", raw  # settled by _set_cleaned
    return {
        "wiki": wiki,
        "page_id": page.page_id,
        "ns": page.ns,
        "title": page.title,
        "redirect_to": page.redirect_to,
        "revision_id": page.revision_id,
        "timestamp": _timestamp(page.timestamp),
        "content_model": page.content_model,
        "wikitext_bytes": nbytes,
        "text": None,
        "categories": [],
        "status": status,
        "error": error,
        "source": source,
    }, todo


def _set_cleaned(row: dict, cleaned: guard.Cleaned, stats: TaskStats | None = None) -> dict:
    """Fill ``row``'s text, categories, status and error from cleaning's ``(result, error)``;
    add its template counts to ``stats`` when given."""
    result, error = cleaned
    if error is not None or result is None:
        row["status"], row["error"] = "parse_error", error or "no cleaning result"
    else:
        row["text"], row["categories"] = result.text or None, result.categories
        row["status"] = "ok" if result.text else "empty"
        if stats is not None:
            stats.templates_rendered.update(result.templates_rendered)
            stats.templates_dropped.update(result.templates_dropped)
    return row


def _clean_rows(
    pending: list[tuple[dict, str | None]],
    clean: CleanOptions | None,
    worker: guard.PageWorker | None,
    stats: TaskStats | None = None,
) -> Callable[[], list[dict]]:
    """Start cleaning the pages of ``pending`` (rows from :func:`_row`) as one batch: with
    ``worker``, one round trip, submitted now (:meth:`~pipeline.wiki.guard.PageWorker.submit`);
    else in-process, one page at a time, when called. Returns the function giving the
    final rows (in order; call it once, before the next batch starts). ``clean`` is None
    only before the first page, when ``pending`` is empty. Template counts go to ``stats``
    when given."""
    todo = [(raw, row["title"]) for row, raw in pending if raw is not None]
    if not todo or clean is None:
        return lambda: [row for row, _ in pending]
    if worker is not None:
        texts, titles = zip(*todo, strict=True)
        worker.submit(texts, clean, titles)
        results: Callable[[], Iterable[guard.Cleaned]] = worker.collect
    else:
        options = clean  # bound for the closure (mypy: not None)
        results = lambda: (guard.clean_or_error(raw, options, title) for raw, title in todo)  # noqa: E731

    def rows() -> list[dict]:
        cleaned = iter(results())
        return [
            row if raw is None else _set_cleaned(row, next(cleaned), stats) for row, raw in pending
        ]

    return rows


def iter_rows(task: dict[str, Any], opts: ParseOptions, stats: TaskStats) -> Iterator[dict]:
    """Yield the row of every page of ``task``, updating ``stats`` as it goes.

    Pages to clean go in batches (up to :data:`pipeline.wiki.guard.BATCH_PAGES` pages or
    :data:`BATCH_CHARS` characters of wikitext, rows held back at most
    :data:`PENDING_ROWS`): the rows come out in input order, a batch at a time. With the
    page worker, a batch is cleaned while the next is read, and its rows are yielded
    while the next is cleaned.

    Raises:
        DumpError: damaged input when ``opts.on_damaged == "fail"``, or a multistream
            range whose page count differs from the index.
    """
    source = task["source"]
    reader = PageReader(source, fragment=task["kind"] != "whole")
    if task["siteinfo"]:
        reader.siteinfo = SiteInfo(**task["siteinfo"])
        reader.siteinfo.namespaces = {int(k): v for k, v in reader.siteinfo.namespaces.items()}
    clean: CleanOptions | None = None
    wiki = ""
    worker = None
    pending: list[tuple[dict, str | None]] = []  # rows waiting for their batch's cleaning
    cleaning: Callable[[], list[dict]] = list  # the rows of the batch being cleaned
    to_clean = chars = 0  # pages and characters of wikitext in pending left to clean
    if opts.page_worker and guard.PageWorker.available():  # forks on the first page cleaned
        worker = guard.PageWorker(opts.parse_timeout_s, opts.page_memory_bytes)
    closing = worker or contextlib.nullcontext()  # no cleaning process outlives the task
    with closing, sources.open_task(task) as (stream, compressed_pos):
        reader.origin = getattr(stream, "origin", None)  # a split task's part, for errors
        try:
            while True:
                try:
                    data = stream.read(CHUNK)
                except (OSError, EOFError) as e:
                    raise DumpError(
                        source,
                        f"corrupt compressed data ({e})",
                        f"compressed byte {compressed_pos()}",
                    ) from None
                stats.uncompressed_bytes += len(data)
                pages = reader.feed(data) if data else reader.close()
                if pages and clean is None:
                    clean = CleanOptions.for_namespaces(
                        reader.siteinfo.namespaces, opts.parse_timeout_s
                    )
                    wiki = wiki_name(reader.siteinfo, source)
                for page in pages:
                    row, raw = _row(page, wiki, task["name"], opts)
                    pending.append((row, raw))
                    if raw is not None:
                        to_clean, chars = to_clean + 1, chars + len(raw)
                    if (
                        to_clean >= guard.BATCH_PAGES
                        or chars >= BATCH_CHARS
                        or len(pending) >= PENDING_ROWS
                    ):
                        done = cleaning()
                        cleaning = _clean_rows(pending, clean, worker, stats)
                        yield from done
                        pending, to_clean, chars = [], 0, 0
                if not data:
                    break
        except DumpError as e:
            if opts.on_damaged != "keep":
                raise
            stats.damaged = {
                "file": source,
                "position": e.position,
                "offset": e.offset,
                "reason": e.reason,
                "complete_pages_before": reader.pages_completed,
                "cut_off_page": reader.pages_started > reader.pages_completed,
            }
        done = cleaning()
        last = _clean_rows(pending, clean, worker, stats)  # the last batch (to any damage)
        yield from done
        yield from last()
        stats.bytes_read = compressed_pos() - task["start"]
    # Pages read = complete <page> elements; a page cut off by damage is in stats.damaged.
    stats.pages = reader.pages_completed
    expected = task["expected_pages"]
    if expected is not None and stats.damaged is None and reader.pages_started != expected:
        raise DumpError(
            source,
            f"bytes {task['start']}-{task['end'] or 'end'} hold {reader.pages_started} pages "
            f"but the multistream index lists {expected}: the index does not match the dump",
        )


def run_task(task: dict[str, Any], opts: ParseOptions, out_dir: str, attempt: str) -> TaskStats:
    """Run one task and write its rows to ``out_dir/part-<task>-<attempt>.parquet``.

    Returns the task's :class:`TaskStats`; ``file`` is the written file's URI. A failed
    task leaves at most an attempt file, which the driver never publishes.
    """
    started = time.perf_counter()
    stats = TaskStats(task=task["task"], source=task["source"])
    fs, path = filesystem(out_dir)
    file_path = f"{path}/part-{task['task']:05d}-{attempt}.parquet"
    with (
        fs.open_output_stream(file_path, compression=None) as sink,
        pq.ParquetWriter(sink, PAGES_SCHEMA, compression="zstd") as writer,
    ):
        batch: list[dict] = []
        for row in iter_rows(task, opts, stats):
            batch.append(row)
            stats.status[row["status"]] += 1
            stats.namespaces[row["ns"]] += 1
            if len(batch) >= ROWS_PER_GROUP:
                writer.write_table(pa.Table.from_pylist(batch, PAGES_SCHEMA))
                stats.rows += len(batch)
                batch = []
        writer.write_table(pa.Table.from_pylist(batch, PAGES_SCHEMA))
        stats.rows += len(batch)
    stats.file = join_uri(out_dir, file_path)
    stats.seconds = time.perf_counter() - started
    return stats
