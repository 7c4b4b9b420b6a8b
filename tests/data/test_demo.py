"""The built-in simulated demo datasets."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from bioxbridge_core.errors import ConfigError
from bioxbridge_core.spec import SignalSpec
from bioxbridge_core.data.demo import ECG_PPG_CLASSES, EEG_ECG_CLASSES, N_SUBJECTS, SIZES, demo_manifest
from bioxbridge_core.data.manifest import read_manifest
from bioxbridge_core.data.pairing import make_paired_windows
from bioxbridge_core.data.readers import read_recording


def _heart_rate(x, sfreq):
    import neurokit2 as nk

    _, info = nk.ecg_peaks(x, sampling_rate=int(sfreq))
    return 60.0 / np.mean(np.diff(info["ECG_R_Peaks"]) / sfreq)


def _pulse_rate(x, sfreq):
    from scipy.signal import find_peaks

    x = (x - x.mean()) / x.std()
    peaks, _ = find_peaks(x, distance=int(0.35 * sfreq), prominence=1.0)
    return 60.0 / np.mean(np.diff(peaks) / sfreq)


@pytest.fixture(scope="module")
def ecg_ppg(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    t0 = time.perf_counter()
    path = demo_manifest("ecg-ppg", seed=0, root=root, size="small")
    return path, time.perf_counter() - t0, root


def test_ecg_ppg_generates_fast_and_reads_back(ecg_ppg):
    path, seconds, root = ecg_ppg
    assert seconds < 10, f"generation took {seconds:.2f} s"
    assert path == root / "ecg-ppg" / "seed0-small" / "manifest.csv"  # the suite uses the small demo
    m = read_manifest(path, seed=0)
    assert len(m) == N_SUBJECTS * len(ECG_PPG_CLASSES), f"generation took {seconds:.2f} s"
    assert m.label_names == sorted(ECG_PPG_CLASSES)
    rec = read_recording(m.table["old_path"].iloc[0])
    assert rec.ch_names == ["ECG", "PPG PLETH"] and rec.sfreq == 250 and rec.duration_s == 60
    assert rec.ch_types == ["ECG", "PPG"]
    pw = make_paired_windows(m, old_spec=SignalSpec("ECG", 100.0, 10.0), new_spec=SignalSpec("PPG", 50.0, 10.0),
                             cache=False)
    counts = pw.counts()
    assert (counts.loc[["train", "test"], sorted(ECG_PPG_CLASSES)] > 0).all().all()
    assert pw.dropped == {}


def test_ecg_ppg_classes_differ_in_heart_rate_and_ppg_follows_ecg(ecg_ppg):
    path, seconds, _ = ecg_ppg
    m = read_manifest(path)
    rows = []
    for r in m.table.itertuples():
        rec = read_recording(r.old_path)
        rows.append({"subject": r.subject, "label": r.label, "hr": _heart_rate(rec.data[0], rec.sfreq),
                     "pr": _pulse_rate(rec.data[1], rec.sfreq), "ppg_sd": rec.data[1].std()})
    df = pd.DataFrame(rows)
    hr = df.groupby("label")["hr"].mean()
    msg = f"generation took {seconds:.2f} s; mean heart rate per class {hr.round(1).to_dict()}"
    assert hr["rest"] + 15 < hr["stress"] < hr["exercise"] - 15, msg
    paired = df.pivot(index="subject", columns="label", values="hr")
    assert (paired["stress"] > paired["rest"]).all(), msg
    assert np.allclose(df["pr"], df["hr"], atol=3), "PPG pulse rate should match the ECG heart rate"
    gain = df.groupby("subject")["ppg_sd"].mean()
    assert gain.max() > 3 * gain.min()  # device gain differs between subjects


def test_reuse_regenerate_and_determinism(ecg_ppg, tmp_path):
    path, _, root = ecg_ppg
    before = {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()}
    t0 = time.perf_counter()
    assert demo_manifest("ecg-ppg", seed=0, root=root, size="small") == path
    assert time.perf_counter() - t0 < 0.5
    assert {p.name: p.stat().st_mtime_ns for p in path.parent.iterdir()} == before
    # an identical second copy, seed for seed
    other = demo_manifest("ecg-ppg", seed=0, root=tmp_path)
    for name in ("sub00_rest.edf", "sub07_exercise.edf"):
        a, b = read_recording(path.parent / name), read_recording(other.parent / name)
        assert np.array_equal(a.data, b.data)
    # a missing file makes the folder incomplete: regenerated
    (other.parent / "sub03_stress.edf").unlink()
    assert demo_manifest("ecg-ppg", seed=0, root=tmp_path) == other
    assert (other.parent / "sub03_stress.edf").is_file()
    seed1 = demo_manifest("ecg-ppg", seed=1, root=tmp_path)
    a, b = read_recording(path.parent / "sub00_rest.edf"), read_recording(seed1.parent / "sub00_rest.edf")
    assert not np.allclose(a.data, b.data)


def test_default_location_is_cache(monkeypatch):
    from bioxbridge_core.paths import cache_dir

    path = demo_manifest("eeg-ecg", seed=3)
    assert path.parent == cache_dir("demo", "eeg-ecg", "seed3-small")
    monkeypatch.setenv("BIOXBRIDGE_DEMO_SIZE", "huge")
    with pytest.raises(ConfigError, match="BIOXBRIDGE_DEMO_SIZE"):
        demo_manifest("eeg-ecg", seed=3)
    with pytest.raises(ConfigError, match="kind"):
        demo_manifest("ppg-emg")


def test_eeg_ecg_classes_differ_in_alpha_and_heart_rate(tmp_path):
    from scipy.signal import welch

    t0 = time.perf_counter()
    path = demo_manifest("eeg-ecg", seed=0, root=tmp_path)
    seconds = time.perf_counter() - t0
    assert seconds < 10, f"generation took {seconds:.2f} s"
    m = read_manifest(path)
    assert len(m) == N_SUBJECTS * len(EEG_ECG_CLASSES) and m.label_names == ["rest", "task"]
    assert len(m.table["old_channels"].iloc[0]) == 8 and m.table["new_channels"].iloc[0] == ("ECG ECG",)
    rows = []
    for r in m.table.itertuples():
        rec = read_recording(r.old_path)
        f, p = welch(rec.pick(["EEG O1"]).data[0], rec.sfreq, nperseg=512)
        alpha = p[(f >= 8) & (f <= 12)].mean() / p[(f >= 2) & (f <= 30)].mean()
        rows.append({"subject": r.subject, "label": r.label, "alpha": alpha,
                     "hr": _heart_rate(rec.pick(["ECG ECG"]).data[0], rec.sfreq)})
    df = pd.DataFrame(rows)
    alpha = df.pivot(index="subject", columns="label", values="alpha")
    hr = df.pivot(index="subject", columns="label", values="hr")
    msg = f"generation took {seconds:.2f} s; alpha {alpha.mean().round(2).to_dict()}, hr {hr.mean().round(1).to_dict()}"
    assert (alpha["rest"] > alpha["task"]).mean() >= 0.9, msg
    assert (hr["task"] - hr["rest"]).mean() > 8, msg
    pw = make_paired_windows(m, old_spec=SignalSpec("EEG", 100.0, 10.0, n_chans=8),
                             new_spec=SignalSpec("ECG", 100.0, 10.0), cache=False)
    assert pw.x_old.shape[1:] == (8, 1000) and pw.dropped == {}


def test_full_demo_is_a_few_hundred_pairs_and_quick(tmp_path):
    """The demo users see first: 16 subjects x 3 classes x 120 s, 10 s windows, in a few seconds."""
    t0 = time.perf_counter()
    path = demo_manifest("ecg-ppg", seed=0, root=tmp_path, size="full")
    seconds = time.perf_counter() - t0
    assert seconds < 15, f"generation took {seconds:.2f} s"
    n_subjects, duration = SIZES["full"]
    m = read_manifest(path, seed=0)
    assert len(m) == n_subjects * len(ECG_PPG_CLASSES) and path.parent.name == "seed0"
    pw = make_paired_windows(m, old_spec=SignalSpec("ECG", 100.0, 10.0), new_spec=SignalSpec("PPG", 50.0, 10.0),
                             cache=False)
    counts = pw.counts()
    assert len(pw) == n_subjects * len(ECG_PPG_CLASSES) * int(duration // 10)
    n_pair = sum(int(counts.loc[s].sum()) for s in ("pair", "val") if s in counts.index)
    assert n_pair >= 200, counts  # a few hundred pair windows
    with pytest.raises(ConfigError, match="size"):
        demo_manifest("ecg-ppg", root=tmp_path, size="medium")
