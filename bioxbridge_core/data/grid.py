"""Where windows start in one recording, given its labelled spans (the window grid).

Rules (issue 14; all times in seconds of the old-modality file):

- windows lie in the common span ``[t0, t1)`` of both modalities;
- inside a labelled span the grid is anchored at the span's start: windows start at
  ``start``, ``start + step``, ... as long as they end by the span's end, so a window never
  straddles a label boundary;
- a span shorter than one window gives the one window that *ends* at the span's end, when
  that window starts inside the common span and does not reach into a span with another
  label; otherwise the span is dropped with reason ``"short_span"``;
- a span outside the common span is dropped with ``"outside_recording"`` (it starts after
  the old recording ends) or ``"outside_common"`` (outside the time both files cover);
- the unlabelled stretches between spans get their own grid, anchored at each stretch's
  start, and give unlabelled pairs.

Windows touching a recording gap, NaN or a flat line are dropped later (``data.pairing``),
per window, with their reason. Pure numpy; no library plans label-anchored grids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .events import Span

_TOL_S = 1e-6
#: why a labelled span gave no window (``PairedWindows.dropped_spans[*]["reason"]``)
SPAN_DROP_REASONS = {
    "short_span": "span shorter than one window, and the window ending at its end would start before the "
                  "common recording or reach into another label",
    "outside_recording": "span starts after the old-modality recording ends",
    "outside_common": "span lies outside the time both modalities were recorded",
    "zero_duration": "instantaneous event (duration 0 or n/a) cannot label a window",
}


@dataclass
class WindowPlan:
    """Window starts of one recording with their labels.

    start_s : ndarray (n,), window starts in seconds (old file's time base), sorted.
    label : ndarray (n,) of object, class name or None (unlabelled pair).
    dropped_spans : dicts ``{label, start_s, end_s, origin, reason}`` for spans giving no window.
    """

    start_s: np.ndarray
    label: np.ndarray
    dropped_spans: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.start_s)


def grid(a: float, b: float, window_s: float, step_s: float) -> np.ndarray:
    """Starts ``a, a + step, ...`` of the windows of ``window_s`` that end by ``b``."""
    if b - a + _TOL_S < window_s:
        return np.zeros(0)
    n = int(math.floor((b - a - window_s) / step_s + _TOL_S)) + 1
    return a + step_s * np.arange(max(n, 0))


def plan_windows(t0: float, t1: float, spans: Sequence[Span], window_s: float, step_s: float, *,
                 recording_end_s: float | None = None) -> WindowPlan:
    """Plan the windows of one recording (see module docstring).

    Parameters
    ----------
    t0, t1 : the common span of both modalities, seconds in the old file's time base.
    spans : labelled spans, sorted and disjoint (``events.merge_spans``); ``end_s`` may be inf.
    window_s, step_s : window length and step, seconds (> 0).
    recording_end_s : the old file's duration (tells ``outside_recording`` from ``outside_common``).
    """
    end = t1 if recording_end_s is None else recording_end_s
    starts: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    dropped: list[dict] = []
    kept: list[tuple[float, float]] = []  # clipped labelled stretches, for the unlabelled complement

    def drop(sp: Span, reason: str) -> None:
        dropped.append({"label": sp.label, "start_s": float(sp.start_s),
                        "end_s": float(sp.end_s) if math.isfinite(sp.end_s) else None,
                        "origin": sp.origin, "reason": reason})

    for i, sp in enumerate(spans):
        a, b = max(sp.start_s, t0), min(sp.end_s, t1)
        if b - a <= _TOL_S:
            drop(sp, "outside_recording" if sp.start_s >= end - _TOL_S else "outside_common")
            continue
        kept.append((a, b))
        s = grid(a, b, window_s, step_s)
        if not len(s):
            first = b - window_s
            other = any(o.label != sp.label and o.start_s < b - _TOL_S and o.end_s > first + _TOL_S
                        for j, o in enumerate(spans) if j != i)
            if first < t0 - _TOL_S or other:
                drop(sp, "short_span")
                continue
            s = np.array([first])
        starts.append(s)
        labels.append(np.full(len(s), sp.label, dtype=object))

    cursor = t0
    for a, b in kept + [(t1, t1)]:
        s = grid(cursor, a, window_s, step_s)
        starts.append(s)
        labels.append(np.full(len(s), None, dtype=object))
        cursor = max(cursor, b)

    start = np.concatenate(starts) if starts else np.zeros(0)
    label = np.concatenate(labels) if labels else np.zeros(0, dtype=object)
    order = np.argsort(start, kind="stable")
    return WindowPlan(start_s=start[order].astype(np.float64), label=label[order], dropped_spans=dropped)
