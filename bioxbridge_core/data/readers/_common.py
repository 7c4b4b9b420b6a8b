"""Small helpers shared by the format readers."""

from __future__ import annotations

import contextlib
import datetime as _dt
import warnings

_MICRO = ("\u00b5", "\u03bc")  # micro sign, Greek mu


def clean_unit(unit: object) -> str:
    """ASCII unit string: ``'µV'`` -> ``'uV'``, ``None``/``'n/a'`` -> ``''``."""
    text = "" if unit is None else str(unit).strip()
    for m in _MICRO:
        text = text.replace(m, "u")
    return "" if text.lower() in ("n/a", "none", "nan") else text


def naive_utc(when: _dt.datetime | None) -> _dt.datetime | None:
    """Drop the time zone (after converting to UTC) so all start times compare alike."""
    if when is None:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return when


@contextlib.contextmanager
def quiet_library_warnings():
    """Silence deprecation chatter from wfdb/pandas internals (not the user's concern)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def import_wfdb():
    """Import wfdb without its import-time pandas deprecation warnings."""
    with quiet_library_warnings():
        import wfdb
    return wfdb
