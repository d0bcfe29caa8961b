"""Text corpora as parse inputs: JSON Lines (plain, gzip, zstd) and Parquet, on real text
(the pages of a shared dump written out as a corpus in tmp_path)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.wiki import docsources, pages, sources
from pipeline.wiki.xmlpages import DumpError, PageReader

WIKI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wiki"
DUMP = WIKI / "dewiki-20170701-sample.xml"


def dump_documents() -> list[dict]:
    reader = PageReader(str(DUMP))
    found = reader.feed(DUMP.read_bytes()) + reader.close()
    return [{"id": p.page_id, "title": p.title, "text": p.text} for p in found]


def write_corpus(folder: Path, docs: list[dict]) -> list[Path]:
    """The documents as corpus.jsonl, .jsonl.gz, .jsonl.zst and .parquet (10 row groups)."""
    folder.mkdir(exist_ok=True)
    lines = b"".join(json.dumps(d, ensure_ascii=False).encode() + b"\n" for d in docs)
    plain, gz = folder / "corpus.jsonl", folder / "corpus.jsonl.gz"
    zst, parquet = folder / "corpus.jsonl.zst", folder / "corpus.parquet"
    plain.write_bytes(lines)
    gz.write_bytes(gzip.compress(lines))
    with pa.CompressedOutputStream(str(zst), "zstd") as out:
        out.write(lines)
    pq.write_table(pa.Table.from_pylist(docs), parquet, row_group_size=max(len(docs) // 10, 1))
    return [plain, gz, zst, parquet]


def rows_of(path: Path, tmp_path: Path, split_bytes: int = 1 << 30, **fields) -> list[dict]:
    out = tmp_path / f"out-{path.name}-{split_bytes}-{sorted(fields.items())}"
    out.mkdir()
    tasks = sources.plan_tasks(sources.expand_inputs([str(path)]), split_bytes, **fields)
    rows = []
    for i, t in enumerate(tasks):
        t["task"] = i
        stats = docsources.run_task(t, pages.ParseOptions(), str(out), "0-0")
        assert stats.rows == stats.pages
        rows += pq.read_table(stats.file).to_pylist()
    return rows


def test_every_format_gives_the_dump_pages(tmp_path: Path) -> None:
    docs = dump_documents()
    assert len(docs) == 79
    expected = None
    for path in write_corpus(tmp_path / "c", docs):
        rows = rows_of(path, tmp_path)
        assert {r["source"] for r in rows} == {path.name}
        assert {r["wiki"] for r in rows} == {"corpus"}
        rows = [{k: v for k, v in r.items() if k != "source"} for r in rows]
        if expected is None:
            expected = rows
        assert rows == expected, path.name
    assert [r["page_id"] for r in expected] == [d["id"] for d in docs]
    assert [r["text"] for r in expected] == [
        (d["text"] or "").strip() and d["text"] or None for d in docs
    ]
    assert [r["title"] for r in expected] == [d["title"] for d in docs]
    blank = sum(not (d["text"] or "").strip() for d in docs)
    assert [r["status"] for r in expected].count("ok") == 79 - blank and blank < 3


@pytest.mark.parametrize("split_bytes", [1, 50_000])
def test_jsonl_split_by_lines_equals_one_task(
    tmp_path: Path, split_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docsources, "MIN_SPLIT_BYTES", 9973)  # most lines cross a boundary
    split_bytes = max(split_bytes, 9973)
    plain = write_corpus(tmp_path / "c", dump_documents())[0]
    tasks = sources.plan_tasks([(str(plain), plain.stat().st_size)], split_bytes)
    assert len(tasks) == -(-plain.stat().st_size // split_bytes)
    assert rows_of(plain, tmp_path, split_bytes) == rows_of(plain, tmp_path)


def test_parquet_split_by_row_groups(tmp_path: Path) -> None:
    parquet = write_corpus(tmp_path / "c", dump_documents())[3]
    tasks = sources.plan_tasks([(str(parquet), parquet.stat().st_size)], 1)
    assert len(tasks) == pq.ParquetFile(parquet).num_row_groups >= 10
    assert rows_of(parquet, tmp_path, 1) == rows_of(parquet, tmp_path)


def test_ids_fields_and_bad_lines(tmp_path: Path) -> None:
    docs = dump_documents()[:5]
    corpus = tmp_path / "web.jsonl"
    lines = [
        json.dumps({"url": f"https://de.wikipedia.org/?curid={d['id']}", "body": d["text"]})
        for d in docs
    ]
    lines += ['{"body": "  "}', "not json {", '["a list"]', '{"body": 7}', ""]
    corpus.write_text("\n".join(lines) + "\n")
    rows = rows_of(corpus, tmp_path, text_field="body", id_field="url")
    assert [r["status"] for r in rows] == ["ok"] * 5 + ["empty"] + ["parse_error"] * 3
    assert [r["text"] for r in rows[:5]] == [d["text"] for d in docs]
    url_ids = [r["page_id"] for r in rows[:5]]
    assert url_ids == [docsources.stable_id(json.loads(line)["url"]) for line in lines[:5]]
    assert len(set(url_ids)) == 5 and all(0 <= i < 2**63 for i in url_ids)
    assert rows[6]["error"].startswith("not JSON")
    assert "must be an object" in rows[7]["error"] and "not a string" in rows[8]["error"]
    # no id field: the content hash, the same on every read
    again = rows_of(corpus, tmp_path, text_field="body", id_field="nope")
    assert [r["page_id"] for r in again[:5]] == [docsources.stable_id(d["text"]) for d in docs]


def test_parquet_without_the_text_column_is_refused(tmp_path: Path) -> None:
    parquet = write_corpus(tmp_path / "c", dump_documents())[3]
    with pytest.raises(DumpError, match=r"no column 'content' .*set parse.text_field"):
        sources.plan_tasks([(str(parquet), parquet.stat().st_size)], 1, text_field="content")


def test_corrupt_gzip_fails_or_is_recorded(tmp_path: Path) -> None:
    gz = write_corpus(tmp_path / "c", dump_documents())[1]
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    task = {**sources.plan_tasks([(str(cut), cut.stat().st_size)], 1)[0], "task": 0}
    with pytest.raises(DumpError, match="cut.jsonl.gz: unreadable or corrupt input"):
        docsources.run_task(task, pages.ParseOptions(), str(tmp_path), "0-0")
    stats = docsources.run_task(task, pages.ParseOptions(on_damaged="keep"), str(tmp_path), "1")
    assert stats.damaged is not None and 0 < stats.rows < 79
