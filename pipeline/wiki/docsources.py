"""Text corpora as parse inputs: JSON Lines (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``) and
Parquet files with a text column, read into the same ``pages/`` table as dumps.

One row per input document (a JSON line, a Parquet row), whatever happened to it:

- ``text``: the ``text_field`` value, as is (corpora are already plain text); status
  ``ok``, ``empty`` (missing, null or blank), ``too_large`` (over ``max_wikitext_bytes``)
  or ``parse_error`` (a line that is not a JSON object, a text that is not a string).
- ``page_id``: the ``id_field`` value when it is an integer (or a string of digits) in
  int64, else a stable 63-bit hash of it (first 8 bytes of SHA-256, top bit cleared); a
  document without an id gets the hash of its text (of its raw line for a bad line).
- ``wiki``: the file name up to its first dot (``corpus.jsonl.gz`` -> ``corpus``),
  ``ns`` 0, ``title`` from a ``title`` field when it is a string, ``content_model``
  ``text``, ``source`` the file name; revision and timestamp are null.

Tasks: a plain ``.jsonl`` is split by byte ranges of at least :data:`MIN_SPLIT_BYTES` (a
task owns the lines that start in its range, Hadoop's ``LineRecordReader`` rule); a
Parquet file by row groups; compressed JSON Lines are one task per file (neither gzip nor
zstd frames can be entered mid-way without an index). Pure Python and pyarrow: no Spark.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.contracts.pages import PAGES_SCHEMA
from pipeline.fs import filesystem, join_uri
from pipeline.wiki.xmlpages import DumpError

SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".parquet")
KINDS = ("jsonl", "parquet")
_CODECS = {".gz": "gzip", ".zst": "zstd"}
CHUNK = 1 << 20
MIN_SPLIT_BYTES = 64 << 10
"""Smallest byte range of a ``.jsonl`` task (tests lower it)."""
BATCH_ROWS = 1000  # rows per Parquet batch read and per row group written
_INT64_MAX = (1 << 63) - 1


def is_document_file(name: str) -> bool:
    """True for a JSON Lines or Parquet corpus file name."""
    return name.endswith(SUFFIXES)


def stable_id(value: Any) -> int:
    """``page_id`` of a document id or text: the int itself when it fits int64 and is not
    negative, else the first 8 bytes of SHA-256 of its string form (JSON for non-strings)
    as a non-negative int64."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _INT64_MAX:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    raw = value if isinstance(value, bytes) else None
    if raw is None:
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        raw = text.encode("utf-8")
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "big") >> 1


def plan_documents(
    uri: str, name: str, size: int, split_bytes: int, text_field: str, id_field: str
) -> list[dict[str, Any]]:
    """Tasks for one corpus file (task dicts as in :mod:`pipeline.wiki.sources`, plus
    ``fields``: ``[text_field, id_field]``; ``start``/``end`` are bytes for JSON Lines,
    row-group numbers for Parquet).

    Raises:
        DumpError: a Parquet file that is unreadable or has no ``text_field`` column.
    """
    base: dict[str, Any] = {"task": -1, "source": uri, "name": name, "siteinfo": None}
    base["expected_pages"] = None
    base["fields"] = [text_field, id_field]
    if name.endswith(".parquet"):
        fs, path = filesystem(uri)
        try:
            with fs.open_input_file(path) as f:
                meta = pq.ParquetFile(f).metadata
        except (OSError, pa.ArrowInvalid) as e:
            raise DumpError(uri, f"not a readable Parquet file ({e})") from None
        columns = set(meta.schema.to_arrow_schema().names)
        if text_field not in columns:
            raise DumpError(
                uri,
                f"no column {text_field!r} (columns: {', '.join(sorted(columns))}); "
                "set parse.text_field",
            )
        tasks: list[dict[str, Any]] = []
        first, acc = 0, 0
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            acc += sum(rg.column(c).total_compressed_size for c in range(rg.num_columns))
            if acc >= split_bytes or g == meta.num_row_groups - 1:
                tasks.append({**base, "kind": "parquet", "start": first, "end": g + 1})
                tasks[-1]["bytes"] = acc
                first, acc = g + 1, 0
        if not tasks:
            tasks = [{**base, "kind": "parquet", "start": 0, "end": 0, "bytes": 0}]
        tasks[-1]["bytes"] += size - sum(t["bytes"] for t in tasks)  # footer, headers
        return tasks
    split = max(split_bytes, MIN_SPLIT_BYTES)
    if name.endswith(".jsonl") and size > split:
        bounds = [*range(0, size, split), size]
        return [
            {**base, "kind": "jsonl", "start": a, "end": b}
            for a, b in zip(bounds, bounds[1:], strict=False)
        ]
    return [{**base, "kind": "jsonl", "start": 0, "end": None}]


def _lines(task: dict[str, Any], pos: list[int]) -> Iterator[bytes]:
    """The raw lines (without newline) the task owns; ``pos[0]`` tracks compressed bytes."""
    fs, path = filesystem(task["source"])
    codec = _CODECS.get(task["name"][task["name"].rfind(".") :])
    if codec is not None or task["end"] is None:
        with fs.open_input_stream(path, compression=codec) as f:
            rest = b""
            while data := f.read(CHUNK):
                *full, rest = (rest + data).split(b"\n")
                yield from full
            if rest:
                yield rest
        pos[0] = fs.get_file_info(path).size
        return
    start, end = task["start"], task["end"]
    with fs.open_input_file(path) as f:
        size = f.size()
        at = max(start - 1, 0)  # a line starting at `start` follows a newline at start-1
        rest, skipping = b"", start > 0
        while at < size:
            data = f.read_at(min(CHUNK, size - at), at)
            at += len(data)
            buf = rest + data
            line_at = at - len(buf)  # file offset of buf[0]
            if skipping:
                nl = buf.find(b"\n")
                if nl == -1:
                    rest = b""
                    continue
                buf, line_at, skipping = buf[nl + 1 :], line_at + nl + 1, False
            *full, rest = buf.split(b"\n")
            for line in full:
                if line_at >= end:
                    pos[0] = end
                    return
                yield line
                line_at += len(line) + 1
            if line_at >= end:
                pos[0] = end
                return
        if rest and not skipping and at - len(rest) < end:
            yield rest
        pos[0] = end


def _row(doc: Any, error: str | None, raw: bytes, name: str, fields, max_bytes: int) -> dict:
    text_field, id_field = fields
    text = doc.get(text_field) if isinstance(doc, dict) else None
    if error is None and not isinstance(doc, dict):
        error = f"a JSON line must be an object, got {type(doc).__name__}"
    if error is None and text is not None and not isinstance(text, str):
        error = f"field {text_field!r} is {type(text).__name__}, not a string"
    ident = doc.get(id_field) if isinstance(doc, dict) else None
    title = doc.get("title") if isinstance(doc, dict) else None
    nbytes = len(text.encode("utf-8")) if isinstance(text, str) else 0
    if error is not None:
        status, text = "parse_error", None
    elif text is None or not text.strip():
        status, text = "empty", None
    elif nbytes > max_bytes:
        status, text = "too_large", None
    else:
        status = "ok"
    key = ident if ident is not None else (raw if error is not None else (text or ""))
    return {
        "wiki": name.split(".", 1)[0],
        "page_id": stable_id(key),
        "ns": 0,
        "title": title if isinstance(title, str) else None,
        "redirect_to": None,
        "revision_id": None,
        "timestamp": None,
        "content_model": "text",
        "wikitext_bytes": nbytes,
        "text": text,
        "categories": [],
        "status": status,
        "error": error,
        "source": name,
    }


def iter_documents(task: dict[str, Any], max_bytes: int, pos: list[int]) -> Iterator[dict]:
    """Yield the pages-table row of every document of ``task``.

    Raises:
        DumpError: unreadable or corrupt input (bad compression, not Parquet).
    """
    name, fields = task["name"], task["fields"]
    try:
        if task["kind"] == "parquet":
            fs, path = filesystem(task["source"])
            with fs.open_input_file(path) as f:
                pf = pq.ParquetFile(f)
                names = set(pf.schema_arrow.names)
                cols = [c for c in (*fields, "title") if c in names]
                groups = list(range(task["start"], task["end"]))
                for batch in pf.iter_batches(BATCH_ROWS, row_groups=groups, columns=cols):
                    for doc in batch.to_pylist():
                        yield _row(doc, None, b"", name, fields, max_bytes)
            pos[0] = task["end"]
            return
        for line in _lines(task, pos):
            if not line.strip():
                continue  # blank lines are not documents
            try:
                doc, error = json.loads(line), None
            except ValueError as e:
                doc, error = None, f"not JSON: {e}"
            yield _row(doc, error, line, name, fields, max_bytes)
    except (OSError, EOFError, pa.ArrowInvalid) as e:
        raise DumpError(task["source"], f"unreadable or corrupt input ({e})") from None


def run_task(task: dict[str, Any], opts: Any, out_dir: str, attempt: str) -> Any:
    """Run one corpus task; write ``out_dir/part-<task>-<attempt>.parquet`` of the pages
    schema. ``opts`` is :class:`pipeline.wiki.pages.ParseOptions` (``max_wikitext_bytes``,
    ``on_damaged``). Returns :class:`pipeline.wiki.pages.TaskStats` (``pages`` =
    documents read).

    Raises:
        DumpError: unreadable input with ``on_damaged=fail``.
    """
    from pipeline.wiki.pages import TaskStats  # pages imports sources, which imports us

    started = time.perf_counter()
    stats = TaskStats(task=task["task"], source=task["source"])
    fs, path = filesystem(out_dir)
    file_path = f"{path}/part-{task['task']:05d}-{attempt}.parquet"
    pos = [task["start"] or 0]
    with (
        fs.open_output_stream(file_path, compression=None) as sink,
        pq.ParquetWriter(sink, PAGES_SCHEMA, compression="zstd") as writer,
    ):
        batch: list[dict] = []
        try:
            for row in iter_documents(task, opts.max_wikitext_bytes, pos):
                batch.append(row)
                stats.status[row["status"]] += 1
                stats.namespaces[0] += 1
                stats.uncompressed_bytes += row["wikitext_bytes"]
                if len(batch) >= BATCH_ROWS:
                    writer.write_table(pa.Table.from_pylist(batch, PAGES_SCHEMA))
                    stats.rows += len(batch)
                    batch = []
        except DumpError as e:
            if opts.on_damaged != "keep":
                raise
            stats.damaged = {
                "file": task["source"],
                "position": e.position,
                "offset": e.offset,
                "reason": e.reason,
                "complete_pages_before": stats.rows + len(batch),
                "cut_off_page": False,
            }
        writer.write_table(pa.Table.from_pylist(batch, PAGES_SCHEMA))
        stats.rows += len(batch)
    stats.pages = stats.rows
    if task["kind"] == "jsonl":
        stats.bytes_read = pos[0] - (task["start"] or 0)
    else:
        stats.bytes_read = task["bytes"]
    stats.file = join_uri(out_dir, file_path)
    stats.seconds = time.perf_counter() - started
    return stats
