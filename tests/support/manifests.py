"""Shards folders for tests, written through the manifest contract (one writer).

Tests that need shards without running featurise build them here, so their manifests
count exactly as the stage does (``tokens = sequences * (block_size + 1)``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs

from pipeline.contracts.manifest import (
    MANIFEST,
    TOKENIZER,
    PagesSource,
    ShardInfo,
    ShardsManifest,
    SplitInfo,
    TokenizerInfo,
)
from pipeline.shards.format import ShardWriter


def write_dataset(
    root: Path,
    splits: dict[str, list[np.ndarray]],
    *,
    dtype: str = "uint16",
    vocab_size: int = 1 << 16,
    eot_id: int = 0,
    tokenizer_json: str | None = None,
    code_version: str = "test",
) -> Path:
    """Write a complete shards folder: one shard per array, the manifest, ``_SUCCESS``.

    Args:
        root: the folder to create.
        splits: per split (``train``/``val``), the rows of each shard, each array of shape
            ``(sequences, block_size + 1)``.
        dtype: ``uint16`` or ``uint32``.
        vocab_size, eot_id: recorded in the manifest.
        tokenizer_json: written as ``tokenizer.json`` when given.
        code_version: recorded in the manifest (another value gives another manifest
            sha256 over the same rows).

    Returns:
        ``root``.
    """
    fs = pafs.LocalFileSystem()
    root.mkdir(parents=True, exist_ok=True)
    tok = (tokenizer_json or "").encode("utf-8")
    if tokenizer_json is not None:
        (root / TOKENIZER).write_bytes(tok)
    block_size = next(a.shape[1] for arrays in splits.values() for a in arrays) - 1
    infos = {}
    for split, arrays in splits.items():
        (root / split).mkdir(exist_ok=True)
        shards = []
        for i, rows in enumerate(arrays):
            rel = f"{split}/part-{i:05d}-of-{len(arrays):05d}.arrow"
            w = ShardWriter(fs, str(root / rel), block_size, dtype)
            w.write(rows)
            w.close()
            shards.append(
                ShardInfo(rel, w.sequences, w.sequences * (block_size + 1), w.bytes, w.sha256)
            )
        infos[split] = SplitInfo(
            tuple(shards), documents=0, document_tokens=0, dropped_tokens=0, buckets=len(arrays)
        )
    manifest = ShardsManifest(
        block_size=block_size,
        dtype=dtype,
        vocab_size=vocab_size,
        eot_id=eot_id,
        splits=infos,
        tokenizer=TokenizerInfo(
            TOKENIZER,
            hashlib.sha256(tok).hexdigest(),
            trained=False,
            given=None,
            sample_bytes=0,
            tokens_per_byte=0.0,
        ),
        pages=PagesSource(path="", stats_sha256="", ok_pages=0, status={}),
        config={},
        code_version=code_version,
    )
    (root / MANIFEST).write_bytes(manifest.to_json())
    (root / "_SUCCESS").write_text("")
    return root
