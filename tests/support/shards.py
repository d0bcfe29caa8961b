"""Small numbered shards for the reader tests and any test that needs a shards folder:
every token says which row it belongs to, so an order or a slice is checked exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.support.manifests import write_dataset

BLOCK = 8
"""Block size of the shards (each row holds ``BLOCK + 1`` tokens)."""
L = BLOCK + 1


def rows_for(first: int, n: int, base: int = 0) -> np.ndarray:
    """Rows ``first..first+n-1``; row ``i`` holds ``base + i*L + j`` at position ``j``."""
    ids = np.arange(first, first + n)[:, None]
    return base + ids * L + np.arange(L)[None, :]


def make_shards(
    root: Path,
    train: tuple[int, ...] = (13, 30, 7),
    val: tuple[int, ...] = (10,),
    dtype: str = "uint16",
    base: int = 0,
    code_version: str = "test",
) -> Path:
    """A complete shards folder: shards of the given row counts, manifest.json, _SUCCESS."""
    splits, first = {}, 0
    for split, counts in (("train", train), ("val", val)):
        first, arrays = 0, []
        for n in counts:
            arrays.append(rows_for(first, n, base))
            first += n
        splits[split] = arrays
    vocab = 1 << 20 if dtype == "uint32" else 1 << 16
    return write_dataset(root, splits, dtype=dtype, vocab_size=vocab, code_version=code_version)
