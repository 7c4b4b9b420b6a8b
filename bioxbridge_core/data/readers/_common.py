"""Small helpers shared by the format readers."""

from __future__ import annotations

import contextlib
import warnings


def clean_unit(unit: object) -> str:
    """Normalised unit string (``'µV'`` -> ``'uV'``, ``None``/``'n/a'`` -> ``''``); see ``data.units``."""
    from ..units import normalise_unit

    return normalise_unit(unit)


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
