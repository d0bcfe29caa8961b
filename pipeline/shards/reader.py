"""The training side of the ``shards/`` contract: a map-style dataset of packed token rows.

:class:`ShardDataset` opens a split's shards through the manifest (never a directory
listing), memory-mapped with pyarrow, and hands out batches as int64 torch tensors without
reading whole shards into memory: a batch gathers only its own rows from the mapped files.

Order does not depend on the world size. Each epoch draws one seeded permutation over
*all* rows of the split (``np.random.Generator(np.random.PCG64([seed, epoch]))``); global
batch ``b`` is ``perm[b*B:(b+1)*B]`` and rank ``r`` takes rows ``[r*B/W, (r+1)*B/W)`` of
it. Every rank therefore sees the same number of batches (the partial last batch of an
epoch is skipped), and the concatenation of the ranks' slices is the world-size-1 batch,
so the data cursor (:meth:`ShardDataset.state_dict`) resumes exactly, also on another
number of ranks. Rank and world size are plain arguments: no Spark or Horovod here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from pipeline.shards.format import (
    Manifest,
    ShardError,
    ShardInfo,
    load_manifest,
    open_shard,
    verify_shard,
)

# (uri, sha256, bytes) of the shards already verified in this process: each is hashed once,
# however many datasets (train, val, a re-created one after resume) open it.
_VERIFIED: set[tuple[str, str, int]] = set()

_STATE_KEYS = ("epoch", "batch", "seed", "global_batch", "rows", "split", "manifest_sha256")


def epoch_permutation(rows: int, seed: int, epoch: int) -> np.ndarray:
    """The order of an epoch: a permutation of ``range(rows)``, shape ``(rows,)``.

    Drawn by ``np.random.Generator(np.random.PCG64([seed, epoch])).permutation(rows)``, so
    it depends only on the seed, the epoch and the row count (never on rank or world size),
    and is the same on every platform and numpy version that keeps PCG64's stream. Stored
    as int32 when the row count allows it (4 bytes a row), else int64.
    """
    perm = np.random.Generator(np.random.PCG64([seed, epoch])).permutation(rows)
    return perm.astype(np.int32) if rows <= np.iinfo(np.int32).max else perm


class _OpenShard:
    """One opened shard: its mapped table (kept alive) and per record batch a row view."""

    def __init__(self, table: pa.Table, row_len: int, dtype: np.dtype, uri: str) -> None:
        self.table = table  # owns the memory map the views below point into
        self.chunks: list[np.ndarray] = []  # each (rows_in_batch, row_len) of dtype, no copy
        for chunk in table.column("tokens").chunks:
            if chunk.null_count:
                raise ShardError(f"{uri}: {chunk.null_count} null rows; re-run featurise")
            try:
                flat = chunk.flatten().to_numpy(zero_copy_only=True)
            except pa.ArrowInvalid as e:
                raise ShardError(f"{uri}: token values cannot be mapped ({e})") from None
            self.chunks.append(flat.reshape(len(chunk), row_len))
        if self.chunks and self.chunks[0].dtype != dtype:
            raise ShardError(f"{uri}: tokens are {self.chunks[0].dtype}, manifest says {dtype}")
        self.starts = np.cumsum([0] + [len(c) for c in self.chunks])  # (n_chunks + 1,)

    def gather(self, local: np.ndarray, width: int, out: np.ndarray, where: np.ndarray) -> None:
        """Copy rows ``local`` (sorted, shape ``(n,)``), first ``width`` tokens each, into
        ``out[where]`` (``out`` int64 of shape ``(N, width)``)."""
        chunk_of = np.searchsorted(self.starts, local, side="right") - 1
        for c in np.unique(chunk_of):
            sel = chunk_of == c
            out[where[sel]] = self.chunks[c][local[sel] - self.starts[c], :width]


class ShardDataset:
    """Batches of one split of a shards folder for one rank of ``world_size``.

    Args:
        root: the shards folder, local path or URI (``file://``, ``hdfs://``, ``s3a://``).
        split: ``train`` or ``val`` (any split the manifest lists).
        global_batch: sequences per optimizer step over all ranks (``B``).
        rank: this rank, in ``[0, world_size)``.
        world_size: number of ranks (``W``); ``B`` must be a multiple of it.
        seed: seeds the per-epoch permutation (``>= 0``).
        verify: check each shard's size and sha256 against the manifest on first use
            (``train.verify_shards``); hashing reads the whole shard once per process.
        block_size: tokens handed out per sequence (``T``, the model's block size); rows
            are cropped to their first ``T + 1`` tokens. Default: the manifest's.

    Attributes:
        manifest: the validated manifest.
        split: the split read.
        rows: rows in the split (``N``).
        global_batch, local_batch: ``B`` and ``B // W``.
        block_size: ``T``, ``<= manifest.block_size``.
        batches_per_epoch: ``N // B``.
        epoch, batch: the cursor; ``batch`` is the next global batch index in ``epoch``.
        seed: the permutation seed.

    Raises:
        ShardError: no manifest or ``_SUCCESS``; an unknown split or one without rows;
            ``global_batch`` not a positive multiple of ``world_size``; ``rank`` outside
            ``[0, world_size)``; a negative seed; ``block_size`` above the shards'; fewer
            rows than one global batch.

    For evaluation on a small split, create the dataset with ``global_batch=world_size``
    (one row per rank) and use :meth:`eval_batches`, whose batch size is its own argument.
    """

    def __init__(
        self,
        root: str,
        split: str = "train",
        *,
        global_batch: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        verify: bool = True,
        block_size: int | None = None,
    ) -> None:
        self.manifest: Manifest = load_manifest(root)
        where = f"{root.rstrip('/')} split {split!r}"
        if split not in self.manifest.shards:
            known = ", ".join(sorted(self.manifest.shards)) or "none"
            raise ShardError(f"{where}: the manifest has no such split (splits: {known})")
        self.split = split
        self.shards: list[ShardInfo] = [s for s in self.manifest.shards[split] if s.sequences]
        self.rows = sum(s.sequences for s in self.shards)
        if self.rows == 0:
            raise ShardError(
                f"{where} has no rows; the pages were too few or too short for this split "
                "(lower featurise.block_size or add pages) and re-run featurise"
            )
        if world_size < 1:
            raise ShardError(f"world_size must be >= 1, got {world_size}")
        if not 0 <= rank < world_size:
            raise ShardError(f"rank {rank} is not in [0, {world_size}) for world_size {world_size}")
        if global_batch < 1 or global_batch % world_size:
            up = max(1, -(-global_batch // world_size)) * world_size
            raise ShardError(
                f"global_batch {global_batch} is not a positive multiple of world_size "
                f"{world_size}; set train.global_batch to a multiple of {world_size} "
                f"(e.g. {up})"
            )
        if seed < 0:
            raise ShardError(f"seed must be >= 0, got {seed}")
        stored = self.manifest.block_size
        if block_size is None:
            block_size = stored
        if block_size < 1:
            raise ShardError(f"block_size must be >= 1, got {block_size}")
        if block_size > stored:
            raise ShardError(
                f"block_size {block_size} exceeds the shards' {stored}; re-run featurise "
                f"with featurise.block_size={block_size}"
            )
        if self.rows < global_batch:
            raise ShardError(
                f"{where} has {self.rows} rows, fewer than one global batch of "
                f"{global_batch}; lower train.global_batch to at most {self.rows} (a multiple "
                f"of world_size {world_size}) or featurise more pages"
            )
        self.rank, self.world_size, self.seed, self.verify = rank, world_size, seed, verify
        self.global_batch = global_batch
        self.local_batch = global_batch // world_size
        self.block_size = block_size
        self.batches_per_epoch = self.rows // global_batch
        self.epoch = 0
        self.batch = 0
        self._row_len = stored + 1
        self._dtype = np.dtype(self.manifest.dtype)
        self._starts = np.cumsum([0] + [s.sequences for s in self.shards])  # (n_shards + 1,)
        self._open: dict[int, _OpenShard] = {}
        self._perm: np.ndarray | None = None
        self._perm_key: tuple[int, int] | None = None
        self._wait = 0.0

    # -- rows ---------------------------------------------------------------------------

    def _shard(self, i: int) -> _OpenShard:
        """Shard ``i``, verified (once per process) and opened on first use."""
        opened = self._open.get(i)
        if opened is None:
            info = self.shards[i]
            uri = self.manifest.uri(info.path)
            key = (uri, info.sha256, info.bytes)
            if self.verify and key not in _VERIFIED:
                verify_shard(self.manifest, info)
                _VERIFIED.add(key)
            table = open_shard(self.manifest, info)
            opened = self._open[i] = _OpenShard(table, self._row_len, self._dtype, uri)
        return opened

    def rows_at(self, index: np.ndarray) -> np.ndarray:
        """Rows at global indices ``index`` (shape ``(n,)``, into the split in manifest
        order), cropped to ``block_size + 1`` tokens: int64 array ``(n, block_size + 1)``.

        Reads only those rows from the mapped shards, shard by shard in sorted order, and
        returns them in the order of ``index``.

        Raises:
            ShardError: an index outside ``[0, rows)``; a shard failing verification or
                not opening (see
                :func:`~pipeline.shards.format.verify_shard`, ``open_shard``).
        """
        index = np.asarray(index, dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= self.rows):
            raise ShardError(
                f"row index {int(index.min())}..{int(index.max())} outside the split's "
                f"{self.rows} rows"
            )
        out = np.empty((len(index), self.block_size + 1), dtype=np.int64)
        order = np.argsort(index, kind="stable")  # positions in out, by row index
        ordered = index[order]
        shard_of = np.searchsorted(self._starts, ordered, side="right") - 1
        bounds = np.searchsorted(shard_of, np.arange(len(self.shards) + 1))
        for i in range(len(self.shards)):
            lo, hi = bounds[i], bounds[i + 1]
            if lo == hi:
                continue
            local = ordered[lo:hi] - self._starts[i]
            self._shard(i).gather(local, self.block_size + 1, out, order[lo:hi])
        return out

    def _tensors(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.ascontiguousarray(rows[:, :-1]))  # (b, T) int64
        y = torch.from_numpy(np.ascontiguousarray(rows[:, 1:]))  # (b, T) int64
        return x, y

    def _permutation(self, epoch: int) -> np.ndarray:
        """The permutation of ``epoch`` under the current seed (the last one cached)."""
        key = (self.seed, epoch)
        perm = self._perm
        if self._perm_key != key or perm is None:
            perm = epoch_permutation(self.rows, self.seed, epoch)
            self._perm, self._perm_key = perm, key
        return perm

    # -- training -----------------------------------------------------------------------

    def global_indices(self, epoch: int, batch: int) -> np.ndarray:
        """Row indices of global batch ``batch`` of ``epoch`` (all ranks), shape ``(B,)``."""
        if not 0 <= batch < self.batches_per_epoch:
            raise ShardError(f"batch {batch} is not in [0, {self.batches_per_epoch})")
        b = self.global_batch
        return self._permutation(epoch)[batch * b : (batch + 1) * b].astype(np.int64)

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the next global batch, and advance the cursor.

        Returns:
            ``(x, y)``, int64 tensors of shape ``(local_batch, block_size)``: ``x`` is
            ``row[:T]`` and ``y`` is ``row[1:T+1]`` of the same rows. After the last batch
            of an epoch the cursor moves to batch 0 of the next epoch (a new permutation).

        Raises:
            ShardError: a shard first used here fails verification or cannot be opened.
        """
        started = time.perf_counter()
        try:
            idx = self.global_indices(self.epoch, self.batch)
            lb = self.local_batch
            x, y = self._tensors(self.rows_at(idx[self.rank * lb : (self.rank + 1) * lb]))
            self.batch += 1
            if self.batch >= self.batches_per_epoch:
                self.epoch, self.batch = self.epoch + 1, 0
            return x, y
        finally:
            self._wait += time.perf_counter() - started

    def wait_seconds(self) -> float:
        """Cumulative seconds spent inside :meth:`next_batch` (the data wait)."""
        return self._wait

    # -- resume -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The data cursor, JSON-serialisable, independent of rank and world size.

        Keys: ``epoch``, ``batch`` (next global batch in the epoch), ``seed``,
        ``global_batch``, ``rows``, ``split``, ``manifest_sha256``.
        """
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "seed": self.seed,
            "global_batch": self.global_batch,
            "rows": self.rows,
            "split": self.split,
            "manifest_sha256": self.manifest.sha256,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a cursor saved by :meth:`state_dict`, possibly at another world size.

        The saved seed replaces this dataset's, so the resumed run draws the same
        permutations. The next :meth:`next_batch` continues the global batch sequence
        exactly where the saved run stopped.

        Raises:
            ShardError: a key missing; or ``manifest_sha256``, ``split``, ``rows`` or
                ``global_batch`` differing from this dataset's; or a cursor out of range.
        """
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ShardError(f"data cursor lacks {', '.join(missing)}; not a ShardDataset state")
        mine = self.state_dict()
        hints = {
            "manifest_sha256": "the checkpoint was trained on other shards; resume with the "
            "shards it was made from or start a new run",
            "split": "resume the split the checkpoint was saved from",
            "rows": "the checkpoint was trained on other shards; start a new run",
            "global_batch": "resume with the checkpoint's train.global_batch",
        }
        for key, hint in hints.items():
            if state[key] != mine[key]:
                raise ShardError(
                    f"data cursor {key} {state[key]!r} differs from this dataset's "
                    f"{mine[key]!r}; {hint}"
                )
        epoch, batch, seed = state["epoch"], state["batch"], state["seed"]
        for key, value in (("epoch", epoch), ("batch", batch), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ShardError(f"data cursor {key} {value!r} is not an integer >= 0")
        if batch > self.batches_per_epoch:
            raise ShardError(
                f"data cursor batch {batch} exceeds the {self.batches_per_epoch} batches of "
                "an epoch"
            )
        if batch == self.batches_per_epoch:
            epoch, batch = epoch + 1, 0
        self.epoch, self.batch, self.seed = epoch, batch, seed

    # -- evaluation ---------------------------------------------------------------------

    def eval_steps(self, per_rank: int, max_batches: int) -> tuple[int, int]:
        """``(steps, rows per rank per step)`` that :meth:`eval_batches` yields; the same
        on every rank."""
        if per_rank < 1:
            raise ShardError(f"per_rank must be >= 1, got {per_rank}")
        if max_batches < 0:
            raise ShardError(f"max_batches must be >= 0, got {max_batches}")
        w = self.world_size
        steps = min(max_batches, self.rows // (per_rank * w))
        if steps == 0 and max_batches > 0 and self.rows >= w:
            return 1, self.rows // w
        return steps, per_rank

    def eval_batches(
        self, per_rank: int, max_batches: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Deterministic evaluation batches in manifest order; the training cursor is
        untouched.

        Step ``i`` covers rows ``[i*per_rank*W, (i+1)*per_rank*W)`` and this rank its
        ``per_rank`` slice. Yields ``min(max_batches, rows // (per_rank*W))`` steps; when
        that is 0 (but ``max_batches > 0`` and ``rows >= W``), one step of ``rows // W`` rows
        per rank. ``max_batches=0`` yields nothing. Every rank yields the same count.

        Yields:
            ``(x, y)``, int64 tensors of shape ``(rows_per_rank, block_size)``.

        Raises:
            ShardError: at the call, ``per_rank < 1`` or ``max_batches < 0``; while
                iterating, a shard failing verification or not opening.
        """
        steps, per = self.eval_steps(per_rank, max_batches)
        return self._eval_iter(steps, per)

    def _eval_iter(self, steps: int, per: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(steps):
            start = (i * self.world_size + self.rank) * per
            yield self._tensors(self.rows_at(np.arange(start, start + per, dtype=np.int64)))
