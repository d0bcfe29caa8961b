"""``<ref>``s cut before tokenizing (:func:`pipeline.wiki.prestrip.strip_refs`) leave the
cleaned text exactly as the tokenizer path alone gives it, on every page of every sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.wiki import clean
from pipeline.wiki.clean import clean_wikitext
from pipeline.wiki.prestrip import strip_refs
from tests.support.samples import wikitext_pages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a<ref>x</ref>b", "ab"),
        ('a<ref name="x" />b<ref name=y/>c', "abc"),
        ("a<REF Group=n>x</Ref >b", "ab"),
        ("a<ref>{{cite web|url=http://x|title=[[T]]}}</ref>.", "a."),
        # Left for the tokenizer: refs in comments and unparsed tags, nested or commented
        # content, unclosed refs, and tags that only start like <ref.
        ("<!-- <ref>x</ref> -->a<ref>y</ref>", "<!-- <ref>x</ref> -->a"),
        ("<!-- unclosed <ref>x</ref>", "<!-- unclosed <ref>x</ref>"),
        ("<nowiki><ref>x</ref></nowiki><ref>y</ref>", "<nowiki><ref>x</ref></nowiki>"),
        ("<math>x<ref>y</ref>", "<math>x<ref>y</ref>"),
        ("<nowiki/><ref>y</ref>z", "<nowiki/>z"),
        ("<ref>a<!--c--></ref>b", "<ref>a<!--c--></ref>b"),
        ("<ref>a<ref>b</ref>", "<ref>a"),
        ("<ref>never closed", "<ref>never closed"),
        ("<references/><reflist>x</reflist>", "<references/><reflist>x</reflist>"),
    ],
)
def test_which_refs_are_cut(text: str, expected: str) -> None:
    assert strip_refs(text) == expected


def test_many_unclosed_refs_are_left_as_they_are() -> None:
    # Each match attempt stops at the next <ref, so this is linear, not 20,000 page scans.
    text = "word <ref>note " * 20_000
    assert strip_refs(text) == text


def test_cleaned_text_is_the_same_with_and_without_the_cut(
    wiki_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page with wikitext, all namespaces (not only articles): text, categories and
    the counts of rendered and dropped templates."""
    pages = list(wikitext_pages(wiki_data))
    cut = [clean_wikitext(p.text, opts, p.title) for _, p, opts in pages]
    monkeypatch.setattr(clean, "strip_refs", lambda text: text)
    differ, refs = [], 0
    for (name, page, opts), a in zip(pages, cut, strict=True):
        b = clean_wikitext(page.text, opts, page.title)
        refs += strip_refs(page.text) != page.text
        if (a.text, a.categories, a.templates_rendered, a.templates_dropped) != (
            b.text,
            b.categories,
            b.templates_rendered,
            b.templates_dropped,
        ):
            differ.append((name, page.title))
    assert len(pages) > 5000 and refs > 300  # the check saw many pages with refs to cut
    assert differ == []
