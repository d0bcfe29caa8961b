"""``{{convert}}`` and ``{{cvt}}``: value and unit as the article shows them, with the
converted value (https://en.wikipedia.org/wiki/Template:Convert, rendered by
https://en.wikipedia.org/wiki/Module:Convert).

Covered: single values and ranges (``|5|to|10|km``), an output unit or the input unit's
default one, a precision as the positional after the units, ``sigfig=``, ``abbr=``
(``on``/``off``/``in``/``out``/``values``), ``adj=on``, ``disp=`` (``flip``, ``or``,
``output only``, ``number``, ``b``, ``sqbr``, ``comma``, ``slash``), ``sp=us``, feet and
inches in (``|6|ft|2|in``) and out (``ftin``). A unit the table does not know is shown
as written, without a conversion.
"""

from __future__ import annotations

import math
import re

from pipeline.wiki.templates.units import ALIASES, FEET_INCHES, UNITS, Unit

_NUMBER = re.compile(r"^[-+−]?(?:\d{1,3}(?:,\d{3})+|\d*)(?:\.\d+)?$")
_RANGE = {
    "to": " to ",
    "-": "–",
    "–": "–",
    "and": " and ",
    "or": " or ",
    "by": " by ",
    "x": " × ",
    "×": " × ",
    "+/-": " ± ",
    "±": " ± ",
    "to(-)": " to ",
    "and(-)": " and ",
    "&": " & ",
    "+": " + ",
    "to about": " to about ",
}


def number(text: str) -> float | None:
    """``text`` as a float (``29,145`` → 29145.0, ``−3`` → -3.0), or None."""
    t = text.strip()
    if not t or not _NUMBER.match(t) or not any(c.isdigit() for c in t):
        return None
    return float(t.replace(",", "").replace("−", "-"))


def group(text: str) -> str:
    """Thousands separators in a number's integer part (``29145.5`` → ``29,145.5``)."""
    sign = text[:1] if text[:1] in "-+−" else ""
    whole, dot, frac = text[len(sign) :].replace(",", "").partition(".")
    if not whole.isdigit() or len(whole) < 4:
        return text
    return f"{sign}{int(whole):,}{dot}{frac}"


def _unit(code: str) -> Unit | None:
    key = code.strip().casefold()
    return UNITS.get(key) or UNITS.get(ALIASES.get(key, ""))


def _precision(shown: str, value: float, out: float) -> int:
    """Decimals to show ``out`` with: the input's precision (decimals, or minus its
    trailing zeros), shifted by the order of magnitude of the conversion factor, and at
    least two significant digits (an approximation of Module:Convert's
    ``default_precision``)."""
    digits = shown.replace(",", "").lstrip("+-−")
    whole, _, frac = digits.partition(".")
    prec = len(frac) if frac else -(len(whole) - len(whole.rstrip("0"))) if whole != "0" else 0
    if value and out:
        prec += round(math.log10(abs(value / out)))
        prec = max(prec, 1 - math.floor(math.log10(abs(out))))
    return prec


def _fmt(value: float, prec: int) -> str:
    if prec < 0:
        value = round(value, prec)
        prec = 0
    text = f"{value:.{prec}f}"
    if text.startswith("-") and float(text) == 0:
        text = text[1:]
    return group(text)


def _sig(value: float, sigfig: int) -> str:
    if value == 0:
        return "0"
    return _fmt(value, sigfig - 1 - math.floor(math.log10(abs(value))))


def _name(unit: Unit, plural: bool, us: bool) -> str:
    name = unit[5] if plural else unit[4]
    return name.replace("metre", "meter").replace("litre", "liter") if us else name


def render_convert(pos: list[str], named: dict[str, str], cvt: bool = False) -> str:
    """The text of one ``{{convert}}``; ``pos`` and ``named`` are its rendered arguments
    (``cvt`` true for ``{{cvt}}``, whose default is ``abbr=on``)."""
    if not pos:
        return ""
    shown, seps, i = [pos[0]], [], 1
    while (
        i + 1 < len(pos) and pos[i].strip().casefold() in _RANGE and number(pos[i + 1]) is not None
    ):
        seps.append(_RANGE[pos[i].strip().casefold()])
        shown.append(pos[i + 1])
        i += 2
    code = pos[i] if i < len(pos) else ""
    i += 1
    values = [number(s) for s in shown]
    unit = _unit(code)
    composite = ""  # feet and inches in: {{convert|6|ft|2|in|m}}
    if unit is not None and code.strip() == "ft" and len(shown) == 1 and i + 1 < len(pos):
        inches = number(pos[i])
        if inches is not None and pos[i + 1].strip() == "in" and values[0] is not None:
            composite = pos[i].strip()
            values = [values[0] + inches / 12]
            i += 2
    out_code, prec = "", None
    if i < len(pos) and re.fullmatch(r"-?\d+", pos[i].strip()) is None:
        out_code = pos[i].strip()
        i += 1
    if i < len(pos) and re.fullmatch(r"-?\d+", pos[i].strip()):
        prec = int(pos[i])
    abbr = named.get("abbr", "on" if cvt else "").casefold()
    us = named.get("sp", "").casefold() == "us"
    adj = named.get("adj", "").casefold() in ("on", "yes", "y", "mid")
    disp = named.get("disp", "b").casefold()
    joined = "".join(group(s.strip()) + sep for s, sep in zip(shown, [*seps, ""], strict=True))
    if unit is None or any(v is None for v in values):
        return f"{joined} {code}".strip() if abbr != "values" else joined
    if composite:
        feet = "ft" if abbr in ("on", "in") else "foot" if values[0] == 1 else "feet"
        inch = "in" if abbr in ("on", "in") else "inch" if composite == "1" else "inches"
        in_text = f"{joined} {feet} {composite} {inch}"
    elif adj:
        in_text = f"{joined}-{_name(unit, False, us)}"
    elif abbr in ("on", "in", "values") or unit[0] == "temperature":
        in_text = joined if abbr == "values" else f"{joined} {unit[3]}"
    else:
        plural = not (len(values) == 1 and values[0] == 1)
        in_text = f"{joined} {_name(unit, plural, us)}"
    out_text = _output(shown, values, seps, unit, out_code or unit[6], prec, named, abbr, us)
    if out_text is None or disp in ("table", "tablecen"):
        return in_text
    if disp in ("output only", "out", "number", "output number only"):
        return out_text.split(" ")[0] if disp.endswith("number") else out_text
    if disp == "flip":
        return f"{out_text} ({in_text})"
    if disp == "or":
        return f"{in_text} or {out_text}"
    if disp in ("comma", "slash", "sqbr"):
        return {"comma": f"{in_text}, {out_text}", "slash": f"{in_text}/{out_text}"}.get(
            disp, f"{in_text} [{out_text}]"
        )
    return f"{in_text} ({out_text})"


def _output(shown, values, seps, unit, out_code, prec, named, abbr, us) -> str | None:
    """The converted values with their unit, or None when they cannot be computed."""
    out_code = out_code.split(" ")[0] if out_code not in FEET_INCHES else out_code
    bases = [v * unit[1] + unit[2] for v in values]
    if out_code.casefold() in FEET_INCHES and unit[0] == "length":
        parts = []
        for b in bases:
            total = round(b / 0.0254)
            parts.append(f"{total // 12} ft {total % 12} in")
        return "".join(p + s for p, s in zip(parts, [*seps, ""], strict=True))
    out = _unit(out_code)
    if out is None or out[0] != unit[0]:
        return None
    outs = [(b - out[2]) / out[1] for b in bases]
    sigfig = named.get("sigfig", "").strip()
    texts = []
    for text, v, o in zip(shown, values, outs, strict=True):
        if sigfig.isdigit() and int(sigfig) > 0:
            texts.append(_sig(o, int(sigfig)))
        else:
            texts.append(_fmt(o, prec if prec is not None else _precision(text, v, o)))
    joined = "".join(t + s for t, s in zip(texts, [*seps, ""], strict=True))
    if abbr == "values":
        return joined
    if abbr in ("off", "in") and out[0] != "temperature":
        plural = not (len(outs) == 1 and texts[0] == "1")
        return f"{joined} {_name(out, plural, us)}"
    return f"{joined} {out[3]}"
