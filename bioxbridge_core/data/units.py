"""Physical units: one spelling per unit, and the factor between two units of the same quantity.

Files write the same unit many ways (``uV``, ``µV`` with the micro sign, ``μV``
with the Greek mu, ``microvolts``, ``mmhg``...). ``normalise_unit`` maps them to
one ASCII form (``CANONICAL``); an unknown unit comes back stripped and in
ASCII (micro written ``u``) but otherwise as written. ``unit_scale`` gives the
factor that converts values: ``x_in_to = x_in_from * unit_scale(from, to)``,
e.g. ``unit_scale("mV", "uV") == 1000``; units of different quantities (or
unknown, or arbitrary units such as ``NU`` against ``uV``) raise RecordingError.
"""

from __future__ import annotations

import re
from decimal import Decimal

from ..errors import RecordingError

_MICRO = ("\u00b5", "\u03bc")  # micro sign, Greek small mu

#: canonical unit -> (quantity, exact factor to the quantity's SI unit)
CANONICAL: dict[str, tuple[str, Decimal]] = {
    unit: (quantity, Decimal(factor))
    for quantity, units in {
        "voltage": {"V": "1", "mV": "1e-3", "uV": "1e-6", "nV": "1e-9"},
        "conductance": {"S": "1", "mS": "1e-3", "uS": "1e-6", "nS": "1e-9"},
        "pressure": {"Pa": "1", "kPa": "1e3", "mmHg": "133.322387415", "cmH2O": "98.0665"},
        "time": {"s": "1", "ms": "1e-3", "us": "1e-6"},
        "frequency": {"Hz": "1", "bpm": "0.016666666666666666666666666667"},
        "temperature": {"degC": "1"},
        "acceleration": {"g": "9.80665", "m/s^2": "1"},
        "fraction": {"%": "0.01", "1": "1"},
        # arbitrary units: only convertible to themselves
        "arbitrary (NU)": {"NU": "1"}, "arbitrary (a.u.)": {"a.u.": "1"}, "digital units": {"adu": "1"},
    }.items()
    for unit, factor in units.items()
}

# lower-cased spellings -> canonical ('|' separates spellings; case-sensitive ones are in _CASE_EXACT)
_SPELLINGS: dict[str, str] = {
    spelling: canon
    for canon, spellings in {
        "V": "v|volt|volts", "mV": "mv|millivolt|millivolts", "uV": "uv|microvolt|microvolts",
        "nV": "nv|nanovolt|nanovolts", "S": "siemens", "uS": "microsiemens|micromho|umho",
        "Pa": "pa|pascal", "kPa": "kpa", "mmHg": "mmhg|mm hg|torr", "cmH2O": "cmh2o|cm h2o",
        "s": "sec|secs|second|seconds", "ms": "msec|millisecond|milliseconds",
        "us": "usec|microsecond|microseconds", "Hz": "hz|hertz",
        "bpm": "bpm|beats/min|beats/minute|1/min|/min|beat/min",
        "degC": "degc|deg c|celsius|c", "g": "g", "m/s^2": "m/s^2|m/s2|m/s**2",
        "%": "%|percent|pct", "1": "1|unitless|dimensionless",
        "NU": "nu|n.u.|n.u", "a.u.": "a.u.|au|a.u|arb|arb.|arbitrary", "adu": "adu|counts|count|digital",
    }.items()
    for spelling in spellings.split("|")
}
# 'S'/'s' and 'mS'/'ms' differ only by case: these spellings are matched exactly.
_CASE_EXACT = {"S": "S", "mS": "mS", "uS": "uS", "nS": "nS", "s": "s", "ms": "ms", "us": "us"}
_EMPTY = {"", "n/a", "na", "none", "nan", "-", "?", "unknown"}


def ascii_unit(unit: object) -> str:
    """Stripped ASCII text of a unit: micro sign or Greek mu written ``u``; empty-like values -> ``''``."""
    text = "" if unit is None else str(unit).strip()
    for m in _MICRO:
        text = text.replace(m, "u")
    text = text.replace("\u00b0", "deg").replace("\u00ba", "deg")  # degree signs
    if text.lower() in _EMPTY:
        return ""
    return text.encode("ascii", "replace").decode("ascii")


def normalise_unit(unit: object) -> str:
    """Canonical spelling of a unit (``'µV'``, ``'μV'``, ``'microvolts'`` -> ``'uV'``); unknown units as ASCII.

    Case matters only where it must (``'mS'`` millisiemens vs ``'ms'`` milliseconds);
    ``''`` means no unit given.
    """
    raw = "" if unit is None else str(unit).strip()
    for m in _MICRO:
        raw = raw.replace(m, "u")
    if raw in _CASE_EXACT:
        return _CASE_EXACT[raw]
    text = ascii_unit(raw)
    if not text:
        return ""
    if text in CANONICAL:
        return text
    low = re.sub(r"\s+", " ", text.lower())
    if low in _SPELLINGS:
        return _SPELLINGS[low]
    return text


def unit_quantity(unit: object) -> str | None:
    """The quantity a unit measures (``'voltage'``, ``'pressure'``...), or None when unknown/empty."""
    canon = normalise_unit(unit)
    return CANONICAL[canon][0] if canon in CANONICAL else None


_SCALED = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([^\s0-9.].*)$")


def _split_factor(unit: object) -> tuple[Decimal, str]:
    """``'0.1mV'`` -> (0.1, 'mV'): a unit written as a multiple of another (values in tenths of mV)."""
    text = "" if unit is None else str(unit)
    m = _SCALED.match(text)
    if m and normalise_unit(m.group(2)) in CANONICAL:
        return Decimal(m.group(1)), normalise_unit(m.group(2))
    return Decimal(1), normalise_unit(text)


def unit_scale(from_unit: object, to_unit: object) -> float:
    """Factor ``k`` with ``value_in_to = value_in_from * k`` (``unit_scale('mV', 'uV') == 1000.0``).

    A unit may carry a leading factor: ``'0.1mV'`` (values in tenths of a millivolt) or ``'100 uV'``.
    Raises RecordingError when either unit is empty or unknown, or when they measure different
    quantities (``'NU'`` -> ``'uV'``, ``'uS'`` -> ``'mV'``). Identical units always give 1.
    """
    (ka, a), (kb, b) = _split_factor(from_unit), _split_factor(to_unit)
    if a and a == b:
        return float(ka / kb)
    for u, raw in ((a, from_unit), (b, to_unit)):
        if not u:
            raise RecordingError(f"Cannot convert between units {from_unit!r} and {to_unit!r}: a unit is missing.")
        if u not in CANONICAL:
            raise RecordingError(
                f"Cannot convert between units {from_unit!r} and {to_unit!r}: unit {raw!r} is not known "
                f"(known: {', '.join(CANONICAL)}).")
    qa, fa = CANONICAL[a]
    qb, fb = CANONICAL[b]
    if qa != qb:
        raise RecordingError(f"Cannot convert {from_unit!r} ({qa}) to {to_unit!r} ({qb}): different quantities.")
    return float(ka * fa / (kb * fb))
