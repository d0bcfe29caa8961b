"""Parse tasks without Spark: planning, multistream ranges, statuses, commit files."""

from __future__ import annotations

import bz2
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.contracts.pages import STATUSES
from pipeline.wiki import pages, sources
from pipeline.wiki.xmlpages import DumpError

WIKI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wiki"
MULTI = WIKI / "elwikivoyage-pages-articles-multistream.xml-p2566p2583.bz2"
INDEX = WIKI / "elwikivoyage-pages-articles-multistream-index.txt-p2566p2583.bz2"
SINGLE = WIKI / "elwikivoyage-pages-articles.xml-p2566p2583.bz2"


def run_all(tasks, tmp_path: Path, opts: pages.ParseOptions | None = None) -> list[dict]:
    opts = opts or pages.ParseOptions()
    rows = []
    for t in tasks:
        stats = pages.run_task(t, opts, str(tmp_path), "0-0")
        rows += pq.read_table(stats.file).to_pylist()
        assert stats.rows == stats.pages  # every <page> read became one row
    return rows


def test_index_is_found_and_read() -> None:
    assert sources.index_for(str(MULTI)) == str(INDEX)
    assert sources.index_for(str(SINGLE)) is None
    assert sources.read_index(str(INDEX)) == [(718, 5), (4735, 5), (8475, 5), (12237, 2)]


@pytest.mark.parametrize("split_bytes", [1, 5000, 10**9])
def test_multistream_ranges_equal_single_stream_twin(tmp_path: Path, split_bytes: int) -> None:
    files = sources.expand_inputs([str(MULTI)])
    tasks = sources.plan_tasks(files, split_bytes)
    assert len(tasks) == {1: 4, 5000: 2, 10**9: 1}[split_bytes]
    assert all(t["kind"] == "range" and t["siteinfo"]["dbname"] == "elwikivoyage" for t in tasks)
    multi = run_all(tasks, tmp_path)
    single = run_all(sources.plan_tasks(sources.expand_inputs([str(SINGLE)]), 1), tmp_path)
    assert len(single) == 17
    strip = [{k: v for k, v in r.items() if k != "source"} for r in single]
    assert [{k: v for k, v in r.items() if k != "source"} for r in multi] == strip


def test_mismatched_index_is_refused_before_work(tmp_path: Path) -> None:
    dump = tmp_path / MULTI.name
    shutil.copy(MULTI, dump)
    (tmp_path / INDEX.name).write_bytes(bz2.compress(b"700:2566:X\n4735:2567:Y\n"))
    with pytest.raises(DumpError, match="does not match its dump .* no bz2 stream starts at"):
        sources.plan_tasks(sources.expand_inputs([str(dump)]), 1)


def test_unreadable_index(tmp_path: Path) -> None:
    dump = tmp_path / MULTI.name
    shutil.copy(MULTI, dump)
    (tmp_path / INDEX.name).write_bytes(b"not bz2")
    with pytest.raises(DumpError, match="unreadable multistream index"):
        sources.plan_tasks(sources.expand_inputs([str(dump)]), 1)


def test_inputs_folder_glob_and_missing() -> None:
    split = sources.expand_inputs([str(WIKI / "elwikivoyage-split")])
    assert len(split) == 6
    assert sources.expand_inputs([str(WIKI / "elwikivoyage-split" / "*p1*.bz2")])
    with pytest.raises(DumpError, match="input not found"):
        sources.expand_inputs([str(WIKI / "nope.xml.bz2")])
    with pytest.raises(DumpError, match="no dump or corpus files"):
        sources.expand_inputs([str(WIKI / "*.nothing")])


def test_7z_gets_conversion_advice() -> None:
    files = sources.expand_inputs([str(WIKI / "aawiki-20260101-pages-meta-history.xml.7z")])
    with pytest.raises(DumpError, match=r"7z x -so .* \| bzip2 >"):
        sources.plan_tasks(files, 1)


def test_statuses_on_real_samples(tmp_path: Path) -> None:
    en = WIKI / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    rows = run_all(sources.plan_tasks(sources.expand_inputs([str(en)]), 1), tmp_path)
    status = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    assert len(rows) == 206
    assert sum(r["redirect_to"] is not None for r in rows) == 100  # as SOURCES.md counts
    assert status["namespace"] == 1  # the one ns-4 page (itself a redirect)
    assert status["redirect"] == 99
    assert status["ok"] == 106
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["text"] and r["wiki"] == "enwiki" for r in ok)
    assert any("Anarchism" in r["categories"] for r in ok)
    assert all(r["text"] is None for r in rows if r["status"] != "ok")
    assert all(r["redirect_to"] for r in rows if r["status"] == "redirect")

    wd = WIKI / "wikidatawiki-pages-articles-sample1.xml.bz2"
    rows = run_all(sources.plan_tasks(sources.expand_inputs([str(wd)]), 1), tmp_path)
    assert {r["title"]: r["status"] for r in rows if r["ns"] == 0} == {
        "Q1": "non_wikitext",
        "Q223557": "non_wikitext",
    }


def test_too_large_and_namespaces_option(tmp_path: Path) -> None:
    opts = pages.ParseOptions(namespaces=(0, 14), max_wikitext_bytes=4000)
    rows = run_all(sources.plan_tasks(sources.expand_inputs([str(SINGLE)]), 1), tmp_path, opts)
    by_status = {
        s: sorted(r["wikitext_bytes"] for r in rows if r["status"] == s)
        for s in ("ok", "too_large")
    }
    assert len(by_status["ok"]) == 13  # incl. the ns-14 category page, kept on request
    assert by_status["too_large"] == [4146, 4197, 4370, 5519]
    assert max(by_status["ok"]) <= 4000


def test_truncated_input_fail_or_keep(tmp_path: Path) -> None:
    path = WIKI / "edge-cases" / "simplewiki-multistream-head1000-TRUNCATED.xml"
    tasks = sources.plan_tasks(sources.expand_inputs([str(path)]), 10**9)
    with pytest.raises(DumpError, match="TRUNCATED.xml at line 1001"):
        run_all(tasks, tmp_path)
    split_tasks = sources.plan_tasks(sources.expand_inputs([str(path)]), 1)  # 64 KiB parts
    assert [t["kind"] for t in split_tasks] == ["xml_split", "xml_split"]
    with pytest.raises(
        DumpError,
        match=r"TRUNCATED.xml at line \d+, uncompressed byte "
        r"\d+ of the part from file byte \d+: input ends inside",
    ):
        run_all(split_tasks, tmp_path)
    stats = pages.run_task(tasks[0], pages.ParseOptions(on_damaged="keep"), str(tmp_path), "1")
    assert stats.rows == stats.pages == 7
    assert stats.damaged["position"].startswith("line 1001")
    assert stats.damaged["cut_off_page"] is True
