"""Curate's per-document text functions on real articles: normalisation and exact hashes,
shingles, MinHash against real Jaccard, LSH bands, and the executor-side batch functions."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.contracts.curated import CURATED_COLUMNS, curated_schema
from pipeline.contracts.pages import PAGES_SCHEMA
from pipeline.curate import text as T
from pipeline.curate.annotate import CurateOptions, annotate_batches, verify_batches
from pipeline.curate.write import WRITE_STATS_SCHEMA, write_partition
from tests.support.curate_data import EN, add_boilerplate, edit_words, real_articles


@pytest.fixture(scope="module")
def articles(wiki_data: Path) -> list[tuple[int, str, str]]:
    return real_articles(wiki_data / EN, 12)


def test_exact_hash_ignores_case_whitespace_and_unicode_form(articles) -> None:
    text = articles[0][2]
    variant = "  " + unicodedata.normalize("NFD", text.upper()).replace(" ", " \t\n ") + "\n"
    assert T.exact_hash(variant) == T.exact_hash(text)
    assert len({T.exact_hash(t) for _, _, t in articles}) == len(articles)
    assert T.exact_hash(text + " x") != T.exact_hash(text)


def test_shingles_are_sorted_unique_and_handle_short_texts(articles) -> None:
    sh = T.shingles(articles[0][2], 3)
    assert sh.dtype == np.uint64 and np.all(np.diff(sh.astype(np.int64)) > 0)
    assert len(T.shingles("", 3)) == 0
    assert len(T.shingles("two words", 3)) == 1  # one shingle of all words
    assert T.jaccard(T.shingles("", 3), T.shingles("", 3)) == 1.0


def test_fast_words_and_normalise_match_the_regular_expressions(wiki_data: Path) -> None:
    """``normalise`` and ``words_of`` (string methods) equal ``re.sub(r"\\s+")`` and
    ``re.findall(r"\\w+")`` on real pages of several scripts and on odd characters."""
    import re

    texts = [t for _, _, t in real_articles(wiki_data / EN, 3)]
    for code in ("de", "el", "ru", "zh", "ar", "hi"):
        texts += [
            t
            for _, _, t in real_articles(
                wiki_data / "dbpedia-minidumps" / f"{code}.xml.bz2", 2, 200
            )
        ]
    texts.append("İstanbul ǅ ﬁ x\u00a0y\u2009z_1 ½ ٣ \x1c\x1dword\x1fnext “quoted” — dash")
    assert len(texts) > 10
    for text in texts:
        norm = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text).casefold()).strip()
        assert T.normalise(text) == norm
        assert T.words_of(norm) == [w.encode("utf-8") for w in re.findall(r"\w+", norm)]


def test_minhash_estimates_real_jaccard(articles) -> None:
    base, donor = articles[0][2], articles[1][2]
    k = 100
    for fraction in (0.02, 0.1, 0.3):
        edited = edit_words(base, fraction, donor, seed=7)
        a, b = T.shingles(base, 2), T.shingles(edited, 2)
        exact = T.jaccard(a, b)
        estimate = float(np.mean(T.minhash(a, k) == T.minhash(b, k)))
        assert abs(estimate - exact) < 0.15, (fraction, exact, estimate)
    # unrelated real articles: low similarity and few agreeing minima
    a, b = T.shingles(base, 2), T.shingles(articles[2][2], 2)
    assert T.jaccard(a, b) < 0.2
    assert np.mean(T.minhash(a, k) == T.minhash(b, k)) < 0.2


def test_identical_and_boilerplate_copies_share_bands(articles) -> None:
    base = articles[3][2]
    sig = T.minhash(T.shingles(base, 2), 100)
    assert T.band_hashes(sig, 20, 5) == T.band_hashes(T.minhash(T.shingles(base, 2), 100), 20, 5)
    copy = add_boilerplate(base, "Retrieved from a mirror site. All rights reserved.")
    other = T.band_hashes(T.minhash(T.shingles(copy, 2), 100), 20, 5)
    assert set(T.band_hashes(sig, 20, 5)) & set(other)
    unrelated = T.band_hashes(T.minhash(T.shingles(articles[4][2], 2), 100), 20, 5)
    assert not set(T.band_hashes(sig, 20, 5)) & set(unrelated)


def test_annotate_and_verify_batches(articles) -> None:
    texts = [t for _, _, t in articles[:4]]
    texts.append(edit_words(texts[0], 0.02, texts[1], seed=1))
    batch = pa.RecordBatch.from_pydict(
        {"rid": list(range(5)), "wiki": ["enwiki"] * 5, "text": texts}
    )
    (out,) = annotate_batches([batch], CurateOptions(shingle_words=2))
    rows = out.to_pylist()
    assert [r["rid"] for r in rows] == list(range(5))
    assert all(r["lang"] == "en" and r["lang_score"] > 0.9 for r in rows)
    assert all(len(r["bands"]) == 20 for r in rows if r["pre_status"] is None)
    assert set(rows[0]["bands"]) & set(rows[4]["bands"])
    pairs = pa.RecordBatch.from_pydict(
        {"a": [0, 1], "b": [4, 2], "a_text": [texts[0], texts[1]], "b_text": [texts[4], texts[2]]}
    )
    (verified,) = verify_batches([pairs], 2, 0.8)
    assert verified.to_pylist()[0]["a"] == 0 and verified.num_rows == 1
    assert verified.to_pylist()[0]["jaccard"] >= 0.8


def test_curated_schema_is_pages_schema_plus_curate_columns() -> None:
    schema = curated_schema()
    assert schema.names[: len(PAGES_SCHEMA)] == PAGES_SCHEMA.names
    assert list(schema)[len(PAGES_SCHEMA) :] == list(CURATED_COLUMNS)


def _curated_rows(articles, fidx: list[int]) -> pa.Table:
    n = len(fidx)
    cols = {f.name: pa.nulls(n, f.type) for f in curated_schema()}
    cols["wiki"] = pa.array(["enwiki"] * n)
    cols["page_id"] = pa.array([articles[i % len(articles)][0] for i in range(n)], pa.int64())
    cols["text"] = pa.array([articles[i % len(articles)][2] for i in range(n)])
    cols["status"] = pa.array(["ok"] * n)
    statuses = ["ok", "quality", "duplicate"]
    cols["curate_status"] = pa.array([statuses[i % 3] for i in range(n)])
    reasons = [None, "words: 3 < 20", "duplicate: exact copy of enwiki:1"]
    cols["curate_reason"] = pa.array([reasons[i % 3] for i in range(n)])
    cols["lang"] = pa.array(["en"] * n)
    table = pa.table(cols, schema=curated_schema())
    return table.append_column("fidx", pa.array(fidx, pa.int64()))


def test_written_files_do_not_depend_on_batch_boundaries(articles, tmp_path: Path) -> None:
    table = _curated_rows(articles, [0] * 1500 + [3] * 700)
    out = {}
    for size in (100, 999):
        folder = tmp_path / str(size)
        folder.mkdir()
        stats = pa.Table.from_batches(
            list(write_partition(table.to_batches(max_chunksize=size), str(folder), "a"))
        )
        assert stats.schema == WRITE_STATS_SCHEMA
        assert stats.column("rows").to_pylist() == [1500, 700]
        out[size] = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert out[100] == out[999] and sorted(out[100]) == [
        "curated-00000-a.parquet",
        "curated-00003-a.parquet",
    ]
    written = pq.read_table(tmp_path / "100" / "curated-00003-a.parquet")
    assert written.schema.remove_metadata().equals(curated_schema())
    assert written.column("text").to_pylist() == table.column("text").to_pylist()[1500:]
