"""Wikitext cleaning: behaviour on strings, and no leftover markup on the real samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.wiki.clean import CleanOptions, CleanTimeout, clean_wikitext
from tests.support.samples import read_sample

WIKI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wiki"
LEFTOVERS = [
    "{{",
    "}}",
    "[[",
    "]]",
    "<ref",
    "{|",
    "|}",
    "'''",
    "<!--",
    "&amp;",
    "&nbsp;",
    "__TOC__",
    "__NOTOC__",
    "thumb|",
    "</",
    "<br",
]


def clean(text: str, **kw) -> str:
    return clean_wikitext(text, CleanOptions(**kw) if kw else None).text


def test_headings_and_paragraphs() -> None:
    text = "Intro line.\n\n== History ==\nFirst para.\n\nSecond para.\n=== Early ===\nOld."
    assert clean(text) == "Intro line.\n\nHistory\n\nFirst para.\n\nSecond para.\n\nEarly\n\nOld."


def test_links_become_labels() -> None:
    assert clean("A [[Paris]] and [[Paris, Texas|a town]] and [[Foo#Bar]].") == (
        "A Paris and a town and Foo."
    )
    assert clean("[http://example.org Example site] and http://bare.example.org") == (
        "Example site and"
    )


def test_templates_refs_comments_magic_words_removed() -> None:
    text = (
        "{{Infobox|name=X|pop={{formatnum:5}}}}'''X''' is a city.<ref>Some "
        "[[source]]</ref><ref name=a/> It is {{convert|5|km}} long.<!-- hidden --> "
        "__NOTOC__{{PAGENAME}}__TOC__"
    )
    assert clean(text) == "X is a city. It is long."


def test_tables_and_galleries_removed() -> None:
    text = "Before.\n{| class=wikitable\n|-\n! H\n|-\n| cell\n|}\nAfter.\n"
    text += "<gallery>\nFile:A.jpg|caption\n</gallery>\nEnd."
    assert clean(text) == "Before.\n\nAfter.\n\nEnd."


def test_file_links_removed_in_every_language() -> None:
    text = (
        "A [[File:X.jpg|thumb|left|A caption with [[link]]]] B [[Image:Y.png]] "
        "C [[Datei:Z.svg|mini|Bild]] D [[Αρχείο:W.jpg|thumb|Λεζάντα]] "
        "E [[Gambar:Q.jpg|thumb|left|250px|Keterangan]] F"
    )
    assert clean(text) == "A B C D E F"


def test_namespace_names_from_siteinfo() -> None:
    opts = CleanOptions.for_namespaces({6: "Tiedosto", 14: "Luokka", 0: ""})
    res = clean_wikitext("Teksti [[Tiedosto:Kuva.abc|kuvateksti]].[[Luokka:Kaupungit]]", opts)
    assert res.text == "Teksti."
    assert res.categories == ["Kaupungit"]


def test_categories_listed_not_in_text() -> None:
    res = clean_wikitext(
        "Body.\n[[Category:Cities in Germany|Berlin]]\n[[Kategorie:Stadt]]\n"
        "[[Category:Cities in Germany]]\nSee [[:Category:Capitals]]."
    )
    assert res.categories == ["Cities in Germany", "Stadt"]
    assert res.text == "Body.\n\nSee Category:Capitals."


def test_interwiki_links_removed() -> None:
    assert clean("Berlin.\n[[de:Berlin]]\n[[zh-yue:柏林]]\n[[simple:Berlin]]") == "Berlin."


def test_entities_quotes_and_lists() -> None:
    text = "'''Bold''' and ''italic'' &amp; R&amp;D&nbsp;x &lt;3\n* one\n* two [[x|y]]\n# three"
    assert clean(text) == "Bold and italic & R&D\u00a0x <3\none\ntwo y\nthree"


def test_entity_escaped_markup_is_parsed() -> None:
    assert clean("Fact.&lt;ref&gt;Cite {{x}}&lt;/ref&gt; More.") == "Fact. More."


def test_time_guard() -> None:
    with pytest.raises(CleanTimeout, match="longer than 0s"):
        clean_wikitext("[[a]] " * 2000, CleanOptions(timeout_s=0.0))


def _ns0_pages():
    for path in sorted(WIKI.rglob("*")):
        if path.suffix not in (".bz2", ".gz", ".xml") or "index" in path.name:
            continue
        if "TRUNCATED" in path.name:
            continue
        reader, pages = read_sample(path)
        opts = CleanOptions.for_namespaces(reader.siteinfo.namespaces)
        for p in pages:
            if p.ns == 0 and p.text and not p.redirect_to and p.content_model in (None, "wikitext"):
                yield path.name, p, opts


def test_no_leftover_markup_on_real_samples() -> None:
    seen, problems = 0, []
    for name, page, opts in _ns0_pages():
        text = clean_wikitext(page.text, opts).text
        seen += 1
        problems += [(name, page.title, m) for m in LEFTOVERS if m in text]
    assert seen > 2500
    assert problems == []


def test_token_rendering_matches_the_full_tree_on_real_samples() -> None:
    """The fast path (templates, refs, tables and comments cut out of the token list, most
    nodes rendered straight from tokens) must give exactly what walking mwparserfromhell's
    full tree gives, text and categories, on every real page."""
    import mwparserfromhell

    from pipeline.wiki.clean import _Walker

    seen, differ = 0, []
    for name, page, opts in _ns0_pages():
        fast, full = _Walker(opts, float("inf")), _Walker(opts, float("inf"))
        rendered = fast.render_wikitext(page.text)
        whole = full.render(mwparserfromhell.parse(page.text, skip_style_tags=True).nodes)
        seen += 1
        if (rendered, fast.categories) != (whole, full.categories):
            differ.append((name, page.title))
    assert seen > 2500
    assert differ == []


def test_text_around_nested_dropped_spans_is_kept() -> None:
    text = (
        "A<ref>x{{t|<ref>y</ref>}}</ref>B{{a|{{b|{{{c|d}}}}}}}C<!-- {{ -->D"
        '<table><tr><td><table><td>n</td></table></td></tr></table>E<Ref name="q"/>F'
    )
    assert clean(text) == "ABCDEF"


def test_links_tags_and_entities_in_odd_places() -> None:
    text = (
        "[[Paris|the &amp; city]] [[Foo&nbsp;bar]] [[a|b [[c]] d]] <span>in</span> "
        "<div>block</div> [http://x.org ext [[y]]] <b\n>bold</b>\n== [[H]] &gt; x ==\n"
        "[[Category:Cat{{t}}name]] [[:Category:Shown]]"
    )
    result = clean_wikitext(text)
    assert result.text == (
        "the & city Foo\u00a0bar b c d in\nblock\next y bold\n\nH > x\n\nCategory:Shown"
    )
    assert result.categories == ["Catname"]
