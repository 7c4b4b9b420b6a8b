"""Tables (``.csv``, ``.tsv``, ``.parquet``): one numeric column per channel.

The sampling rate comes from a time column in seconds (auto-detected from
names such as ``time``, ``time_s``, ``t``, ``timestamp``, or named with
``time_column``): the median step, after checking the steps are uniform
(every step within 1 % of the median). Without a time
column, ``sfreq`` must be given. A column header like ``ECG II [mV]`` or
``ECG II (mV)`` gives the unit; otherwise units are ``''``. Values are
returned as written.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..._check import suggest
from ...errors import RecordingError
from ..recording import Recording

TIME_NAMES = ("time_s", "time", "t", "timestamp", "times", "seconds", "sec", "time (s)", "time [s]", "t_s")
_UNIT_RE = re.compile(r"^(.*?)\s*[\[(]([^\[\]()]{1,12})[\])]\s*$")

#: Largest relative deviation of a time step from the median step.
STEP_TOLERANCE = 0.01


def _read_frame(path: Path):
    import pandas as pd

    if path.stat().st_size == 0:
        raise RecordingError(f"{path}: the file is empty (0 bytes).")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            sep = "\t" if suffix == ".tsv" else ","
            df = pd.read_csv(path, sep=sep, comment="#", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise RecordingError(f"{path}: the file holds no table (empty or only comments).") from None
    except pd.errors.ParserError as exc:
        raise RecordingError(f"{path}: not a well-formed {suffix[1:].upper()} table ({exc}).") from None
    except UnicodeDecodeError:
        raise RecordingError(f"{path}: not a text table (it contains binary data).") from None
    df.columns = [str(c).strip() for c in df.columns]
    if df.shape[1] == 0 or df.shape[0] == 0:
        raise RecordingError(f"{path}: the table has no rows or no columns.")
    return df


def _find_time_column(cols: list[str], time_column: str | None, path: Path) -> str | None:
    if time_column is not None:
        if time_column in cols:
            return time_column
        raise RecordingError(
            f"{path}: time column '{time_column}' not found. Columns: {', '.join(cols)}.{suggest(time_column, cols)}"
        )
    low = {c.lower(): c for c in cols}
    for name in TIME_NAMES:
        if name in low:
            return low[name]
    return None


def _sfreq_from_times(t: np.ndarray, col: str, path: Path) -> float:
    if t.size < 2:
        raise RecordingError(f"{path}: the time column '{col}' needs at least two rows to give a sampling rate.")
    if not np.isfinite(t).all():
        raise RecordingError(f"{path}: the time column '{col}' has empty or non-finite values.")
    steps = np.diff(t)
    step = float(np.median(steps))
    if not step > 0:
        raise RecordingError(f"{path}: the time column '{col}' does not increase (median step {step!r}).")
    dev = np.abs(steps - step) / step
    bad = int((dev > STEP_TOLERANCE).sum())
    if bad:
        i = int(np.argmax(dev))
        raise RecordingError(
            f"{path}: the time column '{col}' is not uniformly sampled: {bad} of {steps.size} steps differ "
            f"from the median step {step:g} s by more than {STEP_TOLERANCE:.0%} (e.g. {steps[i]:g} s at row {i + 1}). "
            "Readers never resample; resample the data first or give a uniform time column."
        )
    # The mean over the whole span is more precise than one step; 9 significant digits
    # turn 249.99999999 (float error in the times) back into 250.
    rate = (t.size - 1) / float(t[-1] - t[0])
    return float(f"{rate:.9g}")


def read_tabular(path: Path, *, sfreq: float | None = None, time_column: str | None = None) -> Recording:
    """Read a table; see the module docstring for the time column and units."""
    import pandas as pd

    df = _read_frame(path)
    cols = list(df.columns)
    tcol = _find_time_column(cols, time_column, path)
    if tcol is not None:
        t = pd.to_numeric(df[tcol], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(t).any() and not pd.isna(df[tcol]).all():
            row = int(np.argmax(np.isnan(t)))
            raise RecordingError(
                f"{path}: the time column '{tcol}' must hold seconds; row {row + 1} is {df[tcol].iloc[row]!r}."
            )
        rate = _sfreq_from_times(t, tcol, path)
        if sfreq is not None and abs(rate - float(sfreq)) > 0.01 * float(sfreq):
            raise RecordingError(
                f"{path}: the time column '{tcol}' gives {rate:g} Hz but sfreq={sfreq!r} was given."
            )
        sfreq = rate
    elif sfreq is None:
        raise RecordingError(
            f"{path}: no time column found (looked for {', '.join(TIME_NAMES[:4])}...) and no sampling rate given. "
            f"Columns: {', '.join(cols)}. Pass sfreq= or time_column=."
        )
    chans = [c for c in cols if c != tcol]
    if not chans:
        raise RecordingError(f"{path}: the table has a time column but no channel columns.")
    values = []
    for c in chans:
        col = df[c]
        num = pd.to_numeric(col, errors="coerce")
        bad = num.isna() & col.notna()  # pandas already turned '', 'NaN', 'NA' into NaN
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            hint = ""
            if ";" in c:
                hint = " The file seems to use ';' between values; save it with ',' (CSV) or tabs (TSV)."
            raise RecordingError(
                f"{path}: column '{c}' is not numeric (row {row + 1} holds {col.iloc[row]!r}); "
                "every column other than time must be one channel of numbers." + hint
            )
        values.append(num.to_numpy(dtype=np.float64))
    names, units = [], []
    for c in chans:
        m = _UNIT_RE.match(c)
        if m and m.group(1):
            names.append(m.group(1).strip())
            units.append(m.group(2).strip())
        else:
            names.append(c)
            units.append("")
    return Recording(data=np.vstack(values).astype(np.float32), sfreq=float(sfreq), ch_names=names,
                     units=units, source=str(path))
