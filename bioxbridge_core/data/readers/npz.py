"""NumPy ``.npz``: ``data`` (n_chans, n_times) and ``sfreq``, optionally
``ch_names``, ``ch_types``, ``units`` (string arrays), ``start_time`` (ISO
date-time text) and ``gaps`` ((k, 2) onset and duration in seconds). Never
unpickled, so object arrays are refused. Missing names default to ``ch0, ch1, ...``.
"""

from __future__ import annotations

import datetime as _dt
import zipfile
from pathlib import Path

import numpy as np

from ...errors import RecordingError
from ..recording import Recording

REQUIRED = ("data", "sfreq")
OPTIONAL = ("ch_names", "ch_types", "units", "start_time", "gaps")


def _strings(arr: np.ndarray, key: str, n: int, path: Path) -> list[str]:
    arr = np.atleast_1d(arr)
    if arr.dtype.kind not in "US":
        raise RecordingError(f"{path}: '{key}' must be an array of strings, got dtype {arr.dtype}.")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise RecordingError(f"{path}: '{key}' has {arr.size} entries but data has {n} channels.")
    return [x.decode() if isinstance(x, bytes) else str(x) for x in arr.tolist()]


def read_npz(path: Path) -> Recording:
    """Read a ``.npz`` recording (see module docstring)."""
    if path.stat().st_size == 0:
        raise RecordingError(f"{path}: the file is empty (0 bytes).")
    if not zipfile.is_zipfile(path):
        raise RecordingError(f"{path}: not a NumPy .npz archive (not a zip file, or truncated).")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in REQUIRED if k not in keys]
            if missing:
                raise RecordingError(
                    f"{path}: the .npz lacks {', '.join(repr(m) for m in missing)}; "
                    f"it holds {sorted(keys)}. Expected 'data' (n_chans, n_times) and 'sfreq'."
                )
            arrays = {k: z[k] for k in REQUIRED + OPTIONAL if k in keys}
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise RecordingError(f"{path}: the .npz holds Python objects, which are never unpickled; "
                                 "store strings and numbers only.") from None
        raise RecordingError(f"{path}: cannot read this .npz ({exc}).") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise RecordingError(f"{path}: the .npz archive is damaged ({type(exc).__name__}: {exc}).") from None
    data = arrays["data"]
    if data.dtype.kind not in "biuf":
        raise RecordingError(f"{path}: 'data' must be numeric, got dtype {data.dtype}.")
    if data.ndim == 1:
        data = data[None, :]
    if data.ndim != 2:
        raise RecordingError(f"{path}: 'data' must be 2-D (n_chans, n_times), got shape {data.shape}.")
    if data.shape[1] == 0:
        raise RecordingError(f"{path}: 'data' holds no samples (shape {data.shape}).")
    sf = np.asarray(arrays["sfreq"])
    if sf.size != 1 or sf.dtype.kind not in "biuf":
        raise RecordingError(f"{path}: 'sfreq' must be a single number, got {sf!r}.")
    n = data.shape[0]
    names = _strings(arrays["ch_names"], "ch_names", n, path) if "ch_names" in arrays else [f"ch{i}" for i in range(n)]
    types = _strings(arrays["ch_types"], "ch_types", n, path) if "ch_types" in arrays else None
    units = _strings(arrays["units"], "units", n, path) if "units" in arrays else None
    start = None
    if "start_time" in arrays:
        text = _strings(np.atleast_1d(arrays["start_time"]), "start_time", 1, path)[0]
        try:
            start = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise RecordingError(f"{path}: 'start_time' {text!r} is not an ISO date-time.") from None
    gaps = []
    if "gaps" in arrays:
        g = np.asarray(arrays["gaps"], dtype=np.float64)
        if g.ndim != 2 or g.shape[1] != 2:
            raise RecordingError(f"{path}: 'gaps' must be (k, 2) onsets and durations, got shape {g.shape}.")
        gaps = [tuple(map(float, row)) for row in g]
    return Recording(data=data, sfreq=float(sf.reshape(())), ch_names=names, ch_types=types, units=units,
                     start_time=start, gaps=gaps, source=str(path))
