"""Time columns of tables: their unit from the name or the values, and the sample grid they imply.

A time column may hold seconds, milliseconds, microseconds or nanoseconds from
some origin, unix epoch values in any of these units (which also give the
start time, timezone-aware UTC), ISO date-times (with a zone: aware UTC;
without: naive clock time) or times of day (``12:30:54.403``: no date, so no
start time). ``parse_time_column`` turns it into seconds from the first row.

``sample_grid`` then finds the sampling rate and the place of every row on a
uniform grid. Rows whose times sit on one grid (within a quarter of a sample
period, e.g. time stamps rounded to whole milliseconds) are kept at their true
place; missing rows leave gaps (NaN samples, listed in ``Recording.gaps``).
Time stamps that fit no grid (jitter, irregular events) are refused: guessing
a grid would shift samples silently. Pass ``sfreq=`` to read such rows in order
at a fixed rate (the time column then gives only the start time).
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...errors import RecordingError
from ..recording import MAX_GAP_FILL_SAMPLES

#: unix epoch values (first row) in each unit: 2001-09-09 to 2103-02-24
EPOCH_RANGES = {"s": (1e9, 4.2e9), "ms": (1e12, 4.2e12), "us": (1e15, 4.2e15), "ns": (1e18, 4.2e18)}
UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
#: derived sampling rates outside this range are refused as implausible
PLAUSIBLE_HZ = (0.01, 100_000.0)
#: largest distance (in sample periods) of a row's time from its grid point
GRID_TOLERANCE = 0.25
#: a step longer than this many median steps is a gap (missing rows)
GAP_STEPS = 1.5
_UNIT_HINTS = [
    ("ns", r"ns|nsec|nanos|nanoseconds?"),
    ("us", r"us|\u00b5s|\u03bcs|usec|micros|microseconds?"),
    ("ms", r"ms|msec|millis|milliseconds?"),
    ("s", r"s|sec|secs|seconds?"),
]
_TIME_OF_DAY = re.compile(r"^\s*\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*$")


@dataclass
class TimeBase:
    """Seconds from the first row (float64), the start time when known, and notes."""

    rel_s: np.ndarray
    start: _dt.datetime | None
    unit: str
    notes: list[str] = field(default_factory=list)
    #: True when the unit is only the default (seconds): neither the name nor epoch-like values said so
    guessed: bool = False


def unit_from_name(name: str) -> str | None:
    """``'time_ms'``, ``'Time [ms]'``, ``'timestamp (us)'`` -> ``'ms'``/``'us'``; None when the name says nothing."""
    low = name.strip().lower()
    for unit, pat in _UNIT_HINTS:
        if re.search(rf"(?:^|[\s_\-\[(])(?:{pat})(?:$|[\s\])])", low):
            return unit
    return None


def _epoch_unit(v0: float) -> str | None:
    for unit, (lo, hi) in EPOCH_RANGES.items():
        if lo <= abs(v0) <= hi:
            return unit
    return None


def parse_time_column(values: pd.Series, name: str, where: str) -> TimeBase:
    """Seconds from the first row for a time column of numbers, ISO date-times or times of day."""
    col = values.reset_index(drop=True)
    if col.isna().any():
        row = int(np.argmax(col.isna().to_numpy()))
        raise RecordingError(f"{where}: the time column '{name}' is empty at row {row + 1}.")
    num = pd.to_numeric(col, errors="coerce")
    if not num.isna().any():
        return _numeric_times(num, name, where)
    text = col.astype(str)
    if text.map(lambda s: bool(_TIME_OF_DAY.match(s))).all():
        td = pd.to_timedelta(text.str.strip().str.replace(",", ".", regex=False), errors="coerce")
        if not td.isna().any():
            rel = (td - td.iloc[0]).dt.total_seconds().to_numpy(dtype=np.float64)
            # a time of day that falls back by about a day has passed midnight
            wraps = np.concatenate([[0.0], np.cumsum(np.where(np.diff(rel) < -43200, 86400.0, 0.0))])
            return TimeBase(rel + wraps, None, "time of day",
                            [f"the time column '{name}' holds times of day without a date: start time unknown"])
    try:
        dt = pd.to_datetime(text.str.strip(), format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        dt = None
    if dt is None or dt.isna().any():
        bad = num.isna() if dt is None else dt.isna()
        row = int(np.argmax(bad.to_numpy()))
        raise RecordingError(
            f"{where}: the time column '{name}' must hold numbers (s, ms, us, epoch) or ISO date-times; "
            f"row {row + 1} is {col.iloc[row]!r}.")
    aware = dt.dt.tz is not None
    if aware:
        dt = dt.dt.tz_convert("UTC")
    # nanoseconds whatever resolution pandas inferred (pandas 3 parses strings to microseconds)
    plain = dt.dt.tz_localize(None) if aware else dt
    ns = plain.dt.as_unit("ns").astype("int64").to_numpy()
    rel = (ns - ns[0]).astype(np.float64) * 1e-9
    start = dt.iloc[0].to_pydatetime()
    return TimeBase(rel, start, "ISO date-time" + (" (UTC)" if aware else ""))


def _numeric_times(num: pd.Series, name: str, where: str) -> TimeBase:
    arr = num.to_numpy()
    if not np.isfinite(arr.astype(np.float64)).all():
        raise RecordingError(f"{where}: the time column '{name}' has non-finite values.")
    hint = unit_from_name(name)
    v0 = float(arr[0])
    epoch = _epoch_unit(v0)
    unit = hint or epoch or "s"
    if hint and epoch and hint != epoch and _epoch_unit(v0) is not None:
        # e.g. 'time_s' holding 1.7e12: the values are epoch milliseconds, whatever the name says
        raise RecordingError(
            f"{where}: the time column '{name}' is named in {hint} but its values ({arr[0]!r}...) look like unix "
            f"epoch {epoch}; rename the column (e.g. 'time_{epoch}') or fix the values.")
    # differences in the column's own type first (int64 epoch ns are not exact as float64)
    rel = (arr - arr[0]).astype(np.float64) * UNIT_SECONDS[unit]
    start = None
    if _epoch_unit(v0) == unit:
        start = pd.to_datetime(arr[0], unit=unit, utc=True).to_pydatetime()
    return TimeBase(rel, start, f"epoch {unit}" if start is not None else unit, guessed=not (hint or epoch))


@dataclass
class Grid:
    """Where each row goes on a uniform sample grid."""

    sfreq: float
    index: np.ndarray  # int64 sample index of each row
    n_times: int
    gaps: list[tuple[float, float]]
    notes: list[str] = field(default_factory=list)


def _nice(rate: float) -> list[float]:
    out = []
    for k in (1, 8, 1000):  # whole Hz, eighths (62.5, 7.8125), and mHz
        c = round(rate * k) / k
        if c > 0 and abs(c - rate) <= 1e-3 * rate and c not in out:
            out.append(c)
    return out


def _place(rel: np.ndarray, rate: float, breaks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Grid index per row (each segment keeps its own phase); max deviation within segments, max segment shift."""
    idx = np.empty(rel.size, dtype=np.int64)
    dev = shift = 0.0
    bounds = np.concatenate([[0], breaks + 1, [rel.size]])
    for a, b in zip(bounds[:-1], bounds[1:]):
        pos0 = rel[a] * rate
        i0 = int(round(pos0))
        shift = max(shift, abs(pos0 - i0))
        local = (rel[a:b] - rel[a]) * rate
        k = np.round(local).astype(np.int64)
        dev = max(dev, float(np.abs(local - k).max()) if b > a else 0.0)
        idx[a:b] = i0 + k
    return idx, dev, shift


def sample_grid(rel: np.ndarray, name: str, where: str, *, n_chans: int) -> Grid:
    """Sampling rate and grid index of every row from its time (seconds from the first row).

    Raises RecordingError when the times do not increase, fit no uniform grid, or imply a
    rate outside ``PLAUSIBLE_HZ``, or when the gaps would need more than
    ``MAX_GAP_FILL_SAMPLES`` NaN samples.
    """
    if rel.size < 2:
        raise RecordingError(f"{where}: the time column '{name}' needs at least two rows to give a sampling rate.")
    steps = np.diff(rel)
    if (steps <= 0).any():
        i = int(np.argmax(steps <= 0))
        what = "repeats" if steps[i] == 0 else "goes back"
        raise RecordingError(f"{where}: the time column '{name}' does not increase: it {what} at row {i + 2} "
                             f"({rel[i]:.9g} s then {rel[i + 1]:.9g} s from the first row).")
    step = float(np.median(steps))
    breaks = np.flatnonzero(steps > GAP_STEPS * step)
    # rate from the rows between gaps: (rows - 1) / duration, summed over segments
    bounds = np.concatenate([[0], breaks + 1, [rel.size]])
    n_int = sum(int(b - a - 1) for a, b in zip(bounds[:-1], bounds[1:]))
    span = sum(float(rel[b - 1] - rel[a]) for a, b in zip(bounds[:-1], bounds[1:]))
    rate = n_int / span if n_int > 0 and span > 0 else 1.0 / step
    if not (PLAUSIBLE_HZ[0] <= rate <= PLAUSIBLE_HZ[1]):
        raise RecordingError(
            f"{where}: the time column '{name}' gives a sampling rate of {rate:.6g} Hz, outside the plausible "
            f"{PLAUSIBLE_HZ[0]:g} to {PLAUSIBLE_HZ[1]:g} Hz; check its unit (name it e.g. 'time_ms' or 'time_s').")
    for cand in _nice(rate) + [float(f"{rate:.9g}")]:
        idx, dev, shift = _place(rel, cand, breaks)
        if dev <= GRID_TOLERANCE and (np.diff(idx) > 0).all():
            break
    else:
        ratio = steps / step
        i = int(np.argmax(np.abs(ratio - np.round(ratio))))
        raise RecordingError(
            f"{where}: the time column '{name}' is irregular: its steps fit no uniform sampling grid (median "
            f"step {step * 1e3:.6g} ms, i.e. {1 / step:.6g} Hz; row {i + 2} comes {steps[i] * 1e3:.6g} ms after "
            "the previous one). Readers never resample silently: resample the data first, or pass sfreq= to read "
            "the rows in order at that rate (the time column then gives only the start).")
    notes = []
    n_times = int(idx[-1]) + 1
    if n_times * n_chans > MAX_GAP_FILL_SAMPLES:
        raise RecordingError(
            f"{where}: the time column '{name}' spans {rel[-1]:.6g} s at {cand:g} Hz ({n_times} samples per "
            f"channel); filling its gaps with NaN would need {n_times * n_chans * 4 / 2 ** 30:.1f} GiB.")
    gaps: list[tuple[float, float]] = []
    missing = np.flatnonzero(np.diff(idx) > 1)
    for k in missing:
        gaps.append((float(idx[k] + 1) / cand, float(idx[k + 1] - idx[k] - 1) / cand))
    if gaps:
        longest = max(d for _, d in gaps)
        notes.append(f"the time column '{name}' has {len(gaps)} gap(s) ({n_times - rel.size} missing samples, "
                     f"longest {longest:.6g} s): kept as NaN so every sample keeps its time")
    if shift > 0.01 and len(breaks):
        notes.append(f"rows after a gap in '{name}' were placed up to {shift / cand * 1e3:.3g} ms off their time "
                     "stamps, on the nearest sample of the grid")
    return Grid(cand, idx, n_times, gaps, notes)
