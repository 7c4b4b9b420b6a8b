"""The label-anchored window grid (data.grid)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bioxbridge_core.data.events import Span, merge_spans
from bioxbridge_core.data.grid import plan_windows

TOL = 1e-6


def test_cinc_alarm_span_gives_exactly_one_labelled_window():
    plan = plan_windows(0.0, 300.0, [Span(284, 300, "true_alarm", "row 1")], 16.0, 16.0)
    lab = plan.start_s[plan.label != None]  # noqa: E711
    assert lab.tolist() == [284.0]
    unl = plan.start_s[plan.label == None]  # noqa: E711
    assert unl.tolist() == [16.0 * k for k in range(17)]  # 0..256; the window at 272 would reach 288 > 284
    for step in (1.0, 4.0, 8.0):
        p = plan_windows(0.0, 300.0, [Span(284, 300, "a", "r")], 16.0, step)
        assert (p.label != None).sum() == 1  # noqa: E711


def test_short_spans_take_the_window_ending_at_their_end_or_are_dropped():
    spans = [Span(50, 55, "a", "r1"), Span(2, 6, "b", "r2"), Span(70, 75, "c", "r3"), Span(62, 68, "d", "r4")]
    plan = plan_windows(0.0, 100.0, merge_spans(spans), 10.0, 10.0, recording_end_s=100.0)
    got = {lab: s for s, lab in zip(plan.start_s, plan.label) if lab is not None}
    assert got == {"a": 45.0, "d": 58.0}  # [45, 55) and [58, 68) reach only unlabelled time
    reasons = {d["label"]: d["reason"] for d in plan.dropped_spans}
    # b: the window would start at -4 s; c: [65, 75) would reach into d
    assert reasons == {"b": "short_span", "c": "short_span"}
    outside = plan_windows(5.0, 100.0, [Span(0, 4, "x", "r"), Span(120, 130, "y", "r")], 2.0, 2.0,
                           recording_end_s=110.0)
    assert sorted((d["label"], d["reason"]) for d in outside.dropped_spans) == [
        ("x", "outside_common"), ("y", "outside_recording")]


def test_whole_recording_label_uses_the_common_span():
    plan = plan_windows(2.5, 40.0, [Span(0, math.inf, "rest", "r1")], 10.0, 5.0)
    assert plan.start_s.tolist() == [2.5, 7.5, 12.5, 17.5, 22.5, 27.5] and set(plan.label) == {"rest"}


@pytest.mark.parametrize("seed", range(40))
def test_random_spans_and_steps_keep_every_window_inside_its_span(seed):
    rng = np.random.default_rng(seed)
    t0, t1 = float(rng.uniform(0, 20)), float(rng.uniform(150, 400))
    window = float(rng.choice([1.0, 2.5, 4.0, 10.0, 16.0, 30.0]))
    step = float(rng.choice([0.5, 1.0, 3.0, window, 2 * window]))
    bounds = np.sort(rng.uniform(0, 420, size=2 * int(rng.integers(1, 8))))
    spans = [Span(float(a), float(b), str(rng.choice(["x", "y", "z"])), f"r{i}")
             for i, (a, b) in enumerate(zip(bounds[::2], bounds[1::2]))]
    spans = merge_spans(spans)
    plan = plan_windows(t0, t1, spans, window, step, recording_end_s=t1 + 5)
    starts, labels = plan.start_s, plan.label
    assert ((starts >= t0 - TOL) & (starts + window <= t1 + TOL)).all()
    by_label = {}
    for s in spans:
        by_label.setdefault(s.label, []).append(s)
    for st, lab in zip(starts, labels):
        inside = [s for s in spans if s.start_s - TOL <= st and st + window <= s.end_s + TOL]
        touching = [s for s in spans if s.start_s < st + window - TOL and s.end_s > st + TOL]
        if lab is None:
            assert not touching, (st, touching)  # unlabelled windows never reach into a span
        elif inside:
            assert inside[0].label == lab
        else:  # a short span's window: ends at that span's end, touches no other label
            own = [s for s in spans if s.label == lab and abs(min(s.end_s, t1) - (st + window)) < 1e-6]
            assert own and min(own[0].end_s, t1) - max(own[0].start_s, t0) < window
            assert all(s.label == lab for s in touching)
    # every span that fits a window inside the common span gives at least one, anchored at its start
    dropped = {d["origin"] for d in plan.dropped_spans}
    for s in spans:
        a, b = max(s.start_s, t0), min(s.end_s, t1)
        if b - a >= window - TOL:
            assert np.isclose(starts, a).any() and s.origin not in dropped
        elif b - a > TOL:
            assert (s.origin in dropped) != bool((np.isclose(starts + window, b) & (labels == s.label)).any())
        else:
            assert s.origin in dropped
