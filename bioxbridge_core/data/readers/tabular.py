"""Tables (``.csv``, ``.tsv``, ``.txt``, ``.parquet``): one numeric column per channel.

Text tables are read with pandas after we settle their dialect, because
``pandas.read_csv`` (and ``csv.Sniffer``) guess the separator from a few
characters and never the decimal mark; a European export (``;`` between
values, ``1,25`` for 1.25) then becomes one text column or a silently wrong
number. We:

- decode UTF-8 (with or without BOM), else Latin-1 (noted in ``warnings``);
- skip preamble lines starting with ``%`` or ``#`` (``key = value`` lines are
  kept as metadata, e.g. OpenBCI's ``%Sample Rate = 250 Hz``);
- choose the separator that splits every sampled line into the same number of
  fields (tab, ``;``, ``,``, ``|``, then runs of spaces) and the decimal comma
  when the values use it;
- refuse a header row made of numbers (a table without column names).

Layouts recognised from their content:

- **Empatica E4** (``BVP.csv``, ``EDA.csv``, ``TEMP.csv``, ``HR.csv``, ``ACC.csv``):
  no header; row 1 = start (unix seconds, per column), row 2 = sampling rate,
  then one sample per row. Channels are named after the file stem (``BVP``;
  ``ACC x``/``ACC y``/``ACC z``), start time timezone-aware UTC. ``IBI.csv``
  (inter-beat intervals, irregular events) is refused.
- **OpenBCI GUI raw export** (``%OpenBCI Raw EEG Data`` preamble): rate from
  ``%Sample Rate``; the ``EXG Channel N`` columns are the channels (µV); the
  ``Sample Index`` counter places samples so lost packets become gaps; a unix
  ``Timestamp`` column gives the start time.

Otherwise the sampling rate comes from a time column (auto-detected from names
such as ``time``, ``time_s``, ``t``, ``timestamp``, ``Time [ms]``, or named with
``time_column``) whose unit is recognised from its name or values (see
``_timebase``: s/ms/us/ns, unix epoch -- which sets the start time -- ISO
date-times, times of day), or from ``sfreq``. Rows are placed on the sample grid
of their time stamps (missing rows become gaps); irregular time stamps are
refused unless ``sfreq`` is given. A column header like ``ECG II [mV]`` or
``ECG II (mV)`` gives the unit. Values are returned as written.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import logging
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd

from ..._check import suggest
from ...errors import RecordingError
from ..recording import Recording
from ..units import normalise_unit
from ._timebase import EPOCH_RANGES, Grid, parse_time_column, sample_grid

log = logging.getLogger(__name__)

TIME_NAMES = ("time_s", "time", "t", "timestamp", "times", "seconds", "sec", "time (s)", "time [s]", "t_s")
_TIME_NAME = re.compile(
    r"^(?:time|times|timestamp|timestamps|time ?stamp|t|seconds|secs?|elapsed(?: time)?|date ?time|datetime|"
    r"clock|epoch|unix ?time|time_?sec)(?:$|[\s_\-\[(].*$)", re.IGNORECASE)
_UNIT_RE = re.compile(r"^(.*?)\s*[\[(]([^\[\]()]{1,12})[\])]\s*$")
_SEPARATORS = ("\t", ";", ",", "|")
_SAMPLE_LINES = 60
_NUMBER = re.compile(r"^\s*[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?\s*$")
_E4_UNITS = {"EDA": "uS", "TEMP": "degC", "HR": "bpm", "ACC": "1/64 g", "BVP": ""}

#: Largest relative deviation of a time step from the median step (kept for callers; see ``_timebase``).
STEP_TOLERANCE = 0.01


@dataclass
class _Text:
    lines: list[str]  # body lines (preamble removed)
    meta: dict[str, str]
    preamble: list[str]
    notes: list[str] = field(default_factory=list)


def _read_text(path: Path) -> _Text:
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise RecordingError(f"{path}: not a text table (it contains binary data).")
    notes = []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        notes.append("the file is not UTF-8; read as Latin-1")
    lines = text.splitlines()
    meta: dict[str, str] = {}
    preamble: list[str] = []
    i = 0
    while i < len(lines) and (not lines[i].strip() or lines[i].lstrip()[:1] in ("%", "#")):
        line = lines[i].strip()
        if line:
            preamble.append(line)
            m = re.match(r"^[%#]+\s*([^=:]+?)\s*[=:]\s*(.*)$", line)
            if m:
                meta[m.group(1).strip().lower()] = m.group(2).strip()
        i += 1
    body = [ln for ln in lines[i:] if ln.strip()]
    if not body:
        raise RecordingError(f"{path}: the file holds no table (empty or only comments).")
    return _Text(body, meta, preamble, notes)


def _fields(line: str, sep: str) -> list[str]:
    return next(csv.reader([line], delimiter=sep, skipinitialspace=True))


def _dialect(lines: list[str], suffix: str) -> tuple[str, str]:
    """(separator, decimal mark) that read every sampled line into the same number of fields."""
    sample = lines[:_SAMPLE_LINES]
    seps = ("\t",) if suffix == ".tsv" else _SEPARATORS
    sep = None
    for cand in seps:
        counts = {len(_fields(ln, cand)) for ln in sample}
        if len(counts) == 1 and counts.pop() >= 2:
            sep = cand
            break
    if sep is None:
        counts = {len(ln.split()) for ln in sample}
        sep = r"\s+" if len(counts) == 1 and counts.pop() >= 2 else ("\t" if suffix == ".tsv" else ",")
        if sep == "," and sample[1:] and all(re.fullmatch(r"\s*[+-]?\d*,\d+\s*", ln) for ln in sample[1:]):
            return ";", ","  # one column of decimal-comma numbers: no separator at all
    decimal = "."
    if sep != ",":
        tokens = [t for ln in sample[1:] for t in (re.split(sep, ln) if sep == r"\s+" else _fields(ln, sep))]
        commas = sum(1 for t in tokens if re.fullmatch(r"\s*[+-]?\d*,\d+(?:[eE][+-]?\d+)?\s*", t))
        dots = sum(1 for t in tokens if re.fullmatch(r"\s*[+-]?\d*\.\d+(?:[eE][+-]?\d+)?\s*", t))
        if commas > dots:
            decimal = ","
    return sep, decimal


def _is_number(token: str) -> bool:
    return bool(_NUMBER.match(token))


# -- Empatica E4 ------------------------------------------------------------------------------------
def _e4_layout(path: Path, text: _Text) -> bool:
    """True for the E4 layout: rows 1 and 2 repeat one value per column (unix start, then rate)."""
    if text.preamble or len(text.lines) < 3:
        return False
    rows = [[t.strip() for t in ln.split(",")] for ln in text.lines[:3]]
    if len({len(r) for r in rows}) != 1 or not all(_is_number(t) for r in rows for t in r):
        return False
    first, second = {float(t) for t in rows[0]}, {float(t) for t in rows[1]}
    if len(first) != 1 or len(second) != 1:
        return False
    start, rate = first.pop(), second.pop()
    lo, hi = EPOCH_RANGES["s"]
    return lo <= start <= hi and 0 < rate <= 100_000


def _refuse_e4_events(path: Path, text: _Text) -> None:
    head = [t.strip() for t in text.lines[0].split(",")]
    lo, hi = EPOCH_RANGES["s"]
    if len(head) == 2 and _is_number(head[0]) and lo <= float(head[0]) <= hi and head[1].upper() == "IBI":
        raise RecordingError(
            f"{path}: an Empatica IBI file lists inter-beat intervals (irregular events), not a sampled signal; "
            "read BVP.csv (or HR.csv) instead.")


def _read_e4(path: Path, text: _Text) -> Recording:
    rows = [[t.strip() for t in ln.split(",")] for ln in text.lines]
    n_cols = len(rows[0])
    try:
        start_s = Decimal(rows[0][0])
    except InvalidOperation:
        raise RecordingError(f"{path}: the E4 start time {rows[0][0]!r} is not a number.") from None
    rate = float(rows[1][0])
    body = io.StringIO("\n".join(text.lines[2:]))
    frame = pd.read_csv(body, header=None, skipinitialspace=True)
    if frame.shape[1] != n_cols:
        raise RecordingError(f"{path}: Empatica E4 layout with {n_cols} column(s) in rows 1-2 but "
                             f"{frame.shape[1]} below.")
    values = frame.apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & frame.notna()
    if bad.to_numpy().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise RecordingError(f"{path}: row {r + 3} holds {frame.iat[r, c]!r}, not a number (Empatica E4 layout).")
    stem = path.stem
    key = stem.upper()
    if n_cols == 1:
        names = [stem]
    elif n_cols == 3 and key == "ACC":
        names = [f"{stem} x", f"{stem} y", f"{stem} z"]
    else:
        names = [f"{stem} {i + 1}" for i in range(n_cols)]
    seconds = int(start_s)
    micro = int((start_s - seconds) * 1_000_000)
    start = _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc) + _dt.timedelta(microseconds=micro)
    log.info("%s: Empatica E4 layout (start %s, %g Hz)", path.name, start.isoformat(), rate)
    return Recording(data=values.to_numpy(dtype=np.float64).T, sfreq=rate, ch_names=names,
                     units=[_E4_UNITS.get(key, "")] * n_cols, start_time=start, source=str(path),
                     warnings=list(text.notes))


# -- generic tables ---------------------------------------------------------------------------------
def _read_frame(path: Path) -> tuple[pd.DataFrame, _Text]:
    if path.stat().st_size == 0:
        raise RecordingError(f"{path}: the file is empty (0 bytes).")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow  # noqa: F401  (a missing engine must say so, not 'cannot read')

        df = pd.read_parquet(path)
        df.columns = [str(c).strip() for c in df.columns]
        if df.shape[1] == 0 or df.shape[0] == 0:
            raise RecordingError(f"{path}: the table has no rows or no columns.")
        return df, _Text([], {}, [])
    text = _read_text(path)
    if _e4_layout(path, text):
        raise _E4(text)
    _refuse_e4_events(path, text)
    sep, decimal = _dialect(text.lines, suffix)
    header = [t.strip() for t in (re.split(sep, text.lines[0].strip()) if sep == r"\s+"
                                  else _fields(text.lines[0], sep))]
    numeric = [h for h in header if h and _is_number(h)]
    if header and len(numeric) == len([h for h in header if h]):
        raise RecordingError(
            f"{path}: the first row holds numbers ({', '.join(numeric[:3])}{' ...' if len(numeric) > 3 else ''}), "
            "not column names; the table needs a header row naming its columns (e.g. 'time,ECG').")
    odd = [h for h in numeric if re.search(r"[.,eE]|^\s*[+-]", h)]
    if odd:
        raise RecordingError(f"{path}: column name(s) {odd[:3]} are numbers, not names; is the header row a row "
                             "of data? Name every column.")
    try:
        df = pd.read_csv(io.StringIO("\n".join(text.lines)), sep=sep, decimal=decimal, skipinitialspace=True,
                         engine="python" if sep == r"\s+" else "c")
    except pd.errors.EmptyDataError:
        raise RecordingError(f"{path}: the file holds no table (empty or only comments).") from None
    except pd.errors.ParserError as exc:
        detail = " ".join(str(exc).split())
        raise RecordingError(f"{path}: not a well-formed {suffix[1:].upper()} table ({detail}).") from None
    df.columns = [str(c).strip() for c in df.columns]
    empty = [c for c in df.columns if c.startswith("Unnamed:") and df[c].isna().all()]
    df = df.drop(columns=empty)  # a separator at the end of every line
    first = df.columns[0] if df.shape[1] else None
    if first is not None and (first.startswith("Unnamed:") or first == "") and df.shape[1] > 1:
        col = pd.to_numeric(df[first], errors="coerce")
        if col.notna().all() and np.array_equal(col.to_numpy(), np.arange(len(df))):
            df = df.drop(columns=[first])  # a row index written by pandas' to_csv
            log.info("%s: unnamed first column 0, 1, 2... is a row index; left out", path.name)
    if df.shape[1] == 0 or df.shape[0] == 0:
        raise RecordingError(f"{path}: the table has no rows or no columns.")
    log.info("%s: separator %r, decimal mark %r", path.name, sep, decimal)
    return df, text


class _E4(Exception):
    def __init__(self, text: _Text):
        super().__init__("E4")
        self.text = text


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
    for c in cols:
        if _TIME_NAME.match(c):
            return c
    return None


def _openbci(text: _Text, cols: list[str]) -> bool:
    return any("openbci" in line.lower() for line in text.preamble[:3]) or (
        "Sample Index" in cols and any(c.startswith("EXG Channel") for c in cols))


def _rate_from_meta(meta: dict[str, str]) -> float | None:
    for key in ("sample rate", "sampling rate", "sampling frequency", "sample_rate", "sampling_rate", "fs",
                "sfreq", "samplerate"):
        if key in meta:
            m = re.search(r"[-+]?\d+(?:[.,]\d+)?", meta[key])
            if m:
                return float(m.group(0).replace(",", "."))
    return None


def _numeric_columns(df: pd.DataFrame, chans: list[str], path: Path) -> list[np.ndarray]:
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
    return values


def _names_units(chans: list[str]) -> tuple[list[str], list[str]]:
    names, units = [], []
    for c in chans:
        m = _UNIT_RE.match(c)
        if m and m.group(1):
            names.append(m.group(1).strip())
            units.append(normalise_unit(m.group(2).strip()))
        else:
            names.append(c)
            units.append("")
    return names, units


def _on_grid(values: list[np.ndarray], grid: Grid) -> np.ndarray:
    out = np.full((len(values), grid.n_times), np.nan, dtype=np.float64)
    for k, v in enumerate(values):
        out[k, grid.index] = v
    return out


def _index_grid(idx: np.ndarray, sfreq: float) -> Grid:
    gaps = [(float(idx[k] + 1) / sfreq, float(idx[k + 1] - idx[k] - 1) / sfreq)
            for k in np.flatnonzero(np.diff(idx) > 1)]
    return Grid(sfreq, idx, int(idx[-1]) + 1, gaps)


def _read_openbci(path: Path, df: pd.DataFrame, text: _Text, sfreq: float | None) -> Recording:
    rate = _rate_from_meta(text.meta)
    if rate is None and sfreq is None:
        raise RecordingError(f"{path}: OpenBCI export without a '%Sample Rate = ... Hz' line; pass sfreq=.")
    if rate is not None and sfreq is not None and abs(rate - sfreq) > 1e-6 * rate:
        raise RecordingError(f"{path}: the OpenBCI header says {rate:g} Hz but sfreq={sfreq!r} was given.")
    rate = float(rate if rate is not None else sfreq)
    cols = list(df.columns)
    chans = [c for c in cols if re.fullmatch(r"EXG Channel \d+", c)]
    if not chans:
        raise RecordingError(f"{path}: OpenBCI export without 'EXG Channel N' columns (columns: {', '.join(cols)}).")
    left = [c for c in cols if c not in chans]
    log.info("%s: OpenBCI raw export at %g Hz; channels %s; left out %s", path.name, rate, chans, left)
    notes = list(text.notes)
    n = len(df)
    idx = np.arange(n, dtype=np.int64)
    if "Sample Index" in cols:
        counter = pd.to_numeric(df["Sample Index"], errors="coerce").to_numpy()
        if np.isfinite(counter).all() and n > 1:
            d = np.diff(counter.astype(np.int64))
            mod = int(counter.max()) + 1 if counter.max() >= 255 else 256
            d = np.mod(d, mod)
            vals, counts = np.unique(d[d > 0], return_counts=True)
            unit = int(vals[np.argmax(counts)]) if len(vals) else 1
            if unit > 0 and (d % unit == 0).all() and (d > 0).all():
                idx = np.concatenate([[0], np.cumsum(d // unit)]).astype(np.int64)
                lost = int(idx[-1] + 1 - n)
                if lost:
                    notes.append(f"'Sample Index' jumps {int((d // unit > 1).sum())} time(s) ({lost} samples lost): "
                                 "kept as NaN gaps so every sample keeps its time (losses of 256 samples or more "
                                 "cannot be seen)")
            else:
                notes.append("'Sample Index' does not count up regularly; samples read back to back")
    start = None
    if "Timestamp" in cols:
        ts = pd.to_numeric(df["Timestamp"], errors="coerce")
        lo, hi = EPOCH_RANGES["s"]
        if ts.notna().all() and lo <= float(ts.iloc[0]) <= hi:
            start = pd.to_datetime(float(ts.iloc[0]), unit="s", utc=True).to_pydatetime()
    values = _numeric_columns(df, chans, path)
    grid = _index_grid(idx, rate)
    return Recording(data=_on_grid(values, grid), sfreq=rate, ch_names=chans, units=["uV"] * len(chans),
                     start_time=start, source=str(path), gaps=grid.gaps, warnings=notes)


def read_tabular(path: Path, *, sfreq: float | None = None, time_column: str | None = None) -> Recording:
    """Read a table; see the module docstring for dialects, layouts, time columns and units."""
    where = str(path)
    try:
        df, text = _read_frame(path)
    except _E4 as e4:
        rec = _read_e4(path, e4.text)
        if sfreq is not None and abs(float(sfreq) - rec.sfreq) > 1e-6 * rec.sfreq:
            raise RecordingError(f"{path}: the E4 file says {rec.sfreq:g} Hz but sfreq={sfreq!r} was given.")
        return rec
    cols = list(df.columns)
    if _openbci(text, cols) and time_column is None:
        return _read_openbci(path, df, text, sfreq)
    notes = list(text.notes)
    tcol = _find_time_column(cols, time_column, path)
    meta_rate = _rate_from_meta(text.meta)
    if sfreq is None and tcol is None and meta_rate is not None:
        sfreq = meta_rate
        notes.append(f"sampling rate {meta_rate:g} Hz from the file's preamble")
    others = [c for c in cols if c != tcol and _TIME_NAME.match(c) and not pd.api.types.is_numeric_dtype(df[c])]
    chans = [c for c in cols if c != tcol and c not in others]
    if others:
        notes.append(f"time-like text column(s) {others} left out")
    if not chans:
        raise RecordingError(f"{path}: the table has a time column but no channel columns.")
    values = _numeric_columns(df, chans, path)
    start = None
    if tcol is not None:
        tb = parse_time_column(df[tcol], tcol, where)
        notes += tb.notes
        start = tb.start
        try:
            grid = sample_grid(tb.rel_s, tcol, where, n_chans=len(chans))
        except RecordingError as exc:
            if sfreq is None or "irregular" not in str(exc):
                raise
            grid = _index_grid(np.arange(len(df), dtype=np.int64), float(sfreq))
            notes.append(f"the time column '{tcol}' is irregular; rows read in order at sfreq={sfreq:g} Hz as asked "
                         "(the time column gives only the start)")
        else:
            if tb.guessed and grid.sfreq < 1.0 and np.allclose(np.diff(tb.rel_s), np.round(np.diff(tb.rel_s))):
                step = float(np.median(np.diff(tb.rel_s)))
                raise RecordingError(
                    f"{path}: the time column '{tcol}' steps by {step:g} with no unit: {1 / step:g} Hz if seconds, "
                    f"{1000 / step:g} Hz if milliseconds. Say the unit in its name (e.g. '{tcol}_ms' or "
                    f"'{tcol} [s]').")
            if sfreq is not None and abs(grid.sfreq - float(sfreq)) > 0.01 * float(sfreq):
                raise RecordingError(
                    f"{path}: the time column '{tcol}' gives {grid.sfreq:g} Hz but sfreq={sfreq!r} was given."
                )
            notes += grid.notes
        log.info("%s: time column '%s' read as %s; %g Hz", path.name, tcol, tb.unit, grid.sfreq)
    elif sfreq is None:
        raise RecordingError(
            f"{path}: no time column found (looked for {', '.join(TIME_NAMES[:4])}...) and no sampling rate given. "
            f"Columns: {', '.join(cols)}. Pass sfreq= or time_column=."
        )
    else:
        grid = _index_grid(np.arange(len(df), dtype=np.int64), float(sfreq))
    names, units = _names_units(chans)
    return Recording(data=_on_grid(values, grid), sfreq=float(grid.sfreq), ch_names=names, units=units,
                     start_time=start, source=str(path), gaps=grid.gaps, warnings=notes)
