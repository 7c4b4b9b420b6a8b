"""Pairing and windowing a manifest; windowing one recording."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioxbridge_core.errors import RecordingError, WindowingError
from bioxbridge_core.spec import SignalSpec
from bioxbridge_core.data import pairing
from bioxbridge_core.data.manifest import read_manifest
from bioxbridge_core.data.pairing import make_paired_windows, window_recording
from bioxbridge_core.data.preprocess import Preprocessing
from bioxbridge_core.data.recording import Recording

SF = 250.0
ECG_SPEC = SignalSpec("ECG", 100.0, 10.0)
PPG_SPEC = SignalSpec("PPG", 50.0, 10.0)
ECG_FLEX = SignalSpec("ECG", 100.0, 10.0, min_window_s=1.0, max_window_s=60.0)
PPG_FLEX = SignalSpec("PPG", 50.0, 10.0, min_window_s=1.0, max_window_s=60.0)


def _signals(rng, hr_hz, n, gain=1.0):
    t = np.arange(n) / SF
    ecg = np.sin(2 * np.pi * hr_hz * t) ** 15 + 0.05 * rng.standard_normal(n)
    ppg = gain * (np.sin(2 * np.pi * hr_hz * t - 1.0) + 0.05 * rng.standard_normal(n)) + 100
    return ecg, ppg


def _npz(path: Path, data, names, sfreq=SF):
    np.savez(path, data=np.asarray(data, dtype=np.float32), sfreq=np.float64(sfreq), ch_names=np.array(names))


def _dataset(folder: Path, n_subjects=6, seconds=40.0, **row_extra) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for s in range(n_subjects):
        for lab, hr in (("rest", 1.0), ("stress", 1.5)):
            ecg, ppg = _signals(rng, hr + 0.05 * s, int(seconds * SF), gain=10 ** s)
            name = f"s{s}_{lab}.npz"
            _npz(folder / name, [ecg, ppg], ["ECG", "PPG PLETH"])
            rows.append({"path": name, "subject": f"s{s}", "old_channels": "ECG", "new_channels": "PPG PLETH",
                         "label": lab, **row_extra})
    pd.DataFrame(rows).to_csv(folder / "m.csv", index=False)
    return folder / "m.csv"


def test_windows_shapes_splits_labels_and_zscore(tmp_path):
    m = read_manifest(_dataset(tmp_path), seed=1)
    calls = []
    pw = make_paired_windows(m, old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False,
                             on_progress=lambda i, n, msg: calls.append((i, n)))
    assert pw.x_old.shape == (48, 1, 1000) and pw.x_new.shape == (48, 1, 500)
    assert pw.x_old.dtype == np.float32 and pw.sfreq_old == 100 and pw.sfreq_new == 50
    assert pw.old_channels == ["ECG"] and pw.new_channels == ["PPG PLETH"]
    assert calls[-1] == (12, 12) and len(calls) == 12
    assert np.allclose(pw.x_new.mean(-1), 0, atol=1e-4) and np.allclose(pw.x_new.std(-1), 1, atol=1e-3)
    # the 10**s PPG gain is gone after per-window z-scoring
    gains = pw.meta.assign(sd=np.abs(pw.x_new).max(axis=(1, 2))).groupby("subject")["sd"].mean()
    assert gains.max() / gains.min() < 1.5
    assert sorted(pw.meta["start_s"].unique()) == [0.0, 10.0, 20.0, 30.0]
    assert set(pw.meta["label"]) == {"rest", "stress"} and pw.dropped == {}
    per_split = pw.meta.groupby("subject")["split"].nunique()
    assert (per_split == 1).all()
    subj = {s: set(g["subject"]) for s, g in pw.meta.groupby("split")}
    assert not (subj["train"] & subj["test"]) and not (subj["pair"] & subj["test"])


def test_resampled_windows_keep_frequency(tmp_path):
    n = int(20 * SF)
    t = np.arange(n) / SF
    for s in "abc":
        _npz(tmp_path / f"{s}.npz", [np.sin(2 * np.pi * 5 * t), np.sin(2 * np.pi * 2 * t)], ["ECG", "PPG"])
    pd.DataFrame([{"path": f"{s}.npz", "subject": s, "old_channels": "ECG", "new_channels": "PPG"}
                  for s in "abc"]).to_csv(tmp_path / "m.csv", index=False)
    pw = make_paired_windows(tmp_path / "m.csv", old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False)
    for x, sf, f in ((pw.x_old[0, 0], 100, 5.0), (pw.x_new[0, 0], 50, 2.0)):
        spec = np.abs(np.fft.rfft(x))
        assert np.fft.rfftfreq(len(x), 1 / sf)[np.argmax(spec)] == pytest.approx(f, abs=0.11)
    assert pw.meta["label"].isna().all()


def test_label_span_and_step(tmp_path):
    path = _dataset(tmp_path, seconds=60.0, label_start=40, label_end=60)
    m = read_manifest(path)
    pw = make_paired_windows(m, old_spec=ECG_FLEX, new_spec=PPG_FLEX, window_s=8.0, step_s=4.0, cache=False)
    one = pw.meta[pw.meta["recording"] == "s0_rest.npz"]
    # unlabelled [0, 40) on its own grid, then the span's grid from 40 s; nothing straddles 40 s
    assert one["start_s"].tolist() == [4.0 * k for k in range(9)] + [40.0, 44.0, 48.0, 52.0]
    labelled = one[one["label"].notna()]["start_s"].tolist()
    assert labelled == [40.0, 44.0, 48.0, 52.0]  # only windows wholly inside [40, 60)
    assert pw.x_old.shape[-1] == 800 and pw.x_new.shape[-1] == 400


def test_nan_and_flat_windows_are_dropped_and_counted(tmp_path):
    path = _dataset(tmp_path)
    with np.load(tmp_path / "s0_rest.npz") as z:
        data = z["data"].copy()
    data[0, int(12 * SF): int(12.5 * SF)] = np.nan           # old side, window 10-20 s
    data[1, int(25 * SF): int(27 * SF)] = data[1, int(25 * SF)]  # new side flat 2 s, window 20-30 s
    _npz(tmp_path / "s0_rest.npz", data, ["ECG", "PPG PLETH"])
    pw = make_paired_windows(read_manifest(path), old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False)
    assert pw.dropped == {"nan_old": 1, "flat_new": 1}
    starts = pw.meta.loc[pw.meta["recording"] == "s0_rest.npz", "start_s"].tolist()
    assert starts == [0.0, 30.0]
    assert np.isfinite(pw.x_old).all()
    strict = make_paired_windows(read_manifest(path), old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False,
                                 preprocessing=Preprocessing(flat_s=3.0))
    assert strict.dropped == {"nan_old": 1}


def _edf_pair(folder: Path, subject: str, old_start: dt.datetime, new_start: dt.datetime, seconds=40):
    from bioxbridge_core.data.readers import write_recording

    rng = np.random.default_rng(5)
    n = int(seconds * SF)
    # the same wall-clock burst in both files: a 3 Hz burst at absolute 09:00:22 +- 0.5 s
    burst_abs = dt.datetime(2020, 1, 1, 9, 0, 22)
    out = []
    for kind, start, name in (("old", old_start, "ECG"), ("new", new_start, "PPG PLETH")):
        t = np.arange(n) / SF
        x = 0.05 * rng.standard_normal(n)
        c = (burst_abs - start).total_seconds()
        x += np.exp(-0.5 * ((t - c) / 0.3) ** 2) * np.sin(2 * np.pi * 3 * t)
        rec = Recording(data=x[None], sfreq=SF, ch_names=[name], start_time=start, units=["mV"])
        out.append(write_recording(rec, folder / f"{subject}_{kind}.edf"))
    return out


def test_two_files_are_aligned_on_start_time(tmp_path):
    t0 = dt.datetime(2020, 1, 1, 9, 0, 0)
    rows = []
    for s in ("a", "b", "c"):
        old, new = _edf_pair(tmp_path, s, t0, t0 + dt.timedelta(seconds=5))
        rows.append({"old_path": old.name, "new_path": new.name, "subject": s, "old_channels": "ECG",
                     "new_channels": "PPG PLETH"})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    pw = make_paired_windows(tmp_path / "m.csv", old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False)
    a = pw.meta["subject"] == "a"
    assert pw.meta.loc[a, "start_s"].tolist() == [5.0, 15.0, 25.0]  # common span [5, 40) s of the old file
    assert pw.meta.loc[a, "recording"].iloc[0] == "a_old.edf+a_new.edf"
    # the burst at 22 s (old time base) sits 7 s into the window starting at 15 s, on both sides
    i = np.flatnonzero(a)[1]
    peak_old = np.argmax(np.abs(pw.x_old[i, 0])) / 100.0
    peak_new = np.argmax(np.abs(pw.x_new[i, 0])) / 50.0
    assert peak_old == pytest.approx(7.0, abs=0.4) and peak_new == pytest.approx(7.0, abs=0.4)


def test_two_files_that_do_not_overlap(tmp_path):
    t0 = dt.datetime(2020, 1, 1, 9, 0, 0)
    old, new = _edf_pair(tmp_path, "a", t0, t0 + dt.timedelta(minutes=5))
    pd.DataFrame([{"old_path": old.name, "new_path": new.name, "subject": "a", "old_channels": "ECG",
                   "new_channels": "PPG PLETH"}]).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(WindowingError, match="a_old.edf and a_new.edf do not overlap"):
        make_paired_windows(tmp_path / "m.csv", old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False)


def test_windowing_errors(tmp_path):
    rng = np.random.default_rng(0)
    ecg, ppg = _signals(rng, 1.0, int(30 * SF))
    for s in "abc":
        _npz(tmp_path / f"{s}.npz", [ecg, ppg, ppg], ["ECG", "PPG", "PPG2"])
    _npz(tmp_path / "short.npz", [ecg[:1000], ppg[:1000]], ["ECG", "PPG"])

    def manifest(rows, name):
        pd.DataFrame(rows).to_csv(tmp_path / name, index=False)
        return read_manifest(tmp_path / name)

    base = [{"path": f"{s}.npz", "subject": s, "old_channels": "ECG", "new_channels": "PPG"} for s in "abc"]
    short = manifest(base + [{"path": "short.npz", "subject": "d", "old_channels": "ECG", "new_channels": "PPG"}],
                     "short.csv")
    with pytest.raises(WindowingError, match=r"short.csv, row 4 \(short.npz\).*shorter than one 10 s window"):
        make_paired_windows(short, old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False)
    mixed = manifest(base[:2] + [{**base[2], "new_channels": "PPG;PPG2"}], "mixed.csv")
    with pytest.raises(WindowingError, match=r"row 3 \(c.npz\): 1 old / 2 new channels"):
        make_paired_windows(mixed, old_spec=ECG_SPEC, new_spec=SignalSpec("PPG", 50, 10, n_chans=None), cache=False)
    with pytest.raises(WindowingError, match=r"row 3 .*2 PPG channel\(s\) \['PPG', 'PPG2'\] but the encoder takes 1"):
        make_paired_windows(mixed, old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False)
    typo = manifest([{**r, "new_channels": "PPG3"} for r in base], "typo.csv")
    with pytest.raises(RecordingError, match=r"typo.csv, row 1: Channel 'PPG3' not in a.npz.*Did you mean"):
        make_paired_windows(typo, old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False)
    labelled = manifest([{**r, "label": lab, "split": sp} for r, lab, sp in
                         zip(base, ["x", "y", "y"], ["train", "train", "test"])], "classes.csv")
    with pytest.raises(WindowingError, match=r"class\(es\) \['x'\] have no windows in the test split"):
        make_paired_windows(labelled, old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False)
    for s in "abc":
        _npz(tmp_path / f"{s}.npz", [np.zeros(int(30 * SF)), ppg, ppg], ["ECG", "PPG", "PPG2"])
    flat = manifest(base, "flat.csv")
    with pytest.raises(WindowingError, match=r"no usable windows .*flat_old: 9"):
        make_paired_windows(flat, old_spec=ECG_SPEC, new_spec=PPG_SPEC, cache=False)


def test_spec_channel_names_pick_and_order_channels(tmp_path):
    n = int(20 * SF)
    t = np.arange(n) / SF
    fp1, o1, ecg = np.sin(2 * np.pi * 4 * t), np.sin(2 * np.pi * 10 * t), np.sin(2 * np.pi * 1.2 * t)
    for s in "abc":
        _npz(tmp_path / f"{s}.npz", [fp1, o1, ecg], ["EEG Fp1", "EEG O1", "ECG ECG"])
    pd.DataFrame([{"path": f"{s}.npz", "subject": s, "old_channels": "EEG Fp1;EEG O1", "new_channels": "ECG ECG"}
                  for s in "abc"]).to_csv(tmp_path / "m.csv", index=False)
    eeg = SignalSpec("EEG", 100.0, 10.0, n_chans=2, ch_names=("O1", "FP1"))
    pw = make_paired_windows(tmp_path / "m.csv", old_spec=eeg, new_spec=ECG_SPEC, cache=False)
    assert pw.old_channels == ["EEG O1", "EEG Fp1"]
    f = np.fft.rfftfreq(1000, 1 / 100)
    assert f[np.argmax(np.abs(np.fft.rfft(pw.x_old[0, 0])))] == pytest.approx(10, abs=0.2)
    missing = SignalSpec("EEG", 100.0, 10.0, n_chans=2, ch_names=("O1", "CZ"))
    with pytest.raises(WindowingError, match="needs channel 'CZ'"):
        make_paired_windows(tmp_path / "m.csv", old_spec=missing, new_spec=ECG_SPEC, cache=False)


def test_cache_reused_and_invalidated(tmp_path, monkeypatch):
    path = _dataset(tmp_path, n_subjects=3, seconds=20.0)
    m = read_manifest(path)
    first = make_paired_windows(m, old_spec=ECG_SPEC, new_spec=PPG_SPEC)
    calls = []
    real = pairing._read
    monkeypatch.setattr(pairing, "_read", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = make_paired_windows(m, old_spec=ECG_SPEC, new_spec=PPG_SPEC)
    assert calls == [] and np.array_equal(again.x_old, first.x_old)
    assert again.meta.equals(first.meta)
    other = make_paired_windows(m, old_spec=ECG_SPEC, new_spec=SignalSpec("PPG", 64.0, 10.0))
    assert len(calls) == 6 and other.x_new.shape[-1] == 640
    f = tmp_path / "s0_rest.npz"
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    make_paired_windows(m, old_spec=ECG_SPEC, new_spec=PPG_SPEC)
    assert len(calls) == 12  # a changed file recomputes everything


def test_window_recording_for_inference():
    rng = np.random.default_rng(4)
    ecg, ppg = _signals(rng, 1.2, int(35 * SF), gain=500)
    ppg[int(21 * SF): int(23 * SF)] = 7.0
    rec = Recording(data=np.stack([ecg, ppg]), sfreq=SF, ch_names=["ECG II", "PLETH"], source="x.npz")
    rw = window_recording(rec, spec=PPG_SPEC, step_s=5.0)
    assert rw.ch_names == ["PLETH"] and rw.sfreq == 50.0
    assert rw.x.shape[1:] == (1, 500)
    assert rw.start_s.tolist() == [0.0, 5.0, 10.0, 25.0]  # 15 and 20 touch the flat line
    assert rw.dropped == {"flat": 2}
    assert np.allclose(rw.x.std(-1), 1, atol=1e-3)
    with pytest.raises(WindowingError, match="x.npz: 3.00 s is shorter"):
        window_recording(rec.crop(0, 3.0), spec=PPG_SPEC)
