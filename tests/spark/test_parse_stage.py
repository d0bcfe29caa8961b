"""The parse stage on local Spark: every shared sample accounted for, clean commit."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.errors import OutputError
from pipeline.spark.parse_stage import run_parse
from pipeline.stage_config import load_config
from pipeline.wiki.xmlpages import DumpError
from tests.support.samples import expected_page_counts

BAD = ("TRUNCATED", ".7z", "index")


def parse(inputs: list[str], out: Path, *overrides: str) -> dict:
    cfg = load_config(
        overrides=[f"parse.input={json.dumps(inputs)}", f"parse.out={out}", *overrides]
    )
    return run_parse(cfg, progress=False)


def hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_every_sample_rows_equal_pages_of_sources_md(spark, wiki_data: Path, tmp_path) -> None:
    expected = expected_page_counts(wiki_data)
    names = sorted(n for n, c in expected.items() if c is not None and not n.endswith(BAD))
    out = tmp_path / "pages"
    stats = parse([str(wiki_data / n) for n in names], out, "parse.split_bytes=4000")
    by_file = {Path(d["file"]).resolve(): d for d in stats["inputs"]}
    for n in names:
        d = by_file[(wiki_data / n).resolve()]
        assert d["pages"] == d["rows"] == expected[n], n
    table = pq.read_table([str(out / f) for f in stats["files"]])
    assert table.num_rows == stats["totals"]["rows"] == sum(expected[n] for n in names)
    assert stats["tasks"] > len(names)  # the multistream dump was read in several tasks
    assert stats["totals"]["status"]["non_wikitext"] >= 2
    # The cleaner's template counts reach the job totals (through the page workers).
    dropped, rendered = stats["totals"]["templates_dropped"], stats["totals"]["templates_rendered"]
    assert dropped["reflist"] > 0 and rendered["convert"] > 0 and len(dropped) == 50
    assert (out / "_SUCCESS").is_file() and (out / "_config.yaml").is_file()
    assert hidden(out) == []


def test_rerun_replaces_output_with_same_bytes(spark, wiki_data: Path, tmp_path) -> None:
    dump = str(wiki_data / "elwikivoyage-pages-articles-multistream.xml-p2566p2583.bz2")
    out = tmp_path / "pages"
    parse([dump], out, "parse.split_bytes=1")
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "stray.txt").write_text("not ours: kept")
    parse([dump], out, "parse.split_bytes=1", "parse.overwrite=true")
    second = {p.name: p.read_bytes() for p in out.iterdir()}
    assert second.pop("stray.txt") == b"not ours: kept"
    assert first == second  # same bytes, _stats.json and _config.yaml included
    assert hidden(out) == []


def test_truncated_input_publishes_nothing(spark, wiki_data: Path, tmp_path) -> None:
    bad = str(wiki_data / "edge-cases" / "simplewiki-multistream-head1000-TRUNCATED.xml")
    good = str(wiki_data / "simplewiki-camchenry.xml.bz2")
    out = tmp_path / "pages"
    with pytest.raises(DumpError, match=r"TRUNCATED\.xml at line 1001, uncompressed byte"):
        parse([good, bad], out)
    assert not out.exists()
    assert hidden(out) == []


def test_truncated_input_kept_with_damage_recorded(spark, wiki_data, tmp_path) -> None:
    bad = str(wiki_data / "edge-cases" / "simplewiki-multistream-head1000-TRUNCATED.xml")
    out = tmp_path / "pages"
    stats = parse([bad], out, "parse.on_damaged=keep")
    assert stats["totals"]["rows"] == 7
    saved = json.loads((out / "_stats.json").read_text())
    assert saved["damaged"][0]["position"].startswith("line 1001")


def test_empty_dump_commits_an_empty_table(spark, wiki_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "pages"
    stats = parse([str(wiki_data / "dbpedia-minidumps" / "wikidata.org.xml.bz2")], out)
    assert stats["totals"]["rows"] == 0
    assert (out / "_SUCCESS").is_file()
    assert pq.read_table(out / "part-00000.parquet").num_rows == 0


def test_output_inside_input_is_refused(spark, tmp_path: Path, wiki_data: Path) -> None:
    with pytest.raises(OutputError, match="lies inside the input"):
        parse([str(tmp_path)], tmp_path / "pages")


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_out_holding_the_input_dump_is_refused(spark, tmp_path: Path, wiki_data: Path) -> None:
    """Issue 12: `parse --input data/dump.xml.bz2 --out data` deleted the dump."""
    data = tmp_path / "data"
    data.mkdir()
    dump = data / "enwiki-20250201-tiny_dump.xml.bz2"
    shutil.copyfile(wiki_data / dump.name, dump)
    (data / "notes.txt").write_text("mine")
    before = snapshot(data)
    for extra in ([], ["parse.overwrite=true"]):
        with pytest.raises(OutputError, match="holds the input"):
            parse([str(dump)], data, *extra)
        assert snapshot(data) == before
    link = tmp_path / "link"
    link.symlink_to(data)
    with pytest.raises(OutputError, match="holds the input"):
        parse([str(link / dump.name)], data)
    assert snapshot(data) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "data",
        "link",
    ]


def test_unrelated_folder_is_refused_and_previous_output_needs_overwrite(
    spark, tmp_path: Path, wiki_data: Path
) -> None:
    dump = str(wiki_data / "enwiki-20250201-tiny_dump.xml.bz2")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(bytes(range(256)) * 8)
    before = snapshot(photos)
    with pytest.raises(OutputError, match=r"holds files this tool did not write \(cat\.jpg\)"):
        parse([dump], photos, "parse.overwrite=true")
    assert snapshot(photos) == before
    out = tmp_path / "pages"
    parse([dump], out)
    first = snapshot(out)
    (out / "README.md").write_text("what these pages are for")
    with pytest.raises(OutputError, match="holds a previous parse output; pass --overwrite"):
        parse([dump], out)
    parse([dump], out, "parse.overwrite=true")
    assert (out / "README.md").read_text() == "what these pages are for"
    parts = {k: v for k, v in first.items() if k.startswith("part-")}
    assert {k: v for k, v in snapshot(out).items() if k.startswith("part-")} == parts
    assert set(snapshot(out)) == set(first) | {"README.md"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pages", "photos"]


def test_dtd_is_refused_by_the_job(spark, tmp_path: Path) -> None:
    dump = tmp_path / "in" / "evil.xml"
    dump.parent.mkdir()
    dump.write_text(
        '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<mediawiki><page><title>&x;</title><ns>0</ns><id>1</id></page></mediawiki>"
    )
    with pytest.raises(DumpError, match="evil.xml at line 1.*DTD is not allowed"):
        parse([str(dump)], tmp_path / "pages")
    assert not (tmp_path / "pages").exists()


def test_split_dumps_give_the_rows_of_one_task(spark, wiki_data: Path, tmp_path) -> None:
    """A plain .xml and a single-stream .bz2 read in many tasks (64 KiB parts, the
    floor) give byte-identical rows to one task, in the same order."""
    import bz2

    raw = (wiki_data / "dewiki-20170701-sample.xml").read_bytes()
    xml, bzip = tmp_path / "dewiki-sample.xml", tmp_path / "dewiki-sample.xml.bz2"
    xml.write_bytes(raw)
    bzip.write_bytes(bz2.compress(raw, 1))  # 100k blocks: ~23 of them
    for dump in (xml, bzip):
        one = parse([str(dump)], tmp_path / f"{dump.name}-one", "parse.split_bytes=1000000000")
        many = parse([str(dump)], tmp_path / f"{dump.name}-many", "parse.split_bytes=1")
        assert one["tasks"] == 1 and many["tasks"] > 5, dump.name
        assert many["totals"]["pages"] == one["totals"]["pages"] == 79
        assert many["totals"]["bytes_read"] == one["totals"]["bytes_read"] == dump.stat().st_size
        tables = [
            pq.read_table([str(tmp_path / f"{dump.name}-{k}" / f) for f in s["files"]])
            for k, s in (("one", one), ("many", many))
        ]
        assert tables[0].equals(tables[1])


def test_jsonl_corpus_glob_is_parsed_like_a_dump(spark, wiki_data: Path, tmp_path) -> None:
    """`--input 'corpus/*.jsonl.gz'`: real text (a shared dump's pages) as a corpus."""
    import gzip

    from pipeline.wiki.xmlpages import PageReader

    dump = wiki_data / "dewiki-20170701-sample.xml"
    reader = PageReader(str(dump))
    found = reader.feed(dump.read_bytes()) + reader.close()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for part in (0, 1):
        docs = [{"id": p.page_id, "text": p.text} for p in found[part::2]]
        lines = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
        (corpus / f"de-{part}.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    out = tmp_path / "pages"
    stats = parse([str(corpus / "*.jsonl.gz")], out)
    assert stats["tasks"] == 2 and stats["totals"]["pages"] == stats["totals"]["rows"] == 79
    table = pq.read_table([str(out / f) for f in stats["files"]]).to_pylist()
    assert sorted(r["page_id"] for r in table) == sorted(p.page_id for p in found)
    by_id = {p.page_id: p.text for p in found}
    assert all(r["text"] == by_id[r["page_id"]] for r in table if r["status"] == "ok")
    assert {r["wiki"] for r in table} == {"de-0", "de-1"}
