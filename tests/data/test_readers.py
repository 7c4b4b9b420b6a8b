"""Readers: committed real fixtures, round trips through every format, uploads, real data (slow)."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioxbridge_core.data import readers
from bioxbridge_core.data.readers import (
    DEFAULT_MAX_UPLOAD_BYTES,
    read_recording,
    read_recording_bytes,
    write_recording,
)
from bioxbridge_core.data.recording import Annotation, Recording
from bioxbridge_core.errors import RecordingError

try:  # tests/ may or may not become a package
    from ._reader_checks import check_recording
except ImportError:
    from _reader_checks import check_recording

# wfdb's own use of deprecated pandas arguments is not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")

EEG6 = ["EEG Fp1", "EEG F3", "EEG F4", "EEG C3", "EEG C4", "EEG O1"]


def _edf_tolerance(x: np.ndarray) -> np.ndarray:
    """Per-channel bound on 16-bit EDF quantisation over the channel's own range, plus float32 slack."""
    span = x.max(axis=1) - x.min(axis=1)
    return span / 65534 * 0.51 + 1e-5 * np.abs(x).max(axis=1) + 1e-12


def _synthetic(n_times: int = 2500, sfreq: float = 250.0) -> Recording:
    rng = np.random.default_rng(1)
    t = np.arange(n_times) / sfreq
    data = np.vstack([
        1.2 * np.sin(2 * np.pi * 1.1 * t) + 0.05 * rng.normal(size=n_times),  # mV
        40 * rng.normal(size=n_times),  # uV
        2000 + 300 * np.sin(2 * np.pi * 1.3 * t),  # NU
    ])
    return Recording(
        data, sfreq, ["ECG II", "EEG Fp1", "PPG PLETH"], units=["mV", "uV", "NU"],
        start_time=dt.datetime(2021, 3, 4, 5, 6, 7),
        annotations=[Annotation(1.5, 2.0, "task"), Annotation(4.0, 0.0, "marker")],
    )


# -- committed real fixtures -------------------------------------------------------------------


def test_fixture_sizes_and_layout(fixtures_dir):
    files = [f for f in fixtures_dir.rglob("*") if f.is_file() and "__pycache__" not in f.parts]
    total = sum(f.stat().st_size for f in files)
    assert total < 5_000_000
    edfs = sorted(p.name for p in (fixtures_dir / "eegmat").glob("*.edf"))
    assert edfs == [f"Subject0{s}_{k}.edf" for s in range(4) for k in (1, 2)]
    alarms = pd.read_csv(fixtures_dir / "cinc2015_vt" / "alarms.csv")
    assert list(alarms.columns) == ["recordname", "result"]
    assert sorted(alarms["result"].tolist()) == [0, 0, 0, 1, 1, 1]
    for name in alarms["recordname"]:
        assert (fixtures_dir / "cinc2015_vt" / f"{name}.hea").is_file()
        assert (fixtures_dir / "cinc2015_vt" / f"{name}.dat").is_file()
    assert "ODC-By" in (fixtures_dir / "NOTICE.md").read_text()


@pytest.mark.parametrize("name", ["Subject00_1.edf", "Subject03_2.edf"])
def test_eegmat_fixture(fixtures_dir, name):
    rec = read_recording(fixtures_dir / "eegmat" / name)
    check_recording(rec, n_chans=7, n_times=40 * 500, ch_names=EEG6 + ["ECG ECG"], sfreq=500.0, source_name=name)
    assert rec.ch_types == ["EEG"] * 6 + ["ECG"]
    assert rec.units == ["uV"] * 6 + ["mV"]
    assert rec.start_time is not None and rec.start_time.tzinfo is None
    # Physical units, not volts: EEG std of microvolts, ECG peaks of a fraction of a millivolt.
    eeg_std = rec.data[:6].std(axis=1)
    assert np.all((eeg_std > 0.5) & (eeg_std < 500)), eeg_std
    assert 0.05 < np.ptp(rec.data[6]) < 20


def test_cinc_fixture_records_have_ecg_and_pleth(fixtures_dir):
    alarms = pd.read_csv(fixtures_dir / "cinc2015_vt" / "alarms.csv")
    for name in alarms["recordname"]:
        rec = read_recording(fixtures_dir / "cinc2015_vt" / f"{name}.hea")
        check_recording(rec, n_chans=3, n_times=60 * 250, sfreq=250.0, source_name=f"{name}.hea")
        assert rec.ch_names[-1] == "PLETH" and rec.ch_types == ["ECG", "ECG", "PPG"]
        assert rec.units == ["mV", "mV", "NU"]
        assert np.isfinite(rec.data).all()
        assert rec.data[2].std() > 0


def test_wfdb_dat_path_and_uppercase_suffix(fixtures_dir, tmp_path):
    rec_hea = read_recording(fixtures_dir / "cinc2015_vt" / "v100s.hea")
    rec_dat = read_recording(fixtures_dir / "cinc2015_vt" / "v100s.dat")
    np.testing.assert_array_equal(rec_hea.data, rec_dat.data)
    edf = tmp_path / "UPPER.EDF"
    shutil.copy(fixtures_dir / "eegmat" / "Subject00_1.edf", edf)
    check_recording(read_recording(edf), n_chans=7, source_name="UPPER.EDF")


def test_channels_pick_override_and_subject(fixtures_dir):
    path = fixtures_dir / "eegmat" / "Subject01_2.edf"
    full = read_recording(path)
    rec = read_recording(path, channels=["ECG ECG", "EEG Fp1"], ch_types={"EEG Fp1": "other"}, subject="S01")
    check_recording(rec, ch_names=["ECG ECG", "EEG Fp1"])
    assert rec.ch_types == ["ECG", "other"] and rec.units == ["mV", "uV"] and rec.subject == "S01"
    np.testing.assert_array_equal(rec.data[0], full.data[full.ch_names.index("ECG ECG")])
    assert read_recording(path, channels="ECG").ch_names == ["ECG ECG"]
    assert read_recording(path, channels="EEG C3;ECG ECG").ch_names == ["EEG C3", "ECG ECG"]


def test_missing_channel_lists_available_and_suggests(fixtures_dir):
    with pytest.raises(RecordingError) as err:
        read_recording(fixtures_dir / "cinc2015_vt" / "v143l.hea", channels=["II", "PLETHH"])
    msg = str(err.value)
    assert "PLETHH" in msg and "v143l.hea" in msg and "'V'" in msg and "Did you mean 'PLETH'" in msg


def test_bad_ch_types_and_sfreq_mismatch(fixtures_dir):
    path = fixtures_dir / "cinc2015_vt" / "v100s.hea"
    with pytest.raises(RecordingError, match="channel type 'ECGG'"):
        read_recording(path, ch_types={"II": "ECGG"})
    with pytest.raises(RecordingError, match="never resample"):
        read_recording(path, sfreq=100.0)
    assert read_recording(path, sfreq=250.0).sfreq == 250.0


# -- round trips through every format ------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".edf", ".csv", ".tsv", ".npz", ".hea"])
def test_round_trip_with_our_writer(tmp_path, suffix):
    rec = _synthetic()
    path = write_recording(rec, tmp_path / f"rec{suffix}")
    back = check_recording(read_recording(path), n_chans=3, n_times=rec.n_times, ch_names=rec.ch_names,
                           sfreq=rec.sfreq, source_name=f"rec{suffix}")
    assert back.ch_types == ["ECG", "EEG", "PPG"]
    assert back.units == rec.units
    err = np.abs(back.data.astype(np.float64) - rec.data).max(axis=1)
    if suffix in (".edf", ".hea"):
        assert np.all(err <= _edf_tolerance(rec.data.astype(np.float64))), err
        assert back.start_time == rec.start_time
    else:
        np.testing.assert_array_equal(back.data, rec.data)
    if suffix == ".edf":
        assert back.annotations == rec.annotations
    elif suffix == ".hea":  # WFDB annotations are points: onsets and texts survive
        assert [(a.onset_s, a.description) for a in back.annotations] == [(1.5, "task"), (4.0, "marker")]
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_edf_written_by_mne_export(tmp_path):
    import mne

    rng = np.random.default_rng(2)
    info = mne.create_info(["Fp1", "ECG"], 256.0, ["eeg", "ecg"])
    volts = np.vstack([30e-6 * rng.normal(size=2560), 1e-3 * np.sin(np.linspace(0, 60, 2560))])
    raw = mne.io.RawArray(volts, info, verbose="error")
    raw.set_annotations(mne.Annotations([2.0], [1.5], ["rest"]))
    path = tmp_path / "mne.edf"
    mne.export.export_raw(path, raw, physical_range="channelwise", add_ch_type=True, verbose="error")
    rec = check_recording(read_recording(path), n_chans=2, n_times=2560, ch_names=["EEG Fp1", "ECG ECG"], sfreq=256.0)
    assert rec.ch_types == ["EEG", "ECG"] and rec.units == ["uV", "uV"]
    expected = volts * 1e6  # MNE writes voltages in microvolts
    assert np.all(np.abs(rec.data - expected).max(axis=1) <= _edf_tolerance(expected))
    assert rec.annotations == [Annotation(2.0, 1.5, "rest")]


def test_bdf_written_by_mne_export(tmp_path):
    import mne

    rng = np.random.default_rng(3)
    raw = mne.io.RawArray(20e-6 * rng.normal(size=(2, 1024)), mne.create_info(["Cz", "Pz"], 512.0, "eeg"),
                          verbose="error")
    path = tmp_path / "x.bdf"
    mne.export.export_raw(path, raw, physical_range="channelwise", verbose="error")
    rec = check_recording(read_recording(path), n_chans=2, n_times=1024, ch_names=["Cz", "Pz"], sfreq=512.0)
    assert rec.ch_types == ["EEG", "EEG"] and rec.units == ["uV", "uV"]
    np.testing.assert_allclose(rec.data, raw.get_data() * 1e6, atol=1e-3)


def test_wfdb_written_by_wfdb_with_annotations(tmp_path):
    import wfdb

    rng = np.random.default_rng(4)
    sig = np.column_stack([rng.normal(size=1000), 100 + 10 * rng.normal(size=1000)])
    sig[10, 1] = np.nan
    wfdb.wrsamp("rec1", fs=125, units=["mV", "NU"], sig_name=["MLII", "PLETH"], p_signal=sig,
                fmt=["16", "16"], write_dir=str(tmp_path))
    wfdb.wrann("rec1", "atr", np.array([100, 500]), symbol=["N", "V"], fs=125, write_dir=str(tmp_path))
    rec = check_recording(read_recording(tmp_path / "rec1.hea"), n_chans=2, n_times=1000, ch_names=["MLII", "PLETH"],
                          sfreq=125.0)
    assert rec.ch_types == ["ECG", "PPG"] and rec.units == ["mV", "NU"]
    assert np.isnan(rec.data[1, 10]) and np.isnan(rec.data).sum() == 1
    span = np.nanmax(sig, axis=0) - np.nanmin(sig, axis=0)
    for i in range(2):
        ok = np.isfinite(sig[:, i])
        np.testing.assert_allclose(rec.data[i, ok], sig[ok, i], atol=span[i] / 65000 + 1e-5)
    assert [(a.onset_s, a.description) for a in rec.annotations] == [(0.8, "N"), (4.0, "V")]


@pytest.mark.parametrize("time_name", ["time", "t", "Timestamp", "time_s"])
def test_csv_written_by_pandas_time_column(tmp_path, time_name):
    rng = np.random.default_rng(5)
    df = pd.DataFrame({time_name: 10.0 + np.arange(600) / 200.0, "ECG": rng.normal(size=600),
                       "PPG (a.u.)": rng.normal(size=600)})
    df.to_csv(tmp_path / "x.csv", index=False)
    rec = check_recording(read_recording(tmp_path / "x.csv"), n_chans=2, n_times=600, ch_names=["ECG", "PPG"])
    assert rec.sfreq == pytest.approx(200.0)
    assert rec.units == ["", "a.u."] and rec.ch_types == ["ECG", "PPG"]
    np.testing.assert_allclose(rec.data, df[["ECG", "PPG (a.u.)"]].to_numpy().T.astype(np.float32), rtol=1e-6)


def test_csv_sfreq_given_and_explicit_time_column(tmp_path):
    pd.DataFrame({"a": np.arange(50.0), "b": np.ones(50)}).to_csv(tmp_path / "n.csv", index=False)
    rec = check_recording(read_recording(tmp_path / "n.csv", sfreq=10.0), n_chans=2, n_times=50, ch_names=["a", "b"])
    assert rec.sfreq == 10.0 and rec.ch_types == ["other", "other"]
    rec2 = read_recording(tmp_path / "n.csv", time_column="a")
    assert rec2.sfreq == pytest.approx(1.0) and rec2.ch_names == ["b"]
    with pytest.raises(RecordingError, match="gives 1 Hz but sfreq=5"):
        read_recording(tmp_path / "n.csv", time_column="a", sfreq=5.0)


def test_parquet_written_by_pandas(tmp_path):
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"time_s": np.arange(300) / 100.0, "EEG Cz": np.sin(np.arange(300) / 7.0)})
    df.to_parquet(tmp_path / "x.parquet")
    rec = check_recording(read_recording(tmp_path / "x.parquet"), n_chans=1, n_times=300, ch_names=["EEG Cz"])
    assert rec.sfreq == pytest.approx(100.0) and rec.ch_types == ["EEG"]
    np.testing.assert_allclose(rec.data[0], df["EEG Cz"].to_numpy(), rtol=1e-6)


def test_npz_written_by_numpy(tmp_path):
    data = np.random.default_rng(6).normal(size=(2, 400)).astype(np.float64)
    np.savez(tmp_path / "a.npz", data=data, sfreq=np.float64(40), ch_names=np.array(["PLETH", "foo"]),
             ch_types=np.array(["PPG", "ECG"]), units=np.array(["NU", "mV"]))
    rec = check_recording(read_recording(tmp_path / "a.npz"), n_chans=2, n_times=400, ch_names=["PLETH", "foo"])
    assert rec.ch_types == ["PPG", "ECG"] and rec.units == ["NU", "mV"] and rec.sfreq == 40.0
    np.testing.assert_allclose(rec.data, data, rtol=1e-6)
    np.savez(tmp_path / "b.npz", data=data[0], sfreq=7)
    rec = check_recording(read_recording(tmp_path / "b.npz"), n_chans=1, ch_names=["ch0"], sfreq=7.0)
    assert rec.units == [""]


def test_edf_writer_handles_flat_channel_and_odd_length(tmp_path):
    data = np.vstack([np.full(1001, 3.25), np.linspace(-1, 1, 1001)])
    rec = Recording(data, 100.0, ["flat", "ramp"], units=["mV", "mV"])
    back = check_recording(read_recording(write_recording(rec, tmp_path / "f.edf")), n_times=1001)
    np.testing.assert_allclose(back.data[0], 3.25, atol=1e-4)
    np.testing.assert_allclose(back.data[1], data[1], atol=2 / 65534)


def test_writer_refusals(tmp_path):
    rec = _synthetic(500)
    with pytest.raises(RecordingError, match="cannot write '.xyz'"):
        write_recording(rec, tmp_path / "a.xyz")
    nan = rec.copy()
    nan.data[1, 3] = np.nan
    with pytest.raises(RecordingError, match="NaN"):
        write_recording(nan, tmp_path / "a.edf")
    long = Recording(rec.data[:1], 250.0, ["a channel name far too long"])
    with pytest.raises(RecordingError, match="EDF label"):
        write_recording(long, tmp_path / "b.edf")
    write_recording(rec, tmp_path / "c.npz")
    with pytest.raises(RecordingError, match="exists"):
        write_recording(rec, tmp_path / "c.npz", overwrite=False)


# -- uploads -------------------------------------------------------------------------------------


def test_read_bytes_edf_keeps_filename_and_cleans_up(fixtures_dir, monkeypatch):
    made = []
    real = tempfile.mkdtemp

    def spy(*a, **k):
        made.append(real(*a, **k))
        return made[-1]

    monkeypatch.setattr(readers.tempfile, "mkdtemp", spy)
    payload = (fixtures_dir / "eegmat" / "Subject02_1.edf").read_bytes()
    rec = read_recording_bytes(payload, "Subject02_1.edf", channels=["ECG ECG"], subject="02")
    check_recording(rec, ch_names=["ECG ECG"], n_times=20000)
    assert rec.source == "Subject02_1.edf" and rec.subject == "02"
    assert made and not Path(made[0]).exists()


def test_read_bytes_wfdb_dict_and_missing_data_file(fixtures_dir):
    folder = fixtures_dir / "cinc2015_vt"
    files = {"v159l.hea": (folder / "v159l.hea").read_bytes(), "v159l.dat": (folder / "v159l.dat").read_bytes()}
    rec = read_recording_bytes(files, "v159l.hea")
    check_recording(rec, ch_names=read_recording(folder / "v159l.hea").ch_names, n_times=15000)
    assert rec.source == "v159l.hea"
    with pytest.raises(RecordingError) as err:
        read_recording_bytes({"v159l.hea": files["v159l.hea"]}, "v159l.hea")
    msg = str(err.value)
    assert "v159l.dat" in msg and "missing" in msg and "bioxbridge-upload" not in msg


def test_read_bytes_limits():
    assert DEFAULT_MAX_UPLOAD_BYTES == 200 * 1024 * 1024
    with pytest.raises(RecordingError, match="more than the limit"):
        read_recording_bytes(b"0" * 2000, "big.edf", max_bytes=1000)
    with pytest.raises(RecordingError, match="empty"):
        read_recording_bytes(b"", "e.csv")
    with pytest.raises(RecordingError, match="not among the uploaded files"):
        read_recording_bytes({"a.dat": b"12"}, "a.hea")
    with pytest.raises(RecordingError, match="not an EDF"):
        read_recording_bytes(b"just text, not EDF" * 30, "fake.edf")


# -- the full development data (slow) -------------------------------------------------------------


@pytest.mark.slow
def test_real_eegmat_files(shared_data):
    for name in ("Subject00_1.edf", "Subject05_2.edf", "Subject12_1.edf"):
        rec = check_recording(read_recording(shared_data / "eegmat" / name), n_chans=21, sfreq=500.0)
        assert rec.ch_names[-1] == "ECG ECG" and rec.ch_types.count("EEG") == 20
        assert rec.units[0] == "uV" and rec.units[-1] == "mV"
        assert rec.duration_s > (150 if name.endswith("_1.edf") else 50)


@pytest.mark.slow
def test_real_cinc_records_and_missing_pleth(shared_data):
    folder = shared_data / "cinc2015_vt"
    alarms = pd.read_csv(folder / "alarms.csv")
    for name in alarms["recordname"][:4]:
        rec = check_recording(read_recording(folder / f"{name}.hea"), sfreq=250.0)
        assert rec.n_times in (300 * 250, 330 * 250)
        assert rec.ch_types[:2] == ["ECG", "ECG"] and rec.units[0] == "mV"
    no_pleth = None
    for name in alarms["recordname"]:
        header = (folder / f"{name}.hea").read_text()
        if "PLETH" not in header:
            no_pleth = name
            break
    if no_pleth is None:
        pytest.skip("every record has PLETH")
    with pytest.raises(RecordingError) as err:
        read_recording(folder / f"{no_pleth}.hea", channels=["PLETH"])
    assert f"{no_pleth}.hea" in str(err.value) and "PLETH" in str(err.value) and "Available" in str(err.value)
    with pytest.raises(RecordingError, match="has no PPG channel"):
        read_recording(folder / f"{no_pleth}.mat", channels="PPG")


def test_edf_with_mixed_rates_is_never_upsampled(tmp_path):
    import edfio

    n = np.arange(2560)
    edfio.Edf([
        edfio.EdfSignal(np.sin(n / 9), 256, label="EEG Cz", physical_dimension="uV"),
        edfio.EdfSignal(np.sin(n / 5), 256, label="EEG Pz", physical_dimension="uV"),
        edfio.EdfSignal(np.cos(np.arange(320) / 3), 32, label="Resp", physical_dimension="NU"),
    ]).write(tmp_path / "mixed.edf")
    path = tmp_path / "mixed.edf"
    with pytest.raises(RecordingError, match=r"different sampling rates \(256 Hz: EEG Cz, EEG Pz; 32 Hz: Resp\)"):
        read_recording(path)
    with pytest.raises(RecordingError, match="different sampling rates"):
        read_recording(path, channels=["EEG Cz", "Resp"])
    with pytest.raises(RecordingError, match="Did you mean 'Resp'"):
        read_recording(path, channels=["Res"])
    eeg = check_recording(read_recording(path, channels="EEG"), ch_names=["EEG Cz", "EEG Pz"], n_times=2560,
                          sfreq=256.0)
    np.testing.assert_allclose(eeg.data[0], np.sin(n / 9), atol=2 / 65534 + 1e-6)
    resp = check_recording(read_recording(path, channels=["resp"]), ch_names=["Resp"], n_times=320, sfreq=32.0)
    assert resp.units == ["NU"]
