"""The ``shards/`` contract: shard schema, shard writer, manifest reading and verification.

A shard is an Arrow IPC *file* (uncompressed, so readers memory-map it) with one column
``tokens`` of type ``fixed_size_list<uint16|uint32>[block_size + 1]``: row ``i`` gives the
inputs ``tokens[:-1]`` and the next-token targets ``tokens[1:]`` of one training sequence.
``manifest.json`` lists every shard with its counts and sha256 and is the only thing
readers trust (never a directory listing). No Spark or Horovod here.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs

from pipeline.contracts.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    SPLITS,
    TOKENIZER,
    ManifestError,
    ShardInfo,
    ShardsManifest,
)
from pipeline.fs import file_digest, filesystem

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "SPLITS",
    "TOKENIZER",
    "Manifest",
    "ShardInfo",
    "ShardError",
    "load_manifest",
    "open_shard",
    "verify_shard",
]

EOT = "<|endoftext|>"
ROWS_PER_BATCH = 1024  # fixed record-batch size: the same rows give the same bytes


class ShardError(ValueError):
    """A shards folder, manifest or shard is missing, malformed or does not match."""


def dtype_for_vocab(vocab_size: int, requested: str = "auto") -> str:
    """Token dtype name for a vocabulary: ``uint16`` when every id fits, else ``uint32``.

    Raises:
        ShardError: ``requested`` is ``uint16`` but the vocabulary has more than 65536 ids.
    """
    if requested == "auto":
        return "uint16" if vocab_size <= 1 << 16 else "uint32"
    limit = 1 << 16 if requested == "uint16" else 1 << 32
    if vocab_size > limit:
        raise ShardError(
            f"a vocabulary of {vocab_size} tokens does not fit {requested} (at most {limit}); "
            "set featurise.dtype=uint32 or auto"
        )
    return requested


def shard_schema(block_size: int, dtype: str) -> pa.Schema:
    """Arrow schema of a shard: ``tokens: fixed_size_list<dtype>[block_size + 1]``."""
    return pa.schema([("tokens", pa.list_(pa.from_numpy_dtype(np.dtype(dtype)), block_size + 1))])


class ShardWriter:
    """Write packed rows to one shard file, created on the first row.

    Rows arrive as a ``(n, block_size + 1)`` numpy array of the shard dtype; they are
    buffered and written in record batches of exactly :data:`ROWS_PER_BATCH` rows (the last
    one shorter), so the same rows always give the same bytes.

    Attributes:
        sequences: rows written.
        bytes: file size after :meth:`close` (0 if no row was written, and no file exists).
        sha256: hex digest of the file after :meth:`close`.
    """

    def __init__(self, fs: pafs.FileSystem, path: str, block_size: int, dtype: str) -> None:
        self.fs, self.path = fs, path
        self.row_len = block_size + 1
        self.dtype = np.dtype(dtype)
        self.schema = shard_schema(block_size, dtype)
        self.sequences = 0
        self.bytes = 0
        self.sha256 = ""
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._sink: Any = None  # pyarrow output stream, opened on the first row
        self._writer: pa.ipc.RecordBatchFileWriter | None = None

    @property
    def rows(self) -> int:
        """Rows written or pending so far."""
        return self.sequences + self._pending_rows

    def write(self, rows: np.ndarray) -> None:
        """Append rows of shape ``(n, block_size + 1)``."""
        if rows.shape[0] == 0:
            return
        self._pending.append(rows.astype(self.dtype, copy=False))
        self._pending_rows += rows.shape[0]
        if self._pending_rows >= ROWS_PER_BATCH:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        rows = np.concatenate(self._pending)
        n_full = len(rows) if final else len(rows) - len(rows) % ROWS_PER_BATCH
        if self._writer is None:
            self._sink = self.fs.open_output_stream(self.path, compression=None)
            self._writer = pa.ipc.new_file(self._sink, self.schema)
        writer = self._writer
        for i in range(0, n_full, ROWS_PER_BATCH):
            chunk = rows[i : min(i + ROWS_PER_BATCH, n_full)]
            values = pa.array(chunk.reshape(-1), type=self.schema.field(0).type.value_type)
            column = pa.FixedSizeListArray.from_arrays(values, self.row_len)
            writer.write_batch(pa.record_batch([column], schema=self.schema))
            self.sequences += len(chunk)
        rest = rows[n_full:]
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)

    def close(self) -> None:
        """Flush, close the file and compute its size and sha256."""
        self._flush(final=True)
        if self._writer is None:
            return
        self._writer.close()
        self._sink.close()
        self._writer = self._sink = None
        self.bytes = self.fs.get_file_info(self.path).size
        self.sha256 = file_digest(self.path, fs=self.fs).hexdigest()


@dataclass
class Manifest:
    """A validated ``manifest.json`` of a shards folder, opened at ``root``.

    Attributes:
        root: URI or path of the dataset folder; shard paths are relative to it.
        content: the manifest (:class:`pipeline.contracts.manifest.ShardsManifest`).
        sha256: hex sha256 of the ``manifest.json`` bytes (recorded by checkpoints).
    """

    root: str
    content: ShardsManifest
    sha256: str = ""

    @property
    def block_size(self) -> int:
        """Tokens per training sequence."""
        return self.content.block_size

    @property
    def dtype(self) -> str:
        """``uint16`` or ``uint32``."""
        return self.content.dtype

    @property
    def vocab_size(self) -> int:
        """Tokenizer vocabulary size."""
        return self.content.vocab_size

    @property
    def eot_id(self) -> int:
        """Id of ``<|endoftext|>``."""
        return self.content.eot_id

    @property
    def shards(self) -> dict[str, list[ShardInfo]]:
        """Per split, the shards in order."""
        return {name: list(split.shards) for name, split in self.content.splits.items()}

    def sequences(self, split: str) -> int:
        """Rows in ``split`` (0 for a split without shards)."""
        info = self.content.splits.get(split)
        return info.sequences if info else 0

    def uri(self, relative: str) -> str:
        """URI of a file named in the manifest."""
        return posixpath.join(self.root.rstrip("/"), relative)


def load_manifest(root: str) -> Manifest:
    """Read and validate ``root/manifest.json`` (``root`` local path or URI).

    Raises:
        ShardError: no ``_SUCCESS`` or manifest (the featurise stage did not finish), or
            any error of :meth:`pipeline.contracts.manifest.ShardsManifest.from_json`
            (another format or version, a missing field, a path escaping ``root``).
    """
    fs, path = filesystem(root)
    where = f"{root.rstrip('/')}/{MANIFEST}"
    if fs.get_file_info(f"{path}/_SUCCESS").type != pafs.FileType.File:
        raise ShardError(
            f"{root} has no _SUCCESS: not a complete shards folder; run `pipeline featurise` "
            "to (re)create it"
        )
    try:
        with fs.open_input_stream(f"{path}/{MANIFEST}", compression=None) as f:
            raw = f.read()
    except FileNotFoundError:
        raise ShardError(f"{where} not found; run `pipeline featurise` first") from None
    try:
        content = ShardsManifest.from_json(raw, where)
    except ManifestError as e:
        raise ShardError(str(e)) from None
    return Manifest(root=root, content=content, sha256=hashlib.sha256(raw).hexdigest())


def open_shard(manifest: Manifest, shard: ShardInfo) -> pa.Table:
    """Open one shard memory-mapped (local files) or read it (other filesystems).

    Returns a table with one ``tokens`` column; nothing is copied for local files.

    Raises:
        ShardError: the file is missing, unreadable or not an Arrow file (truncated), its
            schema differs from the manifest's, or its row count differs from the
            manifest's.
    """
    uri = manifest.uri(shard.path)
    fs, path = filesystem(uri)
    try:
        if isinstance(fs, pafs.LocalFileSystem):
            reader = pa.ipc.open_file(pa.memory_map(path, "r"))
        else:
            reader = pa.ipc.open_file(fs.open_input_file(path))
        table = reader.read_all()
    except FileNotFoundError:
        raise ShardError(f"{uri}: listed in the manifest but missing; re-run featurise") from None
    except pa.ArrowInvalid as e:
        raise ShardError(
            f"{uri}: not a readable Arrow shard ({e}); the file is damaged or truncated; "
            "re-run featurise"
        ) from None
    except OSError as e:  # permission denied, an I/O error
        raise ShardError(f"{uri}: cannot be read ({e.strerror or e})") from None
    expected = shard_schema(manifest.block_size, manifest.dtype)
    if not table.schema.equals(expected):
        raise ShardError(f"{uri}: schema {table.schema} differs from the manifest's {expected}")
    if table.num_rows != shard.sequences:
        raise ShardError(f"{uri}: {table.num_rows} rows but the manifest lists {shard.sequences}")
    return table


def verify_shard(manifest: Manifest, shard: ShardInfo) -> None:
    """Check one shard's size and sha256 against the manifest.

    Raises:
        ShardError: missing or unreadable file, or size or sha256 differing from the
            manifest.
    """
    uri = manifest.uri(shard.path)
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise ShardError(f"{uri}: listed in the manifest but missing")
    if info.size != shard.bytes:
        raise ShardError(
            f"{uri}: {info.size} bytes but the manifest lists {shard.bytes}; the shard is "
            "truncated or was replaced; re-run featurise"
        )
    try:
        digest = file_digest(path, fs=fs).hexdigest()
    except OSError as e:  # permission denied, an I/O error
        raise ShardError(f"{uri}: cannot be read ({e.strerror or e})") from None
    if digest != shard.sha256:
        raise ShardError(
            f"{uri}: sha256 {digest} differs from the manifest's {shard.sha256}; the shard "
            "is corrupt or was replaced; re-run featurise"
        )
