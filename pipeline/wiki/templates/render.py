"""Renderers: one small pure function per template kind, ``(Args) -> str``.

Each renders what a reader of the article sees of the template, as plain text, from its
arguments already rendered to plain text. The MediaWiki documentation page each follows
is named in its comment (``en.wikipedia.org/wiki/Template:…`` unless said otherwise).
Which template names reach which renderer is data: :mod:`pipeline.wiki.templates.names`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.wiki.templates.convert import group, number, render_convert


@dataclass
class Args:
    """A template call: its normalised name, positional and named arguments (rendered
    plain text, stripped; named keys case-folded) and the page title when known."""

    name: str
    pos: list[str] = field(default_factory=list)
    named: dict[str, str] = field(default_factory=dict)
    title: str | None = None

    def first(self, *keys: str) -> str:
        """The first non-empty of the named ``keys`` or, failing those, positional 1."""
        for k in keys:
            if self.named.get(k):
                return self.named[k]
        return self.pos[0] if self.pos else ""


_MONTHS = (
    "January February March April May June July August September October November December"
).split()


def _date(y: str, m: str = "", d: str = "", dmy: bool = False) -> str:
    """``y``-``m``-``d`` as en.wikipedia shows it: ``October 9, 1940`` (mdy) or
    ``9 October 1940`` (dmy); ``October 1940``; ``1940``. Non-numeric parts as given."""
    month = _MONTHS[int(m) - 1] if m.isdigit() and 1 <= int(m) <= 12 else m
    day = str(int(d)) if d.isdigit() else d
    if month and day:
        return f"{day} {month} {y}" if dmy else f"{month} {day}, {y}"
    return f"{month} {y}".strip()


def _dmy(a: Args) -> bool:
    return a.named.get("df", "").casefold() in ("y", "yes", "1", "true")


# Template:Convert, Template:Cvt (Module:Convert)
def convert(a: Args) -> str:
    return render_convert(a.pos, a.named, cvt=a.name == "cvt")


# Template:Quote, Template:Cquote, Template:Blockquote, Template:Quote box; de: Vorlage:Zitat
def quote(a: Args) -> str:
    text = a.first("text", "quote", "quotetext", "1")
    return f"\n{text}\n" if text else ""


# Template:Lang (text is the last positional: {{lang|fr|texte}}), Template:Transl
# ({{transl|ar|DIN|text}}), Template:Script, Template:Resize ({{resize|90%|text}});
# fr: Modèle:Langue
def lang(a: Args) -> str:
    return a.named.get("text") or (a.pos[-1] if a.pos else "")


_LANGUAGES = dict(
    pair.split("=")
    for pair in (
        "ar=Arabic de=German el=Greek en=English es=Spanish fa=Persian fr=French "
        "grc=Ancient_Greek he=Hebrew hi=Hindi it=Italian ja=Japanese ko=Korean la=Latin "
        "nl=Dutch pl=Polish pt=Portuguese ru=Russian sv=Swedish tr=Turkish uk=Ukrainian "
        "zh=Chinese cs=Czech da=Danish fi=Finnish hu=Hungarian no=Norwegian ro=Romanian "
        "sa=Sanskrit sr=Serbian hr=Croatian bg=Bulgarian ga=Irish cy=Welsh gd=Scottish_Gaelic "
        "yi=Yiddish ur=Urdu bn=Bengali ta=Tamil th=Thai vi=Vietnamese id=Indonesian "
        "ka=Georgian hy=Armenian az=Azerbaijani kk=Kazakh mn=Mongolian eu=Basque ca=Catalan "
        "gl=Galician is=Icelandic et=Estonian lv=Latvian lt=Lithuanian sl=Slovene sk=Slovak "
        "be=Belarusian mk=Macedonian sq=Albanian ang=Old_English non=Old_Norse "
        "got=Gothic akk=Akkadian egy=Egyptian syc=Syriac"
    ).split()
)


# Template:Lang-fr etc. and Template:Langx: "French: texte"
def lang_x(a: Args) -> str:
    if a.name == "langx":
        code, rest = (a.pos[0], a.pos[1:]) if a.pos else ("", [])
    else:
        code, rest = a.name.split("-", 1)[1], a.pos
    text = a.named.get("text") or (rest[0] if rest else "")
    label = _LANGUAGES.get(code.split("-")[0].casefold(), "").replace("_", " ")
    if not label or a.named.get("label", "").casefold() == "none":
        return text
    return f"{label}: {text}" if text else ""


# Template:Nihongo: English (kanji, romaji); Template:Nihongo2: kanji;
# Template:Nihongo3: romaji (kanji, English)
def nihongo(a: Args) -> str:
    p = [*a.pos, "", "", ""]
    if a.name == "nihongo2":
        return p[0]
    english, kanji, romaji = (p[2], p[1], p[0]) if a.name == "nihongo3" else p[:3]
    inner = ", ".join(x for x in (kanji, romaji) if x)
    if not english:
        return f"{kanji} ({romaji})" if kanji and romaji else kanji or romaji
    return f"{english} ({inner})" if inner else english


# Template:IPA, Template:IPA-all, Template:IPAslink: the transcription as given;
# Template:IPA-de etc.: "[transcription]"
def ipa(a: Args) -> str:
    text = a.pos[0] if a.pos else ""
    if a.name.startswith("ipa-") and a.name != "ipa-all" and text and text[0] not in "[/":
        return f"[{text}]"
    return text


_IPAC_LABELS = frozenset(
    "lang pron local also uk us ca au nz ie ukalso usalso alsouk alsous ipa audio".split()
)


# Template:IPAc-en: "/ˈænərkɪzəm/" from one argument per phoneme, labels left out
def ipac(a: Args) -> str:
    sounds = [p for p in a.pos if p.casefold() not in _IPAC_LABELS]
    return f"/{''.join(sounds)}/" if sounds else ""


# Template:Respell: syllables joined by hyphens ("AN-ər-kiz-əm")
def respell(a: Args) -> str:
    return "-".join(p for p in a.pos if p)


# Template:As of: "As of May 2014" (lc=y: "as of"; df=US: month day, year; alt= replaces)
def as_of(a: Args) -> str:
    if a.named.get("alt"):
        return a.named["alt"]
    p = [*a.pos, "", "", ""]
    date = _date(p[0], p[1], p[2], dmy=a.named.get("df", "").casefold() != "us")
    if a.named.get("bare", "").casefold() in ("y", "yes"):
        return date
    words = "as of" if a.named.get("lc", "").casefold() in ("y", "yes", "on") else "As of"
    return f"{a.named.get('pre', '')}{words} {date}{a.named.get('post', '')}".strip()


# Template:Circa: "c. 1900"
def circa(a: Args) -> str:
    return " ".join(["c.", *a.pos[:1]]) + ("–" + a.pos[1] if len(a.pos) > 1 else "")


# Template:Floruit: "fl. 1200"
def floruit(a: Args) -> str:
    return " ".join(["fl.", *a.pos[:1]])


# Template:Birth date, Template:Death date, Template:Start date, Template:Birth date and
# age (the age is left out: it depends on the day the page is read)
def date(a: Args) -> str:
    p = [x for x in a.pos if x]
    if p and not p[0].lstrip("-").isdigit():  # {{start date|1990-05-01}}-style free text
        return p[0]
    p += ["", "", ""]
    return _date(p[0], p[1], p[2], dmy=_dmy(a))


def _age(y1, m1, d1, y2, m2, d2) -> int:
    return y2 - y1 - ((m2, d2) < (m1, d1))


# Template:Death date and age: "December 8, 1980 (aged 40)"
def death_date_and_age(a: Args) -> str:
    p = [*a.pos, "", "", "", "", "", ""][:6]
    text = _date(p[0], p[1], p[2], dmy=_dmy(a))
    if all(x.isdigit() for x in p):
        y2, m2, d2, y1, m1, d1 = map(int, p)
        text += f" (aged {_age(y1, m1, d1, y2, m2, d2)})"
    return text


# Help:Magic words#formatnum, Template:Nts: digits grouped by thousands (R: ungrouped)
def formatnum(a: Args) -> str:
    text = a.pos[0] if a.pos else ""
    if len(a.pos) > 1 and a.pos[1] == "R":
        return text.replace(",", "")
    return group(text) if number(text) is not None else text


# Template:Val: "1.234 ± 0.005×10^5 m"
def val(a: Args) -> str:
    if not a.pos:
        return ""
    text = group(a.pos[0]) if number(a.pos[0]) is not None else a.pos[0]
    if len(a.pos) > 1 and a.pos[1].startswith("("):  # {{val|1.00794|(7)}}: 1.00794(7)
        text += a.pos[1]
    elif len(a.pos) > 1 and a.pos[1]:
        text += f" ± {a.pos[1]}" if len(a.pos) == 2 else f" +{a.pos[1]} −{a.pos[2]}"
    if a.named.get("e"):
        text += f"×10^{a.named['e']}"
    unit = a.named.get("u") or a.named.get("ul")
    per = a.named.get("up") or a.named.get("upl")
    if unit:
        text += f" {unit}"
    if per:
        text += f"/{per}"
    return text


# Template:Nowrap, Template:Small, Template:Abbr, Template:Vanchor, Template:Ill, … :
# their first argument as it is
def passthrough(a: Args) -> str:
    return a.first("text", "1")


# Template:Flag: the country's name (name= overrides)
def flag(a: Args) -> str:
    return a.named.get("name") or (a.pos[0] if a.pos else "")


def _dms(parts: list[str], hemisphere: str) -> str:
    units = ("°", "′", "″")
    return "".join(p + u for p, u in zip(parts, units, strict=False) if p) + hemisphere


# Template:Coord: "52°31′N 13°23′E" (display=title alone shows nothing in the text)
def coord(a: Args) -> str:
    display = a.named.get("display", "inline").casefold()
    if "inline" not in display and display not in ("it", "i", "ti", "inline,title"):
        return ""
    p = [x for x in a.pos if ":" not in x]  # drop "type:city"-style parameters
    for i, x in enumerate(p):
        if x.upper() in ("N", "S"):
            for j in range(i + 1, len(p)):
                if p[j].upper() in ("E", "W"):
                    return f"{_dms(p[:i], x.upper())} {_dms(p[i + 1 : j], p[j].upper())}"
    if len(p) >= 2 and number(p[0]) is not None and number(p[1]) is not None:
        lat, lon = float(p[0]), float(p[1])
        ns, ew = "N" if lat >= 0 else "S", "E" if lon >= 0 else "W"
        return f"{p[0].lstrip('-')}°{ns} {p[1].lstrip('-')}°{ew}"
    return ""


# Template:ISBN: "ISBN 978-0-19-852663-6"
def isbn(a: Args) -> str:
    return "ISBN " + ", ".join(a.pos) if a.pos else ""


# Template:Hlist ("a · b"), Template:Flatlist, Template:Plainlist, Template:Unbulleted list
def inline_list(a: Args) -> str:
    items = [p for p in a.pos if p]
    if a.name in ("hlist", "flatlist", "endflatlist"):
        return " · ".join(items)
    return "\n".join(items)


# Template:Chem ("H2O" from {{chem|H|2|O}})
def chem(a: Args) -> str:
    return "".join(a.pos)


# Template:Frac: "1/2", "2 1/2"
def frac(a: Args) -> str:
    p = a.pos
    if len(p) >= 3:
        return f"{p[0]} {p[1]}/{p[2]}"
    if len(p) == 2:
        return f"{p[0]}/{p[1]}"
    return f"1/{p[0]}" if p else ""


# Template:Sic: "word [sic]"
def sic(a: Args) -> str:
    word = a.pos[-1] if a.pos else ""
    if a.named.get("hide", "").casefold() in ("y", "yes"):
        return word
    return f"{word} [sic]".strip()


_CURRENCY = {"us$": "US$", "usd": "US$", "us dollar": "US$", "£": "£", "gbp": "£", "€": "€",
             "eur": "€", "¥": "¥", "a$": "A$", "ca$": "CA$"}  # fmt: skip


# Template:US$, Template:GBP, Template:Euro: "US$100"
def currency(a: Args) -> str:
    amount = a.pos[0] if a.pos else ""
    return _CURRENCY.get(a.name, "") + (group(amount) if number(amount) is not None else amount)


# Help:Magic words#Page names: {{PAGENAME}} (the title, when the caller gives it)
def pagename(a: Args) -> str | None:
    if a.title is None:
        return None
    if a.name in ("basepagename", "subpagename"):
        parts = a.title.split("/")
        return parts[0] if a.name == "basepagename" else parts[-1]
    return a.title.split(":", 1)[-1] if a.name.startswith("pagename") else a.title


# Help:Magic words#Formatting: lc:, uc:, lcfirst:, ucfirst:
def case(a: Args) -> str:
    text = a.pos[0] if a.pos else ""
    if a.name == "lc:":
        return text.lower()
    if a.name == "uc:":
        return text.upper()
    if a.name == "lcfirst:":
        return text[:1].lower() + text[1:]
    return text[:1].upper() + text[1:]


_SYMBOLS = {
    "ndash": "–", "en dash": "–", "mdash": "—", "em dash": "—", "snd": " – ", "spnd": " – ",
    "sndash": " – ", "spaced ndash": " – ", "spaced en dash": " – ", "!": "|", "!!": "||",
    "·": " · ", "dot": " · ", "middot": "·", "bull": " • ", "•": " • ", "spaces": " ",
    "space": " ", "nbsp": "\u00a0", "en space": " ", "thinsp": "\u2009", "hair space": "",
    "zwsp": "", "shy": "", "pipe": "|", "=": "=", "n/a": "N/A", "na": "N/A", "'": "'",
    "'s": "'s", "okina": "ʻ", "ier": "Ier", "1er": "1er", "ire": "1re", "re": "re",
    "e": "e", "er": "er",
}  # fmt: skip


# Template:Ndash, Template:Mdash, Template:!, Template:Spaces, Template:Nbsp, Template:Pipe,
# Template:Angbr ("⟨text⟩"); fr: Modèle:Ier
def symbol(a: Args) -> str:
    if a.name in ("angbr", "ang"):
        return f"⟨{a.pos[0] if a.pos else ''}⟩"
    if a.name in ("spaces", "nbsp") and a.pos and a.pos[0].isdigit():
        return " " * min(int(a.pos[0]), 8)
    return _SYMBOLS.get(a.name, "")


# fr: Modèle:Nombre ("71 sièges"), Modèle:Unité, Modèle:Date ("19 janvier 2010")
def words(a: Args) -> str:
    return " ".join(p for p in a.pos if p)


# de: Vorlage:Höhe ("115 m")
def height(a: Args) -> str:
    return f"{a.pos[0]} m" if a.pos else ""


# pt: Predefinição:Séc ("século XIII"); fr: Modèle:Siècle ("XIIe siècle")
def century(a: Args) -> str:
    n = a.pos[0] if a.pos else ""
    return f"{n}e siècle" if a.name in ("s", "siècle", "s-") else f"século {n}"


# fr: Modèle:Heure ("4 h 30")
def hour(a: Args) -> str:
    return " h ".join(a.pos[:2]) if len(a.pos) > 1 else f"{a.pos[0]} h" if a.pos else ""


Renderer = Callable[[Args], "str | None"]

RENDERERS: dict[str, Renderer] = {
    "convert": convert, "quote": quote, "lang": lang, "lang x": lang_x, "nihongo": nihongo,
    "ipa": ipa, "ipac": ipac, "respell": respell, "as of": as_of, "circa": circa,
    "floruit": floruit, "date": date, "death date and age": death_date_and_age,
    "formatnum": formatnum, "val": val, "passthrough": passthrough, "flag": flag,
    "coord": coord, "isbn": isbn, "list": inline_list, "chem": chem, "frac": frac, "sic": sic,
    "currency": currency, "pagename": pagename, "case": case, "symbol": symbol,
    "words": words, "height": height, "century": century, "hour": hour,
}  # fmt: skip
"""Renderer kind (the keys of :data:`pipeline.wiki.templates.names.NAMES`) → function."""
