"""Pairing with several labelled spans per recording, events files, gaps, time bases, units."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioxbridge_core.data import pairing
from bioxbridge_core.data.manifest import read_manifest
from bioxbridge_core.data.pairing import make_paired_windows
from bioxbridge_core.data.preprocess import Preprocessing
from bioxbridge_core.data.recording import Recording
from bioxbridge_core.data.windows import PairedWindows
from bioxbridge_core.errors import ConfigError, ManifestError, WindowingError
from bioxbridge_core.spec import SignalSpec

SF = 250.0
ECG = SignalSpec("ECG", 100.0, 10.0, min_window_s=2.0, max_window_s=60.0)
PPG = SignalSpec("PPG", 50.0, 10.0, min_window_s=2.0, max_window_s=60.0)
SPLITS = {"s0": "train", "s1": "train", "s2": "pair", "s3": "pair", "s4": "test", "s5": "test"}
#: a protocol like Stress-Predict's: rest, task, rest, task, rest (seconds)
PROTOCOL = [(0, 31, "rest"), (31, 55, "task"), (55, 83, "rest"), (90, 94, "task"), (104, 120, "rest")]


def _npz(path: Path, data, names, sfreq=SF, units=None):
    kw = {} if units is None else {"units": np.array(units)}
    np.savez(path, data=np.asarray(data, dtype=np.float32), sfreq=np.float64(sfreq), ch_names=np.array(names), **kw)
    return path


def _recordings(folder: Path, seconds=120.0, n=6):
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * SF)) / SF
    for i in range(n):
        ecg = np.sin(2 * np.pi * (1.1 + 0.1 * i) * t) ** 15 + 0.05 * rng.standard_normal(len(t))
        ppg = np.sin(2 * np.pi * (1.1 + 0.1 * i) * t - 1) + 0.05 * rng.standard_normal(len(t))
        _npz(folder / f"s{i}.npz", [ecg, ppg], ["ECG", "PLETH"])


def _rows_manifest(folder: Path, spans=PROTOCOL) -> Path:
    rows = [{"path": f"s{i}.npz", "subject": f"s{i}", "old_channels": "ECG", "new_channels": "PLETH",
             "label": lab, "label_start": a, "label_end": b, "split": SPLITS[f"s{i}"]}
            for i in range(6) for a, b, lab in spans]
    pd.DataFrame(rows).to_csv(folder / "rows.csv", index=False)
    return folder / "rows.csv"


def _events_manifest(folder: Path, spans=PROTOCOL, sep="\t", suffix="tsv") -> Path:
    ev = pd.DataFrame([{"onset": a, "duration": b - a, "trial_type": lab} for a, b, lab in spans])
    ev.to_csv(folder / f"protocol_events.{suffix}", sep=sep, index=False)
    rows = [{"path": f"s{i}.npz", "subject": f"s{i}", "old_channels": "ECG", "new_channels": "PLETH",
             "events": f"protocol_events.{suffix}", "split": SPLITS[f"s{i}"]} for i in range(6)]
    pd.DataFrame(rows).to_csv(folder / "events.csv", index=False)
    return folder / "events.csv"


def test_several_rows_and_an_events_file_give_identical_windows(tmp_path, monkeypatch):
    _recordings(tmp_path)
    calls = []
    real = pairing._read
    monkeypatch.setattr(pairing, "_read", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    by_rows = make_paired_windows(_rows_manifest(tmp_path), old_spec=ECG, new_spec=PPG, window_s=8.0, step_s=4.0,
                                  cache=False)
    assert len(calls) == 6  # five rows per recording, each recording read (and cut) once
    by_events = make_paired_windows(_events_manifest(tmp_path), old_spec=ECG, new_spec=PPG, window_s=8.0,
                                    step_s=4.0, cache=False)
    assert by_rows.meta.equals(by_events.meta)
    assert np.array_equal(by_rows.x_old, by_events.x_old) and np.array_equal(by_rows.x_new, by_events.x_new)
    one = by_rows.meta[by_rows.meta["subject"] == "s0"]
    lab = one[one["label"].notna()]
    # anchored at each span's start; none straddles a boundary; [90, 94) is shorter than 8 s -> [86, 94)
    assert lab.loc[lab["label"] == "task", "start_s"].tolist() == [31.0, 35.0, 39.0, 43.0, 47.0, 86.0]
    assert lab.loc[lab["label"] == "rest", "start_s"].tolist()[:6] == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0]
    assert 55.0 in lab["start_s"].tolist() and 104.0 in lab["start_s"].tolist()
    for s, lab_ in zip(lab["start_s"], lab["label"]):
        spans = [(a, b) for a, b, l in PROTOCOL if l == lab_ and a <= s + 1e-9 and s + 8 <= b + 1e-9]
        assert spans or (lab_ == "task" and s == 86.0)
    # of the unlabelled stretches [83, 90) and [94, 104) only the second holds an 8 s window
    assert one.loc[one["label"].isna(), "start_s"].tolist() == [94.0]
    # a CSV events file reads the same
    csv = make_paired_windows(_events_manifest(tmp_path, sep=",", suffix="csv"), old_spec=ECG, new_spec=PPG,
                              window_s=8.0, step_s=4.0, cache=False)
    assert csv.meta.equals(by_events.meta)


def test_overlapping_spans_with_different_labels_are_refused(tmp_path):
    _recordings(tmp_path, seconds=30.0)
    bad = PROTOCOL[:2] + [(50, 60, "task"), (20, 40, "rest")]
    with pytest.raises(ManifestError, match=r"rows.csv \(s0.npz\): rows.csv row 4 \('rest', 20 s to 40 s\) and "
                                            r"rows.csv row 2 \('task', 31 s to 55 s\) overlap with different labels"):
        read_manifest(_rows_manifest(tmp_path, spans=bad))
    with pytest.raises(ManifestError, match=r"protocol_events.tsv line \d \('\w+', [\d.]+ s to [\d.]+ s\) and "
                                            r"protocol_events.tsv line \d .* overlap with different labels"):
        read_manifest(_events_manifest(tmp_path, spans=bad))
    rows = [{"path": "s0.npz", "subject": "s0", "old_channels": "ECG", "new_channels": "PLETH"},
            {"path": "s0.npz", "subject": "s9", "old_channels": "ECG", "new_channels": "PLETH"}]
    pd.DataFrame(rows).to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(ManifestError, match=r"rows 1 and 2 name the same recording \(s0.npz\) with different subject"):
        read_manifest(tmp_path / "two.csv")


def test_cinc_style_alarm_span_gives_one_labelled_window(tmp_path):
    _recordings(tmp_path, seconds=300.0)
    rows = [{"path": f"s{i}.npz", "subject": f"s{i}", "old_channels": "ECG", "new_channels": "PLETH",
             "label": "true" if i % 2 else "false", "label_start": 284, "label_end": 300} for i in range(6)]
    rows = [dict(r, split=sp) for r, sp in zip(rows, ["train", "train", "pair", "pair", "test", "test"])]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    for step in (16.0, 4.0):
        pw = make_paired_windows(tmp_path / "m.csv", old_spec=ECG, new_spec=PPG, window_s=16.0, step_s=step,
                                 cache=False)
        lab = pw.meta[pw.meta["label"].notna()]
        assert lab.groupby("recording").size().tolist() == [1] * 6 and (lab["start_s"] == 284.0).all()
        assert pw.x_old.shape[1:] == (1, 1600) and pw.x_new.shape[1:] == (1, 800)
        unl = pw.meta[pw.meta["label"].isna()]
        assert (unl["start_s"] + 16 <= 284 + 1e-9).all() and len(unl) > 6
        s = pw.summary()
        assert s["labelled"] == {"pair": 2, "test": 2, "train": 2}
        assert s["unlabelled"]["pair"] == len(unl) // 3


def test_gap_windows_are_dropped_with_reason_gap(tmp_path, monkeypatch):
    _recordings(tmp_path, seconds=60.0)
    real = pairing._read

    def with_gap(path, channels):
        rec = real(path, channels)
        if Path(path).name == "s0.npz":  # the reading engineer's Recording.gaps: NaN samples, known spans
            rec.data[:, int(21 * SF): int(24.5 * SF)] = np.nan
            rec.gaps = [(21.0, 3.5)]
        return rec

    monkeypatch.setattr(pairing, "_read", with_gap)
    rows = [{"path": f"s{i}.npz", "subject": f"s{i}", "old_channels": "ECG", "new_channels": "PLETH",
             "label": "a" if i % 2 else "b", "split": sp} for i, sp in enumerate(SPLITS.values())]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    pw = make_paired_windows(tmp_path / "m.csv", old_spec=ECG, new_spec=PPG, window_s=10.0, step_s=5.0, cache=False)
    s0 = pw.meta.loc[pw.meta["recording"] == "s0.npz", "start_s"].tolist()
    assert s0 == [0.0, 5.0, 10.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0]  # 15, 20 touch [21, 24.5)
    assert pw.dropped == {"gap": 2} and "nan_old" not in pw.dropped
    assert pw.dropped_windows == [{"split": "train", "label": "b", "reason": "gap", "n": 2}]
    assert pw.summary()["dropped_per_split"] == {"train": {"b": {"gap": 2}}}
    assert pw.recordings[0]["gaps_old"] == 1


def _burst_pair(start_old: dt.datetime, start_new: dt.datetime, seconds=40.0):
    """Old and new Recordings with one 3 Hz burst at the same absolute time (09:00:22.5)."""
    burst = dt.datetime(2020, 1, 1, 9, 0, 22, 500000)
    out = []
    for start, name in ((start_old, "ECG"), (start_new, "PLETH")):
        t = np.arange(int(seconds * SF)) / SF
        c = (burst - start).total_seconds()
        x = 0.01 * np.random.default_rng(0).standard_normal(len(t))
        x += np.exp(-0.5 * ((t - c) / 0.3) ** 2) * np.sin(2 * np.pi * 3 * t)
        out.append(Recording(data=x[None], sfreq=SF, ch_names=[name], start_time=start, source=f"{name}.edf"))
    return out


def test_two_files_paired_on_sub_second_start_times_and_overlap_reported(tmp_path, monkeypatch, caplog):
    t0 = dt.datetime(2020, 1, 1, 9, 0, 0)
    old, new = _burst_pair(t0, t0 + dt.timedelta(seconds=2, microseconds=250000))
    for s in ("a", "b", "c"):
        (tmp_path / f"{s}_old.edf").write_bytes(b"x")
        (tmp_path / f"{s}_new.edf").write_bytes(b"x")
    monkeypatch.setattr(pairing, "_read", lambda path, ch: old if path.endswith("_old.edf") else new)
    pd.DataFrame([{"old_path": f"{s}_old.edf", "new_path": f"{s}_new.edf", "subject": s, "old_channels": "ECG",
                   "new_channels": "PLETH"} for s in "abc"]).to_csv(tmp_path / "m.csv", index=False)
    with caplog.at_level("INFO", logger="bioxbridge_core.data.pairing"):
        pw = make_paired_windows(tmp_path / "m.csv", old_spec=ECG, new_spec=PPG, cache=False)
    rec = pw.recordings[0]
    assert rec["offset_s"] == pytest.approx(2.25) and rec["aligned_on"] == "start times"
    assert (rec["common_start_s"], rec["common_end_s"]) == (pytest.approx(2.25), pytest.approx(40.0))
    assert rec["overlap_s"] == pytest.approx(37.75)
    assert "new file starts +2.250 s after the old" in caplog.text and "37.750 s in common" in caplog.text
    a = pw.meta["subject"] == "a"
    assert pw.meta.loc[a, "start_s"].tolist() == pytest.approx([2.25, 12.25, 22.25])
    # the burst (22.5 s in the old time base) sits 0.25 s into the third window on both sides
    i = np.flatnonzero(a)[2]
    env_old = np.abs(pw.x_old[i, 0]).argmax() / 100.0
    env_new = np.abs(pw.x_new[i, 0]).argmax() / 50.0
    assert env_old == pytest.approx(0.25, abs=0.2) and env_new == pytest.approx(0.25, abs=0.2)
    assert pw.summary()["recordings"][0]["offset_s"] == pytest.approx(2.25)


def test_one_file_with_sides_at_different_rates(tmp_path):
    edfio = pytest.importorskip("edfio")
    from bioxbridge_core.data.readers import read_recording
    from bioxbridge_core.errors import RecordingError

    rng = np.random.default_rng(0)
    eeg_names = ["EEG Fp1", "EEG C3", "EEG O1"]
    for s in ("p1", "p2", "p3"):
        sigs = [edfio.EdfSignal(rng.standard_normal(60 * 256) * 20, sampling_frequency=256, label=n,
                                physical_dimension="uV") for n in eeg_names]
        t = np.arange(60 * 512) / 512
        sigs.append(edfio.EdfSignal(np.sin(2 * np.pi * 1.2 * t) ** 15, sampling_frequency=512, label="ECG",
                                    physical_dimension="mV"))
        edfio.Edf(sigs).write(tmp_path / f"{s}.edf")
    with pytest.raises(RecordingError):
        read_recording(tmp_path / "p1.edf")  # readers never resample: one read of both sides fails
    pd.DataFrame([{"path": f"{s}.edf", "subject": s, "old_channels": ";".join(eeg_names), "new_channels": "ECG"}
                  for s in ("p1", "p2", "p3")]).to_csv(tmp_path / "m.csv", index=False)
    eeg = SignalSpec("EEG", 100.0, 10.0, n_chans=None)
    pw = make_paired_windows(tmp_path / "m.csv", old_spec=eeg, new_spec=SignalSpec("ECG", 100.0, 10.0), cache=False)
    assert pw.x_old.shape == (18, 3, 1000) and pw.x_new.shape == (18, 1, 1000)
    f = np.fft.rfftfreq(1000, 1 / 100)
    assert f[np.argmax(np.abs(np.fft.rfft(pw.x_new[0, 0]))[1:]) + 1] == pytest.approx(1.2, abs=0.15)


def test_each_side_normalised_and_scaled_as_its_encoder_says(tmp_path):
    t = np.arange(int(30 * SF)) / SF
    for s in "abc":
        _npz(tmp_path / f"{s}.npz", [2.0 * np.sin(2 * np.pi * 5 * t), 3.0 * np.sin(2 * np.pi * 2 * t)],
             ["ECG", "PLETH"], units=["mV", "0.1mV"])
    pd.DataFrame([{"path": f"{s}.npz", "subject": s, "old_channels": "ECG", "new_channels": "PLETH"}
                  for s in "abc"]).to_csv(tmp_path / "m.csv", index=False)
    raw_uv = SignalSpec("ECG", 100.0, 10.0, normalisation="none", units="uV")
    raw_mv = SignalSpec("PPG", 50.0, 10.0, normalisation="none", units="mV")
    prep = Preprocessing(bandpass=False)
    pw = make_paired_windows(tmp_path / "m.csv", old_spec=raw_uv, new_spec=PPG.with_window(10.0), preprocessing=prep,
                             cache=False)
    assert np.abs(pw.x_old).max() == pytest.approx(2000.0, rel=0.01)  # mV -> uV, no z-score
    assert np.allclose(pw.x_new.std(-1), 1.0, atol=1e-3)  # the PPG side keeps its own z-score
    assert pw.preprocessing["normalisation_old"] == "none" and pw.preprocessing["normalisation_new"] == "zscore-window"
    pw = make_paired_windows(tmp_path / "m.csv", old_spec=ECG, new_spec=raw_mv, preprocessing=prep, cache=False)
    assert np.abs(pw.x_new).max() == pytest.approx(0.3, rel=0.01)  # 3 x 0.1 mV
    forced = make_paired_windows(tmp_path / "m.csv", old_spec=raw_uv, new_spec=PPG,
                                 preprocessing=Preprocessing(bandpass=False, normalisation="zscore-window"), cache=False)
    assert np.allclose(forced.x_old.std(-1), 1.0, atol=1e-3)
    for s in "abc":
        _npz(tmp_path / f"{s}.npz", [np.sin(t), np.sin(t)], ["ECG", "PLETH"])
    with pytest.raises(WindowingError, match=r"a.npz, channel 'ECG': no physical unit .* expects uV"):
        make_paired_windows(tmp_path / "m.csv", old_spec=raw_uv, new_spec=PPG, cache=False)


def test_window_length_refused_before_any_file_is_read(tmp_path, monkeypatch):
    _recordings(tmp_path, seconds=30.0)
    path = _rows_manifest(tmp_path)
    monkeypatch.setattr(pairing, "_read", lambda *a, **k: pytest.fail("a file was read"))
    with pytest.raises(ConfigError, match=r"the ECG encoder accepts windows of 2-60 s; 90 s was asked for"):
        make_paired_windows(path, old_spec=ECG.with_window(10.0), new_spec=PPG, window_s=90.0, cache=False)
    fixed = SignalSpec("EEG", 100.0, 10.0, n_chans=None)
    with pytest.raises(ConfigError, match="exactly 10 s; 4 s"):
        make_paired_windows(path, old_spec=fixed, new_spec=PPG, window_s=4.0, cache=False)


def test_summary_counts_and_round_trip(tmp_path):
    _recordings(tmp_path, seconds=120.0)
    spans = PROTOCOL + [(85, 88, "task"), (200, 210, "rest")]  # its window would reach rest; after the end
    pw = make_paired_windows(_rows_manifest(tmp_path, spans=spans), old_spec=ECG, new_spec=PPG, window_s=8.0,
                             step_s=4.0, cache=False)
    s = pw.summary()
    assert set(s["per_split"]) == {"train", "pair", "test"}
    assert s["per_split"]["train"]["task"] == 12 and s["per_split"]["train"]["unlabelled"] == 2
    reasons = {(d["label"], d["reason"]) for d in s["dropped_spans"]}
    assert reasons == {("task", "short_span"), ("rest", "outside_recording")}
    assert len(s["dropped_spans"]) == 12 and s["dropped_spans"][0]["origin"].startswith("rows.csv row ")
    assert s["dropped_per_split"]["test"]["task"] == {"span:short_span": 2}
    table = pw.drop_table()
    assert table.loc[(table["split"] == "pair") & (table["reason"] == "outside_recording"), "n"].item() == 2
    pw.save(tmp_path / "w.npz")
    back = PairedWindows.load(tmp_path / "w.npz")
    assert back.dropped_spans == pw.dropped_spans and back.recordings == pw.recordings
    assert back.summary() == s
