# ruff: noqa: E501  (real-page strings are kept whole, one case a line)
"""Inline templates rendered by the cleaner (issue 14), on strings from real pages.

Every wikitext string here is copied from a page of the shared samples; the page title
and file are named, and :func:`test_strings_are_from_the_samples` checks they are there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.wiki.clean import clean_wikitext
from pipeline.wiki.templates import TABLE, lookup, normalise
from pipeline.wiki.templates.names import NAMES
from pipeline.wiki.templates.render import RENDERERS
from tests.support.samples import read_sample

EN = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
DBP_EN = "dbpedia-minidumps/en.xml.bz2"
DBP_FR = "dbpedia-minidumps/fr.xml.bz2"
DBP_PT = "dbpedia-minidumps/pt.xml.bz2"
DBP_DE = "dbpedia-minidumps/de.xml.bz2"
TINY = "enwiki-20250201-tiny_dump.xml.bz2"

# (sample file, page title, wikitext as on the page, our text)
CASES = [
    (EN, "Alabama", "At {{convert|1300|mi|km}}, Alabama has", "At 1,300 miles (2,100 km), Alabama has"),
    (EN, "Alabama", "at a height of {{convert|2413|ft|0|abbr=on}}.", "at a height of 2,413 ft (735 m)."),
    (EN, "Alabama", "with {{convert|52419|sqmi|km2|abbr=out|sp=us}} of total area",
     "with 52,419 square miles (135,765 km2) of total area"),
    (EN, "Atlantic Ocean", "of about {{convert|106,400,000|km2|sqmi}},",
     "of about 106,400,000 square kilometres (41,100,000 sq mi),"),
    (EN, "Aardwolf", "The aardwolf is about {{convert|55|to|80|cm|in}} long",
     "The aardwolf is about 55 to 80 centimetres (22 to 31 in) long"),
    (DBP_EN, "Atlantic Ocean", "North Atlantic: {{cvt|41490000|km2}},",
     "North Atlantic: 41,490,000 km2 (16,020,000 sq mi),"),
    (EN, "Apollo 11", "The inscription read:\n{{quote|''Here men from the planet Earth first set foot "
     "upon the Moon, July 1969 A.D. We came in peace for all mankind.''}}",
     "The inscription read:\n\nHere men from the planet Earth first set foot upon the Moon, July 1969 "
     "A.D. We came in peace for all mankind."),
    (EN, "Achilles", "'''Achilles''' ({{IPAc-en|ə|ˈ|k|ɪ|l|iː|z}}; {{lang-grc|Ἀχιλλεύς}}, ''Akhilleus'', {{IPA-el|akʰilːéu̯s|pron}})",
     "Achilles (/əˈkɪliːz/; Ancient Greek: Ἀχιλλεύς, Akhilleus, [akʰilːéu̯s])"),
    (EN, "Anthropology", "''ánthrōpos'' ({{lang|grc|{{linktext|ἄνθρωπος}}}}, \"[[human]]\")",
     "ánthrōpos (ἄνθρωπος, \"human\")"),
    (EN, "Algeria", "'''Algeria''' ({{lang-ar|{{large|الجزائر}}}} ''{{transl|ar|al-Jazā'ir}}''; {{lang-ber|ⵍⵣⵣⴰⵢⴻⵔ}} ''Dzayer''),",
     "Algeria (Arabic: الجزائر al-Jazā'ir; ⵍⵣⵣⴰⵢⴻⵔ Dzayer),"),
    (EN, "Aikido", "{{Nihongo|'''Aikido'''|合気道|Aikidō|lead=yes}}", "Aikido (合気道, Aikidō)"),
    (EN, "ASCII", "'''ASCII''' ({{IPAc-en|audio=En-us-ASCII.ogg|ˈ|æ|s|k|i}} {{respell|ASS|kee}}), abbreviated",
     "ASCII (/ˈæski/ ASS-kee), abbreviated"),
    (EN, "Autism", "diagnosed with ASD {{as of|2014|lc=y}}, a 30% increase",
     "diagnosed with ASD as of 2014, a 30% increase"),
    (EN, "Alabama", "{{as of|2010}}, the three largest denominational groups",
     "As of 2010, the three largest denominational groups"),
    (TINY, "Anarchism", "[[Zeno of Citium]] ({{Circa|334|262 BC}}), whose", "Zeno of Citium (c. 334–262 BC), whose"),
    (EN, "Abraham Lincoln", "birth_date    = {{birth date|1809|2|12}}", "birth_date = February 12, 1809"),
    (EN, "Abraham Lincoln", "death_date    = {{death date and age|1865|4|15|1809|2|12}}",
     "death_date = April 15, 1865 (aged 56)"),
    (EN, "Algeria", "[[Mount Tahat]] ({{formatnum: 3003}} m).", "Mount Tahat (3,003 m)."),
    (EN, "Alkali metal", "For instance, {{val|1.00794|(7)}} stands for {{val|1.00794|0.00007}}, while",
     "For instance, 1.00794(7) stands for 1.00794 ± 0.00007, while"),
    (EN, "Ayn Rand", "birth_name = {{nowrap|Alisa Zinov'yevna Rosenbaum}}", "birth_name = Alisa Zinov'yevna Rosenbaum"),
    (DBP_EN, "Angela Merkel", "Springer, 1989, {{ISBN|978-1-349-20275-1}}</ref>",
     "Springer, 1989, ISBN 978-1-349-20275-1"),
    (EN, "Aristotle", "main_interests = {{hlist|[[Biology]]|[[Zoology]]}}", "main_interests = Biology · Zoology"),
    (EN, "Algeria", "{{coord|28|N|2|E|scale:10000000_type:country_region:DZ|format=dms|display=title}}", ""),
    (EN, "American Revolutionary War", "(1778{{ndash}}83)", "(1778–83)"),
    (EN, "A", "the letter {{angbr|a}} represents", "the letter ⟨a⟩ represents"),
    (EN, "Alkane", "(general formula {{chem|C|''n''|H|2''n''+2}})", "(general formula CnH2n+2)"),
    (EN, "Alabama", "North= {{flag|Tennessee}}", "North= Tennessee"),
    (DBP_FR, "Autriche", "à {{nobr|86 ans}}, pendant", "à 86 ans, pendant"),
    (DBP_FR, "Autriche", "* {{nombre|71|sièges}} à l’", "71 sièges à l’"),
    (DBP_FR, "Autriche", "''{{langue|de|Österreich}}'' signifie", "Österreich signifie"),
    (DBP_FR, "Autriche", "Otton {{Ier}}]]", "Otton Ier"),
    (DBP_FR, "Berlin", "(de {{heure|4|30}} du matin à {{heure|1}} du matin", "(de 4 h 30 du matin à 1 h du matin"),
    (DBP_PT, "Berlim", "os {{fmtn|90000}} habitantes", "os 90,000 habitantes"),
    (DBP_PT, "Berlim", "no {{séc|XIII}}, Berlim", "no século XIII, Berlim"),
    (DBP_DE, "Berlin", "({{Höhe|115|DE-NHN}}) im", "(115 m) im"),
    (DBP_DE, "Arthur Schopenhauer",
     "{{Zitat\n |Text=Alle Verliebtheit, wie ätherisch [fein, geistig] sie sich auch gebärden mag, "
     "wurzelt allein im Geschlechtstriebe.}}",
     "Alle Verliebtheit, wie ätherisch [fein, geistig] sie sich auch gebärden mag, wurzelt allein "
     "im Geschlechtstriebe."),
]  # fmt: skip


@pytest.mark.parametrize(("sample", "title", "wikitext", "expected"), CASES)
def test_renderers_on_real_strings(sample: str, title: str, wikitext: str, expected: str) -> None:
    assert clean_wikitext(wikitext).text == expected


def test_strings_are_from_the_samples(wiki_data: Path) -> None:
    """Each case's wikitext occurs in its page (so the cases stay real)."""
    wanted: dict[str, dict[str, list[str]]] = {}
    for sample, title, wikitext, _ in CASES:
        wanted.setdefault(sample, {}).setdefault(title, []).append(wikitext)
    missing = []
    for sample, titles in wanted.items():
        _, pages = read_sample(wiki_data / sample)
        texts = {p.title: p.text or "" for p in pages}
        for title, strings in titles.items():
            missing += [(title, s) for s in strings if s not in texts.get(title, "")]
    assert missing == []


def test_counts_rendered_and_dropped() -> None:
    # Alabama (English sample): a rendered {{convert}} and a dropped citation.
    res = clean_wikitext(
        "At {{convert|1300|mi|km}}, Alabama has<ref>{{cite web|url=x}}</ref> one of the "
        "longest {{citation needed|date=May 2016}} waterways. {{convert|2413|ft|0|abbr=on}}"
    )
    assert res.templates_rendered == {"convert": 2}
    assert res.templates_dropped == {"citation needed": 1}  # the one in <ref> is not seen


def test_pagename_needs_the_title() -> None:
    assert clean_wikitext("{{PAGENAME}} is", title="Berlin").text == "Berlin is"
    res = clean_wikitext("{{PAGENAME}} is")
    assert (res.text, res.templates_dropped) == ("is", {"pagename": 1})


def test_case_magic_words() -> None:
    assert clean_wikitext("{{lc:ABC}} {{uc:abc}} {{ucfirst:abc}}").text == "abc ABC Abc"


def test_names_are_normalised_and_unique() -> None:
    assert normalise(" Convert_ ") == "convert"
    assert normalise("Template:Lang-fr") == "lang-fr"
    assert normalise("formatnum: 1,234") == "formatnum:"
    assert lookup("lang-fr") is RENDERERS["lang x"]
    assert lookup("cite web") is None
    seen: dict[str, str] = {}
    clashes = []
    for kind, languages in NAMES.items():
        assert kind in RENDERERS
        for names in languages.values():
            for name in names:
                key = normalise(name)
                if seen.setdefault(key, kind) != kind:
                    clashes.append((key, seen[key], kind))
    assert clashes == []
    assert len(TABLE) == len(seen)


def test_parse_task_counts_templates(wiki_data: Path, tmp_path: Path) -> None:
    """The parse task's stats carry the cleaner's template counts, and the page worker
    (titles in, counts out) gives the same rows and counts as in-process cleaning."""
    import pyarrow.parquet as pq

    from pipeline.wiki import pages

    path = wiki_data / "simplewiki-camchenry.xml.bz2"
    task = {"task": 0, "source": str(path), "name": path.name, "kind": "whole", "start": 0}
    task |= {"end": None, "siteinfo": None, "expected_pages": None}
    found = []
    for worker in (False, True):
        out = tmp_path / str(worker)
        out.mkdir()
        stats = pages.run_task(task, pages.ParseOptions(page_worker=worker), str(out), "0-0")
        rows = pq.read_table(out).to_pylist()
        found.append((stats.templates_rendered, stats.templates_dropped, rows))
    assert found[0] == found[1]
    rendered, dropped, _ = found[0]
    assert rendered["ndash"] > 0
    assert dropped["reflist"] > 0
