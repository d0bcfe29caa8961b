"""Per-partition work of the featurise stage: tokenise, pack into rows, write shard files.

:func:`pack_partition` is the function Spark runs through ``mapInArrow`` on each partition
(it is plain Python and pyarrow, tested without Spark). Its input is sorted by
``(split, bucket, wiki, page_id)``; every ``(split, bucket)`` lies wholly in one partition.
Per bucket, the documents' tokens (each followed by ``<|endoftext|>``) are concatenated
and cut into rows of ``block_size + 1`` tokens; the tail shorter than a row is dropped and
counted. A bucket's rows go to one or more shard *pieces* of at most ``shard_bytes``.
Files are named by the task attempt; the driver renames them (see
:mod:`pipeline.spark.featurise_stage`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipeline.fs import filesystem, join_uri
from pipeline.shards.format import ShardWriter
from pipeline.shards.tokenize import document, encode_documents, load_tokenizer

STATS_SCHEMA = pa.schema(
    [
        ("split", pa.string()),
        ("bucket", pa.int64()),
        ("piece", pa.int32()),
        ("file", pa.string()),
        ("sequences", pa.int64()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("documents", pa.int64()),
        ("document_tokens", pa.int64()),
        ("dropped_tokens", pa.int64()),
    ]
)
ENCODE_BATCH_BYTES = 4 << 20  # text handed to one encode_batch call


@dataclass(frozen=True)
class PackSpec:
    """Plain values a featurise task needs (shipped to executors with the function).

    Attributes:
        tokenizer_json: the ``tokenizer.json`` content.
        eot_id: id of ``<|endoftext|>``, appended after every document.
        block_size: rows hold ``block_size + 1`` tokens.
        dtype: ``uint16`` or ``uint32``.
        shard_bytes: most token bytes in one shard piece (at least one row).
        out_dir: URI of the folder the task writes its attempt files into.
    """

    tokenizer_json: str
    eot_id: int
    block_size: int
    dtype: str
    shard_bytes: int
    out_dir: str

    @property
    def rows_per_piece(self) -> int:
        row_bytes = (self.block_size + 1) * np.dtype(self.dtype).itemsize
        return max(1, self.shard_bytes // row_bytes)


class BucketPacker:
    """Pack the documents of one ``(split, bucket)`` into shard pieces.

    Feed token lists with :meth:`add`; :meth:`finish` closes the last piece and returns
    the stats rows (one per piece that holds rows, or one row with ``file=None`` when the
    bucket's tokens did not fill a single row). Memory: one piece's pending record batch
    plus less than one row of tokens.
    """

    def __init__(self, spec: PackSpec, split: str, bucket: int, attempt: str) -> None:
        self.spec, self.split, self.bucket, self.attempt = spec, split, bucket, attempt
        self.fs, self.dir = filesystem(spec.out_dir)
        self.row_len = spec.block_size + 1
        self.dtype = np.dtype(spec.dtype)
        self.tail = np.empty(0, dtype=self.dtype)
        self.documents = 0
        self.document_tokens = 0
        self.pieces: list[dict] = []
        self.writer: ShardWriter | None = None

    def _new_writer(self) -> ShardWriter:
        name = f"{self.split}-{self.bucket:06d}-{len(self.pieces):04d}-{self.attempt}.arrow"
        return ShardWriter(self.fs, f"{self.dir}/{name}", self.spec.block_size, self.spec.dtype)

    def _close_writer(self) -> None:
        w = self.writer
        if w is None:
            return
        w.close()
        if w.sequences:
            self.pieces.append(
                {
                    "file": join_uri(self.spec.out_dir, w.path),
                    "sequences": w.sequences,
                    "bytes": w.bytes,
                    "sha256": w.sha256,
                }
            )
        self.writer = None

    def add(self, token_lists: Iterable[list[int]]) -> None:
        """Append documents (token ids, end-of-text included) and write full rows."""
        parts = [self.tail]
        for ids in token_lists:
            parts.append(np.asarray(ids, dtype=self.dtype))
            self.documents += 1
            self.document_tokens += len(ids)
        flat = np.concatenate(parts)
        n_rows = len(flat) // self.row_len
        rows = flat[: n_rows * self.row_len].reshape(n_rows, self.row_len)
        self.tail = flat[n_rows * self.row_len :].copy()
        per_piece = self.spec.rows_per_piece
        while len(rows):
            if self.writer is None:
                self.writer = self._new_writer()
            room = per_piece - self.writer.rows
            self.writer.write(rows[:room])
            rows = rows[room:]
            if self.writer.rows >= per_piece:
                self._close_writer()

    def finish(self) -> list[dict]:
        """Close the bucket; return its stats rows (see :data:`STATS_SCHEMA`)."""
        self._close_writer()
        base = {"split": self.split, "bucket": self.bucket}
        rows = [
            {**base, "piece": i, **p, "documents": 0, "document_tokens": 0, "dropped_tokens": 0}
            for i, p in enumerate(self.pieces)
        ]
        if not rows:
            rows = [{**base, "piece": 0, "file": None, "sequences": 0, "bytes": 0, "sha256": None}]
        rows[-1].update(
            documents=self.documents,
            document_tokens=self.document_tokens,
            dropped_tokens=len(self.tail),
        )
        return rows


def _runs(batch: pa.RecordBatch) -> Iterator[tuple[str, int, int, int]]:
    """Yield ``(split, bucket, start, stop)`` for each run of equal keys in a sorted batch."""
    splits = batch.column("split").to_pylist()
    buckets = batch.column("bucket").to_pylist()
    start = 0
    for i in range(1, len(splits) + 1):
        if i == len(splits) or splits[i] != splits[start] or buckets[i] != buckets[start]:
            yield splits[start], buckets[start], start, i
            start = i


def pack_partition(
    batches: Iterable[pa.RecordBatch], spec: PackSpec, attempt: str
) -> Iterator[pa.RecordBatch]:
    """Tokenise and pack one partition; yield its stats as record batches.

    Args:
        batches: columns ``split`` (string), ``bucket`` (int64), ``title`` (string),
            ``text`` (string), sorted by ``(split, bucket, wiki, page_id)``.
        spec: the stage's plain settings.
        attempt: task attempt id, part of every file name so attempts never collide.

    Yields:
        One record batch of :data:`STATS_SCHEMA` per finished bucket.

    Raises:
        ValueError: the input is not sorted by ``(split, bucket)`` (a bucket seen twice).
    """
    tok = load_tokenizer(spec.tokenizer_json.encode("utf-8"), "tokenizer")
    packer: BucketPacker | None = None
    seen: set[tuple[str, int]] = set()
    for batch in batches:
        titles = batch.column("title").to_pylist()
        texts = batch.column("text").to_pylist()
        for split, bucket, start, stop in _runs(batch):
            if packer is None or (packer.split, packer.bucket) != (split, bucket):
                if packer is not None:
                    yield pa.RecordBatch.from_pylist(packer.finish(), STATS_SCHEMA)
                if (split, bucket) in seen:
                    raise ValueError(f"featurise input not sorted: bucket {split}/{bucket} split")
                seen.add((split, bucket))
                packer = BucketPacker(spec, split, bucket, attempt)
            docs, size = [], 0
            for title, text in zip(titles[start:stop], texts[start:stop], strict=True):
                docs.append(document(title, text))
                size += len(text)
                if size >= ENCODE_BATCH_BYTES:
                    packer.add(encode_documents(tok, docs, spec.eot_id))
                    docs, size = [], 0
            if docs:
                packer.add(encode_documents(tok, docs, spec.eot_id))
    if packer is not None:
        yield pa.RecordBatch.from_pylist(packer.finish(), STATS_SCHEMA)
