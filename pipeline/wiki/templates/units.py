"""Units of ``{{convert}}`` (https://en.wikipedia.org/wiki/Template:Convert): the common
ones of https://en.wikipedia.org/wiki/Module:Convert/documentation/conversion_data.

``UNITS[code] = (kind, factor, offset, symbol, singular, plural, default output)``: a value
``v`` in this unit is ``v * factor + offset`` in the kind's base unit (metre, square
metre, cubic metre, kilogram, kelvin, m/s, watt, joule, pascal, per square metre); names
are the British spellings Module:Convert uses by default (``sp=us`` swaps ``metre`` for
``meter`` and ``litre`` for ``liter``).
"""

from __future__ import annotations

Unit = tuple[str, float, float, str, str, str, str]

_MI, _FT, _IN, _YD = 1609.344, 0.3048, 0.0254, 0.9144
_LB, _GAL = 0.45359237, 0.003785411784

UNITS: dict[str, Unit] = {
    # length (base: metre)
    "m": ("length", 1.0, 0.0, "m", "metre", "metres", "ft"),
    "km": ("length", 1000.0, 0.0, "km", "kilometre", "kilometres", "mi"),
    "cm": ("length", 0.01, 0.0, "cm", "centimetre", "centimetres", "in"),
    "mm": ("length", 0.001, 0.0, "mm", "millimetre", "millimetres", "in"),
    "mi": ("length", _MI, 0.0, "mi", "mile", "miles", "km"),
    "ft": ("length", _FT, 0.0, "ft", "foot", "feet", "m"),
    "in": ("length", _IN, 0.0, "in", "inch", "inches", "mm"),
    "yd": ("length", _YD, 0.0, "yd", "yard", "yards", "m"),
    "nmi": ("length", 1852.0, 0.0, "nmi", "nautical mile", "nautical miles", "km"),
    "au": ("length", 1.495978707e11, 0.0, "AU", "astronomical unit", "astronomical units", "km"),
    "ly": ("length", 9.4607304725808e15, 0.0, "ly", "light-year", "light-years", "km"),
    # area (base: square metre)
    "m2": ("area", 1.0, 0.0, "m2", "square metre", "square metres", "sqft"),
    "km2": ("area", 1e6, 0.0, "km2", "square kilometre", "square kilometres", "sqmi"),
    "sqkm": ("area", 1e6, 0.0, "km2", "square kilometre", "square kilometres", "sqmi"),
    "cm2": ("area", 1e-4, 0.0, "cm2", "square centimetre", "square centimetres", "sqin"),
    "ha": ("area", 1e4, 0.0, "ha", "hectare", "hectares", "acre"),
    "sqmi": ("area", _MI**2, 0.0, "sq mi", "square mile", "square miles", "km2"),
    "sqft": ("area", _FT**2, 0.0, "sq ft", "square foot", "square feet", "m2"),
    "sqin": ("area", _IN**2, 0.0, "sq in", "square inch", "square inches", "cm2"),
    "acre": ("area", 4046.8564224, 0.0, "acres", "acre", "acres", "ha"),
    # volume (base: cubic metre)
    "m3": ("volume", 1.0, 0.0, "m3", "cubic metre", "cubic metres", "cuft"),
    "km3": ("volume", 1e9, 0.0, "km3", "cubic kilometre", "cubic kilometres", "cumi"),
    "cumi": ("volume", _MI**3, 0.0, "cu mi", "cubic mile", "cubic miles", "km3"),
    "cuft": ("volume", _FT**3, 0.0, "cu ft", "cubic foot", "cubic feet", "m3"),
    "l": ("volume", 0.001, 0.0, "L", "litre", "litres", "usgal"),
    "ml": ("volume", 1e-6, 0.0, "mL", "millilitre", "millilitres", "usoz"),
    "usgal": ("volume", _GAL, 0.0, "US gal", "US gallon", "US gallons", "l"),
    "impgal": ("volume", 0.00454609, 0.0, "imp gal", "imperial gallon", "imperial gallons", "l"),
    "usoz": (
        "volume",
        2.95735295625e-5,
        0.0,
        "US fl oz",
        "US fluid ounce",
        "US fluid ounces",
        "ml",
    ),
    # mass (base: kilogram)
    "kg": ("mass", 1.0, 0.0, "kg", "kilogram", "kilograms", "lb"),
    "g": ("mass", 0.001, 0.0, "g", "gram", "grams", "oz"),
    "t": ("mass", 1000.0, 0.0, "t", "tonne", "tonnes", "longton"),
    "lb": ("mass", _LB, 0.0, "lb", "pound", "pounds", "kg"),
    "oz": ("mass", 0.028349523125, 0.0, "oz", "ounce", "ounces", "g"),
    "st": ("mass", 6.35029318, 0.0, "st", "stone", "stone", "kg"),
    "shortton": ("mass", 907.18474, 0.0, "short tons", "short ton", "short tons", "t"),
    "longton": ("mass", 1016.0469088, 0.0, "long tons", "long ton", "long tons", "t"),
    # temperature (base: kelvin)
    "c": ("temperature", 1.0, 273.15, "°C", "degree Celsius", "degrees Celsius", "f"),
    "f": (
        "temperature",
        5 / 9,
        459.67 * 5 / 9,
        "°F",
        "degree Fahrenheit",
        "degrees Fahrenheit",
        "c",
    ),
    "k": ("temperature", 1.0, 0.0, "K", "kelvin", "kelvins", "c"),
    # speed (base: m/s)
    "km/h": ("speed", 1 / 3.6, 0.0, "km/h", "kilometre per hour", "kilometres per hour", "mph"),
    "kph": ("speed", 1 / 3.6, 0.0, "km/h", "kilometre per hour", "kilometres per hour", "mph"),
    "mph": ("speed", _MI / 3600, 0.0, "mph", "mile per hour", "miles per hour", "km/h"),
    "m/s": ("speed", 1.0, 0.0, "m/s", "metre per second", "metres per second", "ft/s"),
    "ft/s": ("speed", _FT, 0.0, "ft/s", "foot per second", "feet per second", "m/s"),
    "kn": ("speed", 1852 / 3600, 0.0, "kn", "knot", "knots", "km/h"),
    # power, energy, pressure
    "w": ("power", 1.0, 0.0, "W", "watt", "watts", "hp"),
    "kw": ("power", 1e3, 0.0, "kW", "kilowatt", "kilowatts", "hp"),
    "mw": ("power", 1e6, 0.0, "MW", "megawatt", "megawatts", "hp"),
    "hp": ("power", 745.69987158227022, 0.0, "hp", "horsepower", "horsepower", "kw"),
    "j": ("energy", 1.0, 0.0, "J", "joule", "joules", "cal"),
    "kj": ("energy", 1e3, 0.0, "kJ", "kilojoule", "kilojoules", "kcal"),
    "cal": ("energy", 4.184, 0.0, "cal", "calorie", "calories", "j"),
    "kcal": ("energy", 4184.0, 0.0, "kcal", "kilocalorie", "kilocalories", "kj"),
    "kwh": ("energy", 3.6e6, 0.0, "kWh", "kilowatt-hour", "kilowatt-hours", "mj"),
    "mj": ("energy", 1e6, 0.0, "MJ", "megajoule", "megajoules", "kwh"),
    "kpa": ("pressure", 1e3, 0.0, "kPa", "kilopascal", "kilopascals", "psi"),
    "psi": (
        "pressure",
        6894.757293168,
        0.0,
        "psi",
        "pound per square inch",
        "pounds per square inch",
        "kpa",
    ),
    # population density (base: per square metre)
    "/km2": ("density", 1e-6, 0.0, "/km2", "per square kilometre", "per square kilometre", "/sqmi"),
    "/sqmi": ("density", 1 / _MI**2, 0.0, "/sq mi", "per square mile", "per square mile", "/km2"),
}

# Other spellings of the codes above (Module:Convert accepts both).
ALIASES = {
    "metre": "m",
    "meter": "m",
    "kilometre": "km",
    "kilometer": "km",
    "foot": "ft",
    "feet": "ft",
    "mile": "mi",
    "miles": "mi",
    "inch": "in",
    "sq mi": "sqmi",
    "mi2": "sqmi",
    "ft2": "sqft",
    "acres": "acre",
    "°c": "c",
    "°f": "f",
    "litre": "l",
    "liter": "l",
    "ton": "shortton",
    "lt": "longton",
    "m³": "m3",
    "km²": "km2",
    "m²": "m2",
    "ft3": "cuft",
    "per km2": "/km2",
    "per sqmi": "/sqmi",
    "kgf": "kg",
    "tonne": "t",
    "tonnes": "t",
    "lbs": "lb",
}

FEET_INCHES = ("ftin", "ft in")
"""Output codes that show feet and inches (``5 ft 11 in``)."""
