"""Template names per renderer and language: data, no logic.

``NAMES[renderer][language]`` lists the names (and redirects) under which a wiki calls
the template that :data:`pipeline.wiki.templates.render.RENDERERS` renders as
``renderer``. To support another wiki's names, add them under its language code: no code
changes. Names are matched after :func:`pipeline.wiki.templates.normalise` (case-folded,
``_`` as a space, runs of spaces as one). The wiki's own language is not consulted (dump
headers can lie about it, see the shared samples' SOURCES.md), so every language's names
are live on every wiki; names that mean different things in two languages must not be
added.

Non-English names were checked in the shared samples (``../shared/data/wiki``), file
named in the comment.

``FAMILIES`` maps a name prefix to a renderer for template families that carry a code in
their name (``{{lang-fr|…}}``, ``{{IPA-de|…}}``).
"""

from __future__ import annotations

NAMES: dict[str, dict[str, list[str]]] = {
    "convert": {
        "en": ["convert", "cvt", "convinfobox"],
    },
    "quote": {
        "en": [
            "quote",
            "cquote",
            "blockquote",
            "quotation",
            "quote frame",
            "bquote",
            "centered pull quote",
            "rquote",
            "quote box",
            "poemquote",
            "gquote",
        ],
        # dbpedia-minidumps/de.xml.bz2 (Arthur Schopenhauer): {{Zitat |Text=…}}
        "de": ["zitat"],
    },
    "lang": {
        "en": ["lang", "script", "transl", "transliteration", "resize"],
        # dbpedia-minidumps/fr.xml.bz2 (Autriche): {{langue|de|Österreich}}
        "fr": ["langue"],
    },
    "lang x": {"en": ["langx"]},
    "nihongo": {"en": ["nihongo", "nihongo2", "nihongo3", "nihongo foot", "nihongo krt"]},
    "ipa": {
        "en": [
            "ipa",
            "ipa-all",
            "ipablink",
            "ipaslink",
            "ipa2",
            "ipa link",
            "ipa-en",
            "ipac2",
            "audio-ipa",
        ],
        # dbpedia-minidumps/fr.xml.bz2 (Berlin): {{MSAPI|[bɛʁ.lɛ̃]}}
        "fr": ["msapi", "api"],
    },
    "ipac": {"en": ["ipac-en", "ipac-ar", "ipac-es", "ipac-de", "ipac-fr", "ipac-it"]},
    "respell": {"en": ["respell", "pronunciation respelling key"]},
    "as of": {"en": ["as of", "as at", "asof"]},
    "circa": {"en": ["circa", "c.", "ca."]},
    "floruit": {"en": ["fl.", "floruit"]},
    "date": {
        "en": [
            "birth date",
            "birth-date",
            "dob",
            "death date",
            "start date",
            "end date",
            "film date",
            "release date",
            "start date and age",
            "end date and age",
            "birth date and age",
            "bda",
            "death-date",
        ],
    },
    "death date and age": {"en": ["death date and age", "dda"]},
    "formatnum": {
        "en": ["formatnum", "formatnum:", "nts", "ntsh", "number table sorting"],
        # dbpedia-minidumps/pt.xml.bz2 (Berlim): {{fmtn|90000}}
        "pt": ["fmtn"],
    },
    "words": {
        # dbpedia-minidumps/fr.xml.bz2 (Autriche): {{nombre|71|sièges}},
        # {{unité|307,665 milliards}}, {{date|976}}; (Antoine Meillet) {{date-|19 janvier}}
        "fr": ["nombre", "unité", "date", "date-"],
    },
    "height": {
        # dbpedia-minidumps/de.xml.bz2 (Berlin): {{Höhe|115|DE-NHN}}
        "de": ["höhe"],
    },
    "century": {
        # dbpedia-minidumps/pt.xml.bz2 (Berlim): {{séc|XIII}}; fr.xml.bz2: {{s|XII}}
        "pt": ["séc", "sec", "século"],
        "fr": ["s", "siècle", "s-"],
    },
    "hour": {
        # dbpedia-minidumps/fr.xml.bz2 (Berlin): {{heure|4|30}}
        "fr": ["heure"],
    },
    "val": {"en": ["val"]},
    "passthrough": {
        "en": [
            "nowrap",
            "nobr",
            "nobreak",
            "small",
            "smaller",
            "big",
            "larger",
            "vanchor",
            "visible anchor",
            "mvar",
            "var",
            "math",
            "sub",
            "sup",
            "abbr",
            "tooltip",
            "ill",
            "interlanguage link",
            "interlanguage link multi",
            "not a typo",
            "proper name",
            "linktext",
            "keypress",
            "samp",
            "code",
            "nobold",
            "noitalic",
            "em",
            "strong",
            "ruby",
            "sc",
            "smallcaps",
            "small caps",
            "center",
            "midsize",
            "url",
            "bigger",
            "large",
            "huge",
        ],
        # dbpedia-minidumps/fr.xml.bz2 (Autriche): {{nobr|86 ans}}
        "fr": ["nobr"],
    },
    "flag": {"en": ["flag", "flagu", "flag country", "flagcountry", "flag link"]},
    "coord": {"en": ["coord", "coor", "coor d", "coor dms", "coordinates"]},
    "isbn": {"en": ["isbn", "isbnt"]},
    "list": {
        "en": [
            "hlist",
            "flatlist",
            "plainlist",
            "ubl",
            "unbulleted list",
            "bulleted list",
            "blist",
            "ordered list",
            "pagelist",
            "enum",
            "endflatlist",
            "endplainlist",
        ],
    },
    "chem": {"en": ["chem", "chem2", "chemf"]},
    "frac": {"en": ["frac", "fraction", "sfrac"]},
    "sic": {"en": ["sic"]},
    "currency": {"en": ["us$", "usd", "us dollar", "£", "gbp", "€", "eur", "¥", "a$", "ca$"]},
    "pagename": {"en": ["pagename", "pagenamee", "fullpagename", "basepagename", "subpagename"]},
    "case": {"en": ["lc:", "uc:", "lcfirst:", "ucfirst:"]},
    "symbol": {
        "en": [
            "ndash",
            "mdash",
            "snd",
            "spnd",
            "sndash",
            "spaced ndash",
            "spaced en dash",
            "!",
            "·",
            "dot",
            "middot",
            "spaces",
            "space",
            "nbsp",
            "pipe",
            "=",
            "n/a",
            "na",
            "'",
            "'s",
            "okina",
            "thinsp",
            "hair space",
            "en dash",
            "em dash",
            "bull",
            "•",
            "angbr",
            "ang",
            "!!",
            "en space",
            "zwsp",
            "shy",
        ],
        # dbpedia-minidumps/fr.xml.bz2 (Autriche): Otton {{Ier}}
        "fr": ["ier", "1er", "ire", "re", "e", "er"],
    },
}

FAMILIES: dict[str, str] = {
    # {{lang-fr|…}} (Template:Lang-fr), {{IPA-de|…}} (Template:IPA-de), {{IPAc-en|…}}
    "lang-": "lang x",
    "ipa-": "ipa",
    "ipac-": "ipac",
}
