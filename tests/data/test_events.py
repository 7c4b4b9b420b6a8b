"""Labelled spans from events files, per-second label tables and their merging."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bioxbridge_core.data.events import Span, merge_spans, read_events, spans_from_events, spans_from_samples
from bioxbridge_core.data.recipes import labels_to_events
from bioxbridge_core.errors import ManifestError


def test_bids_events_tsv_and_csv_with_label_or_trial_type(tmp_path):
    (tmp_path / "a_events.tsv").write_text("onset\tduration\ttrial_type\tresponse_time\n"
                                           "0\t30\trest\tn/a\n30.5\t29.5\ttask\t1.2\n60\tn/a\tbutton\tn/a\n"
                                           "70\t5\tn/a\tn/a\n")
    ev = read_events(tmp_path / "a_events.tsv", name="a_events.tsv")
    assert ev["label"].tolist() == ["rest", "task", "button", None]
    assert ev["onset_s"].tolist() == [0.0, 30.5, 60.0, 70.0] and math.isnan(ev["duration_s"].iloc[2])
    spans, skipped = spans_from_events(ev, where="a_events.tsv")
    assert [(s.start_s, s.end_s, s.label) for s in spans] == [(0.0, 30.0, "rest"), (30.5, 60.0, "task")]
    assert spans[1].origin == "a_events.tsv line 2"
    assert [(d["label"], d["reason"]) for d in skipped] == [("button", "zero_duration")]
    # a CSV with a 'label' column, from bytes (the app's upload), upper-case headers
    ev2 = read_events(b"Onset,Duration,Label\n5,10,stress\n", name="up.csv")
    assert spans_from_events(ev2, where="up.csv")[0][0] == Span(5.0, 15.0, "stress", "up.csv line 1")


@pytest.mark.parametrize("text, match", [
    ("onset,duration\n0,1\n", r"missing column\(s\) \['trial_type or label'\]"),
    ("onset,label\n0,a\n", r"missing column\(s\) \['duration'\]"),
    ("onset,duration,label\n-1,2,a\n", r"ev.csv, line 1: 'onset' must be a finite number >= 0"),
    ("onset,duration,label\n0,abc,a\n", r"ev.csv, line 1: 'duration' must be seconds"),
    ("onset,duration,label\n", r"no rows"),
])
def test_bad_events_files_name_the_line(text, match):
    with pytest.raises(ManifestError, match=match):
        read_events(text.encode(), name="ev.csv")


def test_merge_joins_same_label_and_refuses_overlapping_labels():
    a, b = Span(0, 10, "rest", "m.csv row 1"), Span(10, 20, "rest", "m.csv row 2")
    c = Span(30, 40, "task", "m.csv row 3")
    merged = merge_spans([c, b, a])
    assert [(s.start_s, s.end_s, s.label) for s in merged] == [(0, 20, "rest"), (30, 40, "task")]
    assert merged[0].origin == "m.csv row 1 + m.csv row 2"
    assert len(merge_spans([Span(0, 10, "x", "r1"), Span(5, 8, "x", "r2")])) == 1  # contained, same label
    with pytest.raises(ManifestError, match=r"m.csv row 2 \('rest', 10 s to 20 s\) and m.csv row 4 \('task', "
                                            r"19 s to 25 s\) overlap with different labels"):
        merge_spans([a, b, c, Span(19, 25, "task", "m.csv row 4")], where="m.csv")
    whole = Span(0, math.inf, "rest", "row 1")
    with pytest.raises(ManifestError, match=r"row 1 \('rest', 0 s to end\) and row 2"):
        merge_spans([whole, Span(5, 6, "task", "row 2")])
    assert merge_spans([Span(0, 5, "a", "r1"), Span(5, 9, "b", "r2")])[1].start_s == 5  # touching is fine


def test_per_second_labels_become_spans():
    t = np.arange(100, 130, dtype=float)
    lab = [0] * 10 + [1] * 12 + [0] * 8
    spans = spans_from_samples(t - 100, lab)
    assert [(s.start_s, s.end_s, s.label) for s in spans] == [(0, 10, "0"), (10, 22, "1"), (22, 30, "0")]
    # a missing second splits a run; n/a labels leave time unlabelled
    t2 = np.r_[np.arange(0, 5), np.arange(6, 10)].astype(float)
    spans = spans_from_samples(t2, ["a"] * 3 + ["n/a"] + ["a"] * 5)
    assert [(s.start_s, s.end_s) for s in spans] == [(0, 3), (4, 5), (6, 10)]
    ev = labels_to_events(t, lab, start_unix_s=95.0, names={"0": "rest", "1": "stress"})
    assert ev.to_dict("records")[1] == {"onset": 15.0, "duration": 12.0, "trial_type": "stress"}
    with pytest.raises(ManifestError, match="period"):
        spans_from_samples([1.0], ["a"])
    assert isinstance(pd.DataFrame(ev), pd.DataFrame)


def test_events_to_spans_for_an_upload():
    from bioxbridge_core.data.events import events_to_spans

    spans, skipped = events_to_spans(b"onset\tduration\ttrial_type\n0\t10\trest\n10\t5\trest\n20\t0\tcue\n",
                                     name="sub-01_events.tsv")
    assert [(s.start_s, s.end_s, s.label) for s in spans] == [(0.0, 15.0, "rest")]
    assert skipped[0]["origin"] == "sub-01_events.tsv line 3"
    with pytest.raises(ManifestError, match=r"sub-01_events.tsv: sub-01_events.tsv line 1 .* and "
                                            r"sub-01_events.tsv line 2"):
        events_to_spans(b"onset,duration,label\n0,10,a\n5,10,b\n", name="sub-01_events.tsv")
