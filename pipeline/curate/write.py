"""Executor side of writing the curated table: one Parquet file per input part file.

:func:`write_partition` takes one Spark partition's rows (Arrow batches of
:func:`pipeline.contracts.curated.curated_schema` plus ``fidx``, the input part file's
index, sorted by ``fidx`` then input row order), writes each ``fidx``'s rows to an
attempt-named file in fixed-size row groups (so the bytes do not depend on Spark's batch
boundaries) and yields one small stats row per file (:data:`WRITE_STATS_SCHEMA`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.contracts.curated import curated_schema
from pipeline.fs import filesystem

ROW_GROUP_ROWS = 1024
EXAMPLES_PER_RULE = 3
EXAMPLE_CHARS = 300
WRITE_STATS_SCHEMA = pa.schema(
    [
        ("fidx", pa.int64()),
        ("file", pa.string()),
        ("rows", pa.int64()),
        ("counts", pa.string()),
        ("examples", pa.string()),
    ]
)
"""Per written file: its input part index, its URI, rows, and JSON texts of the counts
(``status``, ``rules``, ``languages``) and of up to 3 removed examples per rule."""


def rule_of(reason: str | None) -> str | None:
    """The rule name of a ``curate_reason``: the text before its first colon."""
    return reason.split(":", 1)[0] if reason else None


class _FileStats:
    def __init__(self) -> None:
        self.rows = 0
        self.status: Counter[str] = Counter()
        self.rules: Counter[str] = Counter()
        self.languages: dict[str, Counter[str]] = {}
        self.examples: dict[str, list[dict[str, Any]]] = {}

    def add(self, table: pa.Table) -> None:
        cols = {n: table.column(n).to_pylist() for n in table.column_names}
        for i in range(table.num_rows):
            status = cols["curate_status"][i]
            self.rows += 1
            self.status[status] += 1
            rule = rule_of(cols["curate_reason"][i])
            if rule:
                self.rules[rule] += 1
            if status == "skipped":
                continue
            lang = cols["lang"][i] or "und"
            self.languages.setdefault(lang, Counter())["kept" if status == "ok" else "removed"] += 1
            if status != "ok" and rule:
                ex = self.examples.setdefault(rule, [])
                ex.append(
                    {
                        "key": f"{cols['wiki'][i]}:{cols['page_id'][i]}",
                        "sort": [cols["wiki"][i], cols["page_id"][i]],
                        "title": cols["title"][i],
                        "reason": cols["curate_reason"][i],
                        "text": (cols["text"][i] or "")[:EXAMPLE_CHARS],
                    }
                )
                ex.sort(key=lambda e: (e["sort"], e["reason"]))
                del ex[EXAMPLES_PER_RULE:]

    def row(self, fidx: int, uri: str) -> dict[str, Any]:
        counts = {
            "status": dict(self.status),
            "rules": dict(self.rules),
            "languages": {k: dict(v) for k, v in self.languages.items()},
        }
        return {
            "fidx": fidx,
            "file": uri,
            "rows": self.rows,
            "counts": json.dumps(counts, sort_keys=True),
            "examples": json.dumps(self.examples, sort_keys=True, ensure_ascii=False),
        }


def write_partition(
    batches: Iterable[pa.RecordBatch], folder: str, attempt: str
) -> Iterator[pa.RecordBatch]:
    """Write the rows of one partition, one file per ``fidx``, into ``folder`` (a URI)
    as ``curated-<fidx>-<attempt>.parquet``; yield :data:`WRITE_STATS_SCHEMA` batches."""
    schema = curated_schema()
    fs, base = filesystem(folder)
    current: int | None = None
    writer: pq.ParquetWriter | None = None
    sink: Any = None
    pending: list[pa.Table] = []
    stats = _FileStats()
    uri = ""

    def flush(final: bool) -> None:
        nonlocal pending
        if not pending or writer is None:
            return
        table = pa.concat_tables(pending)
        full = (table.num_rows // ROW_GROUP_ROWS) * ROW_GROUP_ROWS
        cut = table.num_rows if final else full
        for start in range(0, cut, ROW_GROUP_ROWS):
            writer.write_table(table.slice(start, min(ROW_GROUP_ROWS, cut - start)))
        pending = [table.slice(cut)] if cut < table.num_rows else []

    def close() -> Iterator[pa.RecordBatch]:
        nonlocal writer, sink
        if writer is None or current is None:
            return
        flush(True)
        writer.close()
        sink.close()
        writer = sink = None
        yield pa.RecordBatch.from_pylist([stats.row(current, uri)], WRITE_STATS_SCHEMA)

    for batch in batches:
        fidx_col = batch.column("fidx").to_pylist()
        start = 0
        while start < batch.num_rows:
            f = fidx_col[start]
            end = start
            while end < batch.num_rows and fidx_col[end] == f:
                end += 1
            if f != current:
                yield from close()
                current, stats = f, _FileStats()
                name = f"curated-{f:05d}-{attempt}.parquet"
                uri = f"{folder.rstrip('/')}/{name}"
                sink = fs.open_output_stream(f"{base}/{name}", compression=None)
                writer = pq.ParquetWriter(sink, schema, compression="zstd")
            part = pa.Table.from_batches([batch.slice(start, end - start)])
            part = part.select(schema.names).cast(schema)
            stats.add(part)
            pending.append(part)
            flush(False)
            start = end
    yield from close()
