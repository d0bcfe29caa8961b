"""Featurise building blocks without Spark: keys, tokenizer, packing, shard files, manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from pipeline.shards import format as fmt
from pipeline.shards.pack import STATS_SCHEMA, BucketPacker, PackSpec, pack_partition
from pipeline.shards.tokenize import (
    check_tokenizer,
    document,
    key_fractions,
    sample_texts,
    train_tokenizer,
)
from tests.support.manifests import write_dataset
from tests.support.samples import read_sample

EN = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


@pytest.fixture(scope="module")
def en_texts(wiki_data: Path) -> list[str]:
    """Raw wikitext of the first 40 non-redirect articles of the real English sample."""
    _, pages = read_sample(wiki_data / EN)
    return [p.text for p in pages if p.ns == 0 and p.redirect_to is None and p.text][:40]


@pytest.fixture(scope="module")
def tokenizer(en_texts):
    return train_tokenizer(en_texts, 600)


def test_key_fractions_are_stable_uniform_and_independent() -> None:
    a = key_fractions("enwiki", 12)
    assert a == key_fractions("enwiki", 12)
    assert a != key_fractions("dewiki", 12) and a != key_fractions("enwiki", 13)
    digest = hashlib.sha256(b"enwiki:12").hexdigest()
    assert a[0] == int(digest[:15], 16) / 16**15 and a[1] == int(digest[15:30], 16)
    fracs = np.array([key_fractions("xwiki", i)[0] for i in range(4000)])
    assert fracs.min() >= 0 and fracs.max() < 1
    assert abs((fracs < 0.05).mean() - 0.05) < 0.015  # a fair split
    samples = np.array([key_fractions("xwiki", i)[2] for i in range(4000)])
    assert abs(np.corrcoef(fracs, samples)[0, 1]) < 0.05  # split and sample independent


def test_tokenizer_training_is_deterministic_and_byte_level(en_texts, tokenizer) -> None:
    again = train_tokenizer(en_texts, 600)
    assert again.to_str() == tokenizer.to_str()
    assert tokenizer.get_vocab_size() == 600
    eot = check_tokenizer(tokenizer, "t")
    assert eot == 0
    text = "Anarchism — αναρχισμός 無政府主義 🙂"
    ids = tokenizer.encode(text).ids
    assert tokenizer.decode(ids) == text  # byte-level: any text round-trips
    assert len(ids) < len(text.encode("utf-8"))  # merges were learned


def test_tokenizer_without_end_of_text_is_refused() -> None:
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[]))
    with pytest.raises(fmt.ShardError, match=r"tok.json: the tokenizer has no <\|endoftext\|>"):
        check_tokenizer(tok, "tok.json")


def test_dtype_for_vocab() -> None:
    assert fmt.dtype_for_vocab(8192) == "uint16"
    assert fmt.dtype_for_vocab(65536) == "uint16"
    assert fmt.dtype_for_vocab(65537) == "uint32"
    assert fmt.dtype_for_vocab(300, "uint32") == "uint32"
    with pytest.raises(fmt.ShardError, match="does not fit uint16"):
        fmt.dtype_for_vocab(100_000, "uint16")


def test_sample_texts_stops_at_the_cap() -> None:
    rows = [("A", "x" * 50), ("B", "é" * 50), ("C", "z" * 50)]
    out = list(sample_texts(rows, 80))
    assert out[0] == document("A", "x" * 50)
    assert sum(len(t.encode()) for t in out) <= 80 and len(out) == 2


def _spec(tok, tmp_path: Path, block_size: int = 16, shard_bytes: int = 1 << 20) -> PackSpec:
    return PackSpec(tok.to_str(), 0, block_size, "uint16", shard_bytes, str(tmp_path))


def _rows(path: str) -> np.ndarray:
    table = pa.ipc.open_file(pa.memory_map(path)).read_all()
    col = table.column("tokens").combine_chunks()
    return col.flatten().to_numpy().reshape(len(col), -1)


def test_packer_concatenates_documents_with_eot_and_drops_the_tail(tokenizer, tmp_path) -> None:
    spec = _spec(tokenizer, tmp_path, block_size=16)
    docs = [[5, 6, 7, 0], [8] * 30 + [0], [9, 0]]  # 37 tokens -> 2 rows of 17, 3 dropped
    packer = BucketPacker(spec, "train", 3, "a1")
    packer.add(iter(docs[:2]))
    packer.add(iter(docs[2:]))
    (row,) = packer.finish()
    assert row["sequences"] == 2 and row["documents"] == 3
    assert row["document_tokens"] == 37 and row["dropped_tokens"] == 3
    flat = np.concatenate([np.array(d) for d in docs])
    got = _rows(row["file"].removeprefix("file://"))
    assert got.dtype == np.uint16 and got.shape == (2, 17)
    assert (got.reshape(-1) == flat[:34]).all()
    assert row["sha256"] == hashlib.sha256(Path(row["file"]).read_bytes()).hexdigest()


def test_packer_rolls_pieces_at_shard_bytes(tokenizer, tmp_path) -> None:
    spec = PackSpec(tokenizer.to_str(), 0, 255, "uint16", 1 << 20, str(tmp_path))
    assert spec.rows_per_piece == (1 << 20) // 512
    packer = BucketPacker(spec, "val", 0, "a1")
    n_rows = spec.rows_per_piece * 2 + 5
    packer.add(iter([[i % 300 for i in range(256 * n_rows)]]))
    rows = packer.finish()
    assert [r["sequences"] for r in rows] == [spec.rows_per_piece] * 2 + [5]
    assert all(r["bytes"] <= spec.shard_bytes + 4096 for r in rows)  # + Arrow metadata
    assert rows[-1]["documents"] == 1 and sum(r["documents"] for r in rows) == 1


def test_bucket_too_small_for_one_row_writes_no_file(tokenizer, tmp_path) -> None:
    packer = BucketPacker(_spec(tokenizer, tmp_path), "val", 1, "a1")
    packer.add(iter([[1, 2, 0]]))
    (row,) = packer.finish()
    assert row["file"] is None and row["sequences"] == 0 and row["dropped_tokens"] == 3
    assert list(tmp_path.iterdir()) == []


def test_same_rows_give_the_same_bytes_whatever_the_batching(tmp_path) -> None:
    rows = np.arange(3000 * 9, dtype=np.uint16).reshape(3000, 9)
    local = pafs.LocalFileSystem()
    paths = []
    for name, cuts in (("a", [3000]), ("b", [1, 1023, 1025, 951])):
        w = fmt.ShardWriter(local, str(tmp_path / f"{name}.arrow"), 8, "uint16")
        start = 0
        for c in cuts:
            w.write(rows[start : start + c])
            start += c
        w.close()
        paths.append(tmp_path / f"{name}.arrow")
        assert w.sequences == 3000
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert (_rows(str(paths[0])) == rows).all()


def _batch(split: list[str], bucket: list[int], texts: list[str]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"split": split, "bucket": bucket, "title": ["T"] * len(texts), "text": texts}
    )


def test_pack_partition_one_stats_row_per_bucket_and_decodes_back(
    tokenizer, en_texts, tmp_path
) -> None:
    spec = _spec(tokenizer, tmp_path, block_size=64)
    texts = en_texts[:6]
    batches = [
        _batch(["train", "train", "train"], [0, 0, 1], texts[:3]),
        _batch(["train", "val", "val"], [1, 0, 0], texts[3:]),
    ]
    out = pa.Table.from_batches(list(pack_partition(batches, spec, "7-0")), STATS_SCHEMA)
    keys = [(r["split"], r["bucket"]) for r in out.to_pylist()]
    assert sorted(set(keys)) == [("train", 0), ("train", 1), ("val", 0)]
    assert sum(out.column("documents").to_pylist()) == 6
    first = next(r for r in out.to_pylist() if (r["split"], r["bucket"]) == ("train", 0))
    decoded = tokenizer.decode(_rows(first["file"])[0].tolist())
    assert decoded == document("T", texts[0])[: len(decoded)]
    assert "7-0" in first["file"]


def test_pack_partition_refuses_unsorted_input(tokenizer, tmp_path) -> None:
    spec = _spec(tokenizer, tmp_path)
    batches = [_batch(["train", "val", "train"], [0, 0, 0], ["a", "b", "c"])]
    with pytest.raises(ValueError, match="not sorted"):
        list(pack_partition(batches, spec, "1-0"))


def _dataset(tmp_path: Path, shard_path: str = "train/part-00000-of-00001.arrow") -> Path:
    root = write_dataset(
        tmp_path / "shards", {"train": [np.ones((4, 9), dtype=np.uint16)]}, vocab_size=300
    )
    if shard_path != "train/part-00000-of-00001.arrow":  # a tampered manifest
        text = (root / fmt.MANIFEST).read_text()
        (root / fmt.MANIFEST).write_text(
            text.replace("train/part-00000-of-00001.arrow", shard_path)
        )
    return root


def test_manifest_loads_verifies_and_opens(tmp_path) -> None:
    m = fmt.load_manifest(str(_dataset(tmp_path)))
    assert m.block_size == 8 and m.sequences("train") == 4 and m.sequences("val") == 0
    fmt.verify_shard(m, m.shards["train"][0])
    assert fmt.open_shard(m, m.shards["train"][0]).num_rows == 4


def test_manifest_refuses_escaping_paths_and_missing_success(tmp_path) -> None:
    root = _dataset(tmp_path, shard_path="../outside.arrow")
    with pytest.raises(fmt.ShardError, match="not a plain relative path"):
        fmt.load_manifest(str(root))
    (root / "_SUCCESS").unlink()
    with pytest.raises(fmt.ShardError, match="no _SUCCESS"):
        fmt.load_manifest(str(root))


def test_corrupt_shard_fails_verification(tmp_path) -> None:
    root = _dataset(tmp_path)
    m = fmt.load_manifest(str(root))
    path = root / m.shards["train"][0].path
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(fmt.ShardError, match="sha256 .* differs from the manifest"):
        fmt.verify_shard(m, m.shards["train"][0])
