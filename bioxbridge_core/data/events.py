"""Labelled spans of a recording: from manifest rows, BIDS-style events files or per-second label tables.

A *span* is ``[start_s, end_s)`` seconds from the start of the (old-modality) recording with
one class label. The same recording can get its spans three ways, all ending here:

- several manifest rows naming the same file(s), each with ``label`` (+ ``label_start``/
  ``label_end``);
- an events file (``events`` manifest column; also what the app's label upload accepts):
  TSV or CSV with ``onset`` and ``duration`` in seconds from the recording start and the
  class in ``trial_type`` or ``label`` -- the layout of BIDS ``*_events.tsv`` files
  (BIDS specification, "Task events");
- a table with one label per time point (PhysioNet/Stress-Predict style
  ``time,label`` rows every second): ``spans_from_samples`` joins runs of equal labels.

``merge_spans`` checks them: spans with the same label that overlap or touch become one;
spans with different labels that overlap are refused with an error naming both origins
(a window can only have one label).

pandas reads the tables; the span logic is our own because no library models "labelled
time spans with per-origin error messages" (MNE's ``Annotations`` holds spans but neither
merges nor refuses overlaps).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import ManifestError

logger = logging.getLogger(__name__)

_TOL_S = 1e-6
#: cells that mean "no value" in BIDS and common exports
_NA = {"", "n/a", "na", "nan", "none", "null"}
EVENT_LABEL_COLUMNS = ("label", "trial_type")


@dataclass(frozen=True)
class Span:
    """One labelled stretch of a recording.

    start_s, end_s : seconds from the recording start (``end_s`` may be ``inf``: to the end).
    label : class name.
    origin : where it came from, for messages (``"m.csv row 3"``, ``"ev.tsv line 5"``).
    """

    start_s: float
    end_s: float
    label: str
    origin: str

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def describe(self) -> str:
        end = "end" if not math.isfinite(self.end_s) else f"{self.end_s:g} s"
        return f"{self.origin} ('{self.label}', {self.start_s:g} s to {end})"


def merge_spans(spans: Iterable[Span], *, where: str = "") -> list[Span]:
    """Sorted, disjoint spans: same-label spans that overlap or touch are joined.

    Raises ``ManifestError`` naming both origins when two spans with different labels
    overlap by more than a microsecond (touching at one instant is fine).
    """
    out: list[Span] = []
    parts: list[list[Span]] = []
    for s in sorted(spans, key=lambda x: (x.start_s, x.end_s)):
        if out and s.start_s < out[-1].end_s - _TOL_S:
            last = out[-1]
            if s.label != last.label:
                hit = next(p for p in parts[-1] if p.end_s > s.start_s + _TOL_S)
                raise ManifestError(f"{where + ': ' if where else ''}{hit.describe()} and {s.describe()} "
                                    "overlap with different labels; a window can only have one label.")
        if out and s.label == out[-1].label and s.start_s <= out[-1].end_s + _TOL_S:
            last = out[-1]
            origin = last.origin if s.origin in last.origin.split(" + ") else f"{last.origin} + {s.origin}"
            out[-1] = Span(last.start_s, max(last.end_s, s.end_s), last.label, origin)
            parts[-1].append(s)
        else:
            out.append(s)
            parts.append([s])
    return out


def _is_na(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip().lower() in _NA


def _read_table(source: str | Path | bytes, name: str, sep: str | None = "auto") -> pd.DataFrame:
    """A text table as strings; tab for ``.tsv``, comma for ``.csv``, else sniffed; a one-column
    result holding the other separator (a CSV named ``.tsv`` or the reverse) is read again with it."""
    if sep == "auto":
        suffix = Path(name).suffix.lower()
        sep = "\t" if suffix == ".tsv" else "," if suffix == ".csv" else None
    buf = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        frame = pd.read_csv(buf, sep=sep, engine="python" if sep is None else "c", dtype=str,
                            keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise ManifestError(f"{name}: events file not found.") from None
    except pd.errors.EmptyDataError:
        raise ManifestError(f"{name}: the events file is empty.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{name}: not a readable TSV/CSV table ({exc}).") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    other = {",": "\t", "\t": ","}.get(sep or "")
    if len(frame.columns) == 1 and other and other in frame.columns[0]:
        return _read_table(source, name, sep=other)
    return frame


def read_events(source: str | Path | bytes, *, name: str | None = None) -> pd.DataFrame:
    """Read a BIDS-style events table from a path or uploaded bytes.

    Columns (case-insensitive): ``onset`` and ``duration`` in seconds from the recording start,
    and the class in ``label`` or, failing that, ``trial_type``. Other columns are ignored.

    Returns
    -------
    DataFrame with ``line`` (1-based data line), ``onset_s``, ``duration_s`` (float; NaN when
    ``n/a``), ``label`` (str or None for ``n/a``/blank).

    Raises
    ------
    ManifestError
        Naming the file (and line) for a missing column, a non-numeric or negative onset or
        duration, or an empty table.
    """
    where = name or (str(source) if not isinstance(source, bytes) else "events table")
    frame = _read_table(source, where)
    if len(frame) == 0:
        raise ManifestError(f"{where}: the events file has no rows.")
    col = next((c for c in EVENT_LABEL_COLUMNS if c in frame.columns), None)
    missing = [c for c in ("onset", "duration") if c not in frame.columns] + ([] if col else ["trial_type or label"])
    if missing:
        raise ManifestError(f"{where}: missing column(s) {missing}; columns are {list(frame.columns)}. "
                            "An events file needs onset, duration (seconds) and trial_type or label.")
    rows = []
    for i, rec in enumerate(frame.to_dict("records"), start=1):
        vals = {}
        for k in ("onset", "duration"):
            v = rec[k]
            if _is_na(v):
                if k == "onset":
                    raise ManifestError(f"{where}, line {i}: 'onset' is empty.")
                vals[k] = float("nan")
                continue
            try:
                vals[k] = float(str(v).strip())
            except ValueError:
                raise ManifestError(f"{where}, line {i}: '{k}' must be seconds, got {v!r}.") from None
            if not math.isfinite(vals[k]) or vals[k] < 0:
                raise ManifestError(f"{where}, line {i}: '{k}' must be a finite number >= 0, got {v!r}.")
        label = None if _is_na(rec[col]) else str(rec[col]).strip()
        rows.append({"line": i, "onset_s": vals["onset"], "duration_s": vals["duration"], "label": label})
    out = pd.DataFrame(rows, columns=["line", "onset_s", "duration_s", "label"])
    out["label"] = out["label"].astype(object).where(out["label"].notna(), None)
    return out


def spans_from_events(events: pd.DataFrame, *, where: str = "events") -> tuple[list[Span], list[dict]]:
    """Labelled spans from a ``read_events`` table.

    Lines without a label are skipped (unlabelled time); lines with a zero or ``n/a`` duration
    (instantaneous events) cannot label a window and are returned as skipped with reason
    ``"zero_duration"``.

    Returns
    -------
    spans : one ``Span`` per usable line (origin ``"<where> line N"``), not yet merged.
    skipped : dicts ``{origin, label, start_s, end_s, reason}`` for the lines left out.
    """
    spans, skipped = [], []
    for r in events.itertuples(index=False):
        origin = f"{where} line {int(r.line)}"
        if r.label is None:
            continue
        dur = r.duration_s
        if not (isinstance(dur, float) and math.isfinite(dur)) or dur <= _TOL_S:
            skipped.append({"origin": origin, "label": r.label, "start_s": float(r.onset_s),
                            "end_s": float(r.onset_s), "reason": "zero_duration"})
            continue
        spans.append(Span(float(r.onset_s), float(r.onset_s) + float(dur), str(r.label), origin))
    if skipped:
        logger.info("%s: %d instantaneous event(s) (duration 0 or n/a) label no window.", where, len(skipped))
    return spans, skipped


def events_to_spans(source: str | Path | bytes, *, name: str | None = None) -> tuple[list[Span], list[dict]]:
    """An events file (path or uploaded bytes) to merged, checked spans: ``read_events`` +
    ``spans_from_events`` + ``merge_spans``; what a label upload of a BIDS events table needs.

    Returns ``(spans, skipped)``; raises ``ManifestError`` naming the file and line(s).
    """
    where = name or (Path(source).name if not isinstance(source, bytes) else "events table")
    spans, skipped = spans_from_events(read_events(source, name=where), where=where)
    return merge_spans(spans, where=where), skipped


def spans_from_samples(times_s: Sequence[float] | np.ndarray, labels: Sequence, *, period_s: float | None = None,
                       where: str = "labels") -> list[Span]:
    """Spans from one label per time point (e.g. one row per second).

    Each label covers ``[t, t + period_s)``; ``period_s`` defaults to the median spacing of
    ``times_s``. Runs of equal labels with no missing point become one span; missing or
    ``n/a`` labels leave time unlabelled. Times are seconds from the recording start.
    """
    t = np.asarray(times_s, dtype=float)
    labs = [None if _is_na(v) else str(v).strip() for v in labels]
    if len(t) != len(labs):
        raise ManifestError(f"{where}: {len(t)} times but {len(labs)} labels.")
    if len(t) == 0:
        return []
    if not np.isfinite(t).all():
        raise ManifestError(f"{where}: label times must be finite numbers.")
    order = np.argsort(t, kind="stable")
    t = t[order]
    labs = [labs[i] for i in order]
    if period_s is None:
        d = np.diff(t)
        d = d[d > _TOL_S]
        if not len(d):
            raise ManifestError(f"{where}: cannot tell the label period from a single time; pass period_s.")
        period_s = float(np.median(d))
    if not period_s > 0:
        raise ManifestError(f"{where}: period_s must be > 0, got {period_s!r}.")
    spans: list[Span] = []
    start = prev = None
    cur = None
    for ti, lab in zip(t, labs):
        joined = cur is not None and lab == cur and ti - prev <= period_s * 1.5
        if not joined:
            if cur is not None:
                spans.append(Span(float(start), float(prev + period_s), cur, f"{where} from {start:g} s"))
            start, cur = ti, lab
        prev = ti
    if cur is not None:
        spans.append(Span(float(start), float(prev + period_s), cur, f"{where} from {start:g} s"))
    return [s for s in spans if s.label is not None]


def spans_to_events(spans: Iterable[Span]) -> pd.DataFrame:
    """A BIDS-style events table (``onset``, ``duration``, ``trial_type``) for ``spans``."""
    rows = [{"onset": round(s.start_s, 6), "duration": round(s.end_s - s.start_s, 6), "trial_type": s.label}
            for s in spans]
    return pd.DataFrame(rows, columns=["onset", "duration", "trial_type"])
