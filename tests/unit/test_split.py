"""Splitting one dump into tasks: single-stream bz2 at block boundaries, .xml by byte
ranges. Split reads must give exactly the pages (and rows) of a one-task read."""

from __future__ import annotations

import bz2
import shutil
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.wiki import pages, sources, split
from pipeline.wiki.xmlpages import DumpError, PageReader

WIKI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wiki"
TRUNCATED = "simplewiki-multistream-head1000-TRUNCATED.xml"


def _samples() -> list[Path]:
    """Every shared single-file XML sample: .xml, and .bz2 not in a multistream pair."""
    found = sorted(WIKI.glob("*.xml")) + sorted(WIKI.glob("edge-cases/*.xml"))
    found += [p for p in sorted(WIKI.glob("*.bz2")) if "multistream" not in p.name]
    found += sorted(WIKI.glob("elwikivoyage-split/*.bz2"))
    found += sorted(WIKI.glob("dbpedia-minidumps/*.bz2"))[:12]
    return found


def _variants(src: Path, tmp_path: Path) -> list[Path]:
    """The sample as plain .xml and as single-stream bz2 of 100k blocks (many blocks)."""
    raw = bz2.decompress(src.read_bytes()) if src.suffix == ".bz2" else src.read_bytes()
    stem = src.name.removesuffix(".bz2").removesuffix(".xml")
    xml, bzip = tmp_path / f"{stem}.xml", tmp_path / f"{stem}.xml.bz2"
    xml.write_bytes(raw)
    bzip.write_bytes(bz2.compress(raw, 1))
    return [xml, bzip]


def _whole(path: Path) -> dict:
    return sources._task(str(path), path.name, "whole", 0, None, None, None)


def read_pages(task: dict) -> list[dict]:
    """Every page of ``task`` as a dict (all fields of the parsed page)."""
    reader = PageReader(task["source"], fragment=task["kind"] != "whole")
    if task["siteinfo"]:
        reader.siteinfo.namespaces = dict(task["siteinfo"]["namespaces"])
    out = []
    with sources.open_task(task) as (stream, _):
        while True:
            data = stream.read(1 << 16)
            out += [asdict(p) for p in (reader.feed(data) if data else reader.close())]
            if not data:
                return out


def read_all(tasks: list[dict]) -> list[dict]:
    return [p for t in tasks for p in read_pages(t)]


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(split, "MIN_SPLIT_BYTES", 1)


@pytest.mark.parametrize("src", _samples(), ids=lambda p: p.name)
def test_split_reads_equal_one_task_read(src: Path, tmp_path: Path, tiny: None) -> None:
    for path in _variants(src, tmp_path):
        size = path.stat().st_size
        if src.name == TRUNCATED:
            with pytest.raises(DumpError, match="truncated"):
                read_pages(_whole(path))
            tasks = sources.plan_tasks([(str(path), size)], max(size // 5, 1))
            with pytest.raises(DumpError, match="truncated"):
                read_all(tasks)
            continue
        whole = read_pages(_whole(path))
        # up to ~50 parts (997 bytes splits most pages of a small .xml), and 3 parts
        for split_bytes in (max(997, size // 50), max(size // 3, 1)):
            tasks = sources.plan_tasks([(str(path), size)], split_bytes)
            if "bgwiki" in path.name:  # UTF-16: `<page>` is not those bytes; read whole
                assert [t["kind"] for t in tasks] == ["whole"]
            elif size > split_bytes and whole:
                assert len(tasks) > 1, (path.name, split_bytes)
            got = read_all(tasks)
            assert [p["page_id"] for p in got] == [p["page_id"] for p in whole]
            assert got == whole


def test_bz2_blocks_match_the_format(tmp_path: Path) -> None:
    """Block magics found = blocks bz2 made; each decodes to its slice of the text."""
    raw = bz2.decompress((WIKI / "elwikivoyage-sample-pages-articles.xml.bz2").read_bytes())
    data = bz2.compress(raw, 1)
    bits, at = [], 0
    while (p := split.find_magic(data, split._BLOCK, at, len(data))) is not None:
        bits.append(p)
        at = p + 1
    assert bits[0] == 32  # right after "BZh1"
    end = split.find_magic(data, split._END, 0, len(data))
    assert end is not None and end > bits[-1]
    decoded = [split.decode_block(data, p, q) for p, q in zip(bits, [*bits[1:], end], strict=True)]
    assert b"".join(decoded) == raw
    assert len(decoded) > 50  # 100k-byte blocks (before bzip2's run-length step)
    with pytest.raises(OSError):
        split.decode_block(data, bits[1], bits[2] - 8)  # cut short: CRC/format error


def test_concatenated_streams_split(tmp_path: Path, tiny: None) -> None:
    """A multistream dump without its index is split across its many streams."""
    src = WIKI / "elwikivoyage-pages-articles-multistream.xml-p2566p2583.bz2"
    dump = tmp_path / src.name
    shutil.copy(src, dump)
    tasks = sources.plan_tasks(sources.expand_inputs([str(dump)]), 1000)
    assert len(tasks) == 16 and tasks[0]["kind"] == "bz2_split"
    assert tasks[0]["siteinfo"]["dbname"] == "elwikivoyage"
    got = [p for t in tasks for p in read_pages(t)]
    assert [p["page_id"] for p in got] == [p["page_id"] for p in read_pages(_whole(dump))]
    assert len(got) == 17


def test_small_files_gz_and_default_are_one_task() -> None:
    gz = WIKI / "elwikivoyage-stub-meta-history-sample.xml.gz"
    xml = WIKI / "dewiki-20170701-sample.xml"
    assert [t["kind"] for t in sources.plan_tasks(sources.expand_inputs([str(gz)]), 1)] == ["whole"]
    assert len(sources.plan_tasks(sources.expand_inputs([str(xml)]), 32 << 20)) == 1
    tasks = sources.plan_tasks(sources.expand_inputs([str(xml)]), 1)  # floored at 64 KiB
    assert len(tasks) == -(-xml.stat().st_size // split.MIN_SPLIT_BYTES)


@pytest.mark.parametrize("name", ["enwiki-10k.xml.bz2", "dewiki-20170701-sample.xml"])
def test_split_rows_equal_one_task_rows(name: str, tmp_path: Path, tiny: None) -> None:
    """Whole pages-table rows (cleaned text included), split vs one task, per variant."""
    opts = pages.ParseOptions(page_worker=False)
    for path in _variants(WIKI / name, tmp_path):
        size = path.stat().st_size

        def rows(tasks: list[dict], out: Path) -> list[dict]:
            out.mkdir()
            got = []
            for t in tasks:
                stats = pages.run_task(t, opts, str(out), "0-0")
                assert stats.rows == stats.pages
                got += pq.read_table(stats.file).to_pylist()
            return got

        whole = rows([{**_whole(path), "task": 0}], tmp_path / f"{path.name}-whole")
        tasks = sources.plan_tasks([(str(path), size)], 3001)
        assert len(tasks) > 3
        assert rows(tasks, tmp_path / f"{path.name}-split") == whole
        assert len(whole) > 50
