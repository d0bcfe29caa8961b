"""The streaming page reader on every real sample, on history/stub dumps and bad XML."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.wiki.xmlpages import DumpError, PageReader
from tests.support.samples import expected_page_counts
from tests.support.samples import read_sample as read_all

WIKI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wiki"


def sample_files() -> list[str]:
    counts = expected_page_counts(WIKI)
    return sorted(n for n, c in counts.items() if c is not None and not n.endswith(".7z"))


def test_sources_md_lists_the_samples() -> None:
    assert len(sample_files()) > 140


@pytest.mark.parametrize("name", sample_files())
def test_page_count_matches_sources_md(name: str) -> None:
    reader, pages = read_all(WIKI / name)
    expected = expected_page_counts(WIKI)[name]
    assert len(pages) == reader.pages_started == expected
    assert all(p.page_id is not None and p.title for p in pages)


def test_truncated_file_fails_at_its_position() -> None:
    path = WIKI / "edge-cases" / "simplewiki-multistream-head1000-TRUNCATED.xml"
    reader = PageReader(str(path))
    pages = reader.feed(path.read_bytes())
    assert len(pages) == 7  # the complete pages before the cut
    with pytest.raises(DumpError, match=r"TRUNCATED\.xml at line 1001, uncompressed byte 74372"):
        reader.close()


def test_utf16_dump_is_decoded() -> None:
    reader, pages = read_all(WIKI / "bgwiki-latest-pages-articles-shortened.xml.bz2")
    assert reader.siteinfo.dbname == "bgwiki"
    assert any("България" in (p.text or "") or "Бълг" in p.title for p in pages)


def test_history_keeps_latest_revision_and_deleted_text_is_none() -> None:
    path = WIKI / "edge-cases" / "simplewiki-history-sample-with-deleted-revisions.xml"
    reader, pages = read_all(path)
    assert sum(p.revisions for p in pages) == 33
    text = path.read_text(encoding="utf-8")
    for p in pages:
        # the kept revision has the page's greatest timestamp
        block = text[text.index(f"<title>{p.title}</title>") :].split("</page>")[0]
        stamps = [s.split("</timestamp>")[0] for s in block.split("<timestamp>")[1:]]
        assert p.timestamp == max(stamps)


def test_stub_dump_has_no_text() -> None:
    reader, pages = read_all(WIKI / "elwikivoyage-stub-meta-history-sample.xml.gz")
    assert len(pages) == 20
    assert sum(p.revisions for p in pages) == 118
    assert all(not p.text for p in pages)
    assert sum(p.redirect_to is not None for p in pages) == 13


def test_non_wikitext_models_are_read() -> None:
    _, pages = read_all(WIKI / "wikidatawiki-pages-articles-sample1.xml.bz2")
    models = {p.title: p.content_model for p in pages}
    assert models["Q1"] == "wikibase-item"
    assert {p.content_model for p in pages if p.ns == 120} == {"wikibase-property"}


def test_no_siteinfo() -> None:
    reader, pages = read_all(WIKI / "enwiki-20250201-tiny_dump.xml.bz2")
    assert reader.siteinfo.dbname is None
    assert len(pages) == 70


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>
<mediawiki><page><title>&lol2;</title><ns>0</ns><id>1</id></page></mediawiki>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<mediawiki><page><title>&xxe;</title><ns>0</ns><id>1</id></page></mediawiki>"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_dtd_and_entities_are_refused(doc: bytes) -> None:
    reader = PageReader("crafted.xml")
    with pytest.raises(DumpError, match=r"crafted\.xml at line 2.*DOCTYPE/DTD is not allowed"):
        reader.feed(doc)


def test_undeclared_entity_is_an_error_not_expanded() -> None:
    reader = PageReader("crafted.xml")
    with pytest.raises(DumpError, match="undefined entity"):
        reader.feed(b"<mediawiki><page><title>&ext;</title></page></mediawiki>")


def test_fragment_of_pages_without_root() -> None:
    """A multistream byte range: pages only, maybe followed by the </mediawiki> footer."""
    page = b"<page><title>A</title><ns>0</ns><id>7</id><revision><id>3</id>"
    page += b"<timestamp>2020-01-01T00:00:00Z</timestamp><text>x</text></revision></page>"
    for tail in (b"", b"\n</mediawiki>\n"):
        reader = PageReader("range", fragment=True)
        pages = reader.feed(page + page.replace(b"<id>7", b"<id>8") + tail) + reader.close()
        assert [p.page_id for p in pages] == [7, 8]


def test_page_without_id_is_an_error() -> None:
    reader = PageReader("bad.xml")
    with pytest.raises(DumpError, match=r"<page> #1 has no <id>"):
        reader.feed(b"<mediawiki><page><title>A</title><ns>0</ns></page></mediawiki>")
