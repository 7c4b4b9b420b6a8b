"""WFDB beyond the basic record: several samples per frame, multi-segment records with gaps, annotations."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from bioxbridge_core.data.readers import read_header, read_recording
from bioxbridge_core.errors import RecordingError

try:
    from ._reader_checks import check_recording
except ImportError:
    from _reader_checks import check_recording

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")


def _wrsamp(folder, name, fs, names, signals, units=None, **kw):
    import wfdb

    units = units or ["mV"] * len(names)
    wfdb.wrsamp(name, fs=fs, units=units, sig_name=names, p_signal=np.column_stack(signals),
                fmt=["16"] * len(names), adc_gain=[1000.0] * len(names), baseline=[0] * len(names),
                write_dir=str(folder), **kw)


def test_several_samples_per_frame_are_never_averaged(tmp_path):
    import wfdb

    n_frames = 20
    ecg = np.round(np.sin(np.arange(n_frames * 8) / 3), 3)  # 8 samples per 10 Hz frame = 80 Hz
    pleth = np.round(np.cos(np.arange(n_frames * 2) / 2), 3)  # 2 per frame = 20 Hz
    wfdb.wrsamp("mf", fs=10, units=["mV", "NU"], sig_name=["ECG", "PLETH"], e_p_signal=[ecg, pleth],
                samps_per_frame=[8, 2], fmt=["16", "16"], adc_gain=[1000.0, 1000.0], baseline=[0, 0],
                base_time=dt.time(8, 30, 15, 500000), base_date=dt.date(2026, 2, 3), write_dir=str(tmp_path))
    header = read_header(tmp_path / "mf.hea")
    assert [(c.name, c.sfreq, c.n_samples) for c in header.channels] == [("ECG", 80.0, 160), ("PLETH", 20.0, 40)]
    with pytest.raises(RecordingError, match=r"different sampling rates \(80 Hz: ECG; 20 Hz: PLETH\)"):
        read_recording(tmp_path / "mf.hea")
    rec = check_recording(read_recording(tmp_path / "mf.hea", channels=["ECG"]), n_times=160, sfreq=80.0)
    np.testing.assert_allclose(rec.data[0], ecg, atol=1e-3)  # every sample, not one mean per frame
    assert rec.start_time == dt.datetime(2026, 2, 3, 8, 30, 15, 500000)  # fraction of a second kept
    pl = check_recording(read_recording(tmp_path / "mf.dat", channels="PPG"), n_times=40, sfreq=20.0)
    np.testing.assert_allclose(pl.data[0], pleth, atol=1e-3)


def _segments(tmp_path):
    fs = 100
    t = np.arange(300) / fs
    _wrsamp(tmp_path, "seg1", fs, ["II", "PLETH"], [t, 2 * t])  # 0-3 s
    t2 = 5 + np.arange(200) / fs
    _wrsamp(tmp_path, "seg2", fs, ["II", "PLETH"], [t2, 2 * t2])  # 5-7 s, after a 2 s null segment
    return fs


def test_multi_segment_fixed_layout_keeps_its_gap(tmp_path):
    fs = _segments(tmp_path)
    (tmp_path / "ms.hea").write_text("ms/3 2 100 700 10:00:00 01/02/2026\nseg1 300\n~ 200\nseg2 200\n")
    rec = check_recording(read_recording(tmp_path / "ms.hea"), n_times=700, sfreq=100.0, ch_names=["II", "PLETH"])
    assert rec.gaps == [(3.0, 2.0)] and rec.start_time == dt.datetime(2026, 2, 1, 10)
    ok = ~rec.gap_mask()
    assert np.isnan(rec.data[:, ~ok]).all()
    np.testing.assert_allclose(rec.data[0, ok], rec.times()[ok], atol=1e-3)  # each sample at its true time
    header = read_header(tmp_path / "ms.hea")
    assert header.format == "WFDB multi-segment" and header.gaps == [(3.0, 2.0)] and header.duration_s == 7.0


def test_multi_segment_variable_layout(tmp_path):
    fs = 100
    t = np.arange(300) / fs
    _wrsamp(tmp_path, "v1", fs, ["II", "PLETH"], [t, 2 * t])
    t3 = 3 + np.arange(200) / fs
    _wrsamp(tmp_path, "v3", fs, ["PLETH"], [2 * t3])  # this segment has no II
    (tmp_path / "v_layout.hea").write_text("v_layout 2 100 0\n~ 16 1000/mV 16 0 0 0 0 II\n"
                                           "~ 16 1000/mV 16 0 0 0 0 PLETH\n")
    (tmp_path / "v.hea").write_text("v/3 2 100 500\nv_layout 0\nv1 300\nv3 200\n")
    rec = check_recording(read_recording(tmp_path / "v.hea"), n_times=500, ch_names=["II", "PLETH"])
    assert rec.gaps == []  # PLETH is there all along
    assert np.isnan(rec.data[0, 300:]).all() and np.isfinite(rec.data[1]).all()
    ii = read_recording(tmp_path / "v.hea", channels=["II"])
    assert ii.gaps == [(3.0, 2.0)]  # for II alone, the last segment is a gap


def test_multi_segment_missing_segment_is_named(tmp_path):
    _segments(tmp_path)
    (tmp_path / "seg2.hea").unlink()
    (tmp_path / "ms.hea").write_text("ms/3 2 100 700\nseg1 300\n~ 200\nseg2 200\n")
    with pytest.raises(RecordingError, match=r"ms\.hea.*segment 'seg2'.*seg2\.hea is missing"):
        read_recording(tmp_path / "ms.hea")


def test_annotation_file_path_reads_its_record(tmp_path):
    import wfdb

    _wrsamp(tmp_path, "r", 250, ["MLII"], [np.zeros(1000)])
    wfdb.wrann("r", "atr", np.array([250, 500]), symbol=["N", "V"], fs=250, write_dir=str(tmp_path))
    rec = read_recording(tmp_path / "r.atr")
    assert rec.ch_names == ["MLII"] and [(a.onset_s, a.description) for a in rec.annotations] == [(1.0, "N"),
                                                                                                  (2.0, "V")]
