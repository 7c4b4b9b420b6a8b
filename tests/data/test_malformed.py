"""Every broken file becomes one RecordingError naming the file and the problem (real malformed files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioxbridge_core.data.readers import read_recording, read_recording_bytes
from bioxbridge_core.errors import BioXError, RecordingError

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")


def expect_error(path: Path, *phrases: str, **kw) -> str:
    """Reading ``path`` raises RecordingError whose single-line message names the file and each phrase."""
    with pytest.raises(RecordingError) as err:
        read_recording(path, **kw)
    msg = str(err.value)
    assert path.name in msg, msg
    assert "\n" not in msg, msg
    for phrase in phrases:
        assert phrase in msg, f"{phrase!r} not in {msg!r}"
    return msg


@pytest.fixture
def edf_bytes(fixtures_dir) -> bytes:
    return (fixtures_dir / "eegmat" / "Subject00_1.edf").read_bytes()


@pytest.fixture
def wfdb_copy(fixtures_dir, tmp_path) -> Path:
    for suffix in (".hea", ".dat"):
        shutil.copy(fixtures_dir / "cinc2015_vt" / f"v100s{suffix}", tmp_path / f"v100s{suffix}")
    return tmp_path / "v100s.hea"


# -- EDF ---------------------------------------------------------------------------------------


def test_truncated_edf(tmp_path, edf_bytes):
    path = tmp_path / "half.edf"
    path.write_bytes(edf_bytes[: len(edf_bytes) // 2])
    expect_error(path, "truncated", "40 data records")


def test_edf_truncated_inside_header_and_header_only(tmp_path, edf_bytes):
    (tmp_path / "h1.edf").write_bytes(edf_bytes[:1000])
    expect_error(tmp_path / "h1.edf", "truncated inside its header")
    header_len = int(edf_bytes[184:192])
    (tmp_path / "h2.edf").write_bytes(edf_bytes[:header_len])
    expect_error(tmp_path / "h2.edf", "no data records")
    (tmp_path / "tiny.edf").write_bytes(edf_bytes[:100])
    expect_error(tmp_path / "tiny.edf", "shorter than an EDF/BDF header")


def test_garbage_and_text_named_edf_or_bdf(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "noise.edf").write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    expect_error(tmp_path / "noise.edf", "not an EDF/BDF file")
    (tmp_path / "notes.edf").write_text("time,ecg\n0,1\n" * 50)
    expect_error(tmp_path / "notes.edf", "not an EDF/BDF file", "extension")
    (tmp_path / "notes.bdf").write_text("hello " * 100)
    expect_error(tmp_path / "notes.bdf", "not an EDF/BDF file")


def test_empty_files(tmp_path):
    for name in ("e.edf", "e.csv", "e.npz", "e.tsv"):
        (tmp_path / name).write_bytes(b"")
        expect_error(tmp_path / name, "empty")


def test_corrupted_edf_header_never_escapes(tmp_path, edf_bytes):
    """Random damage to the header either still reads or gives a RecordingError -- nothing else."""
    rng = np.random.default_rng(1)
    header_len = int(edf_bytes[184:192])
    outcomes = {"read": 0, "error": 0}
    for i in range(25):
        buf = bytearray(edf_bytes)
        pos = int(rng.integers(0, header_len - 4))
        buf[pos: pos + 4] = rng.integers(32, 127, 4, dtype=np.uint8).tobytes()
        path = tmp_path / f"c{i}.edf"
        path.write_bytes(bytes(buf))
        try:
            read_recording(path)
            outcomes["read"] += 1
        except RecordingError as exc:
            assert path.name in str(exc)
            outcomes["error"] += 1
    assert sum(outcomes.values()) == 25


# -- suffixes ------------------------------------------------------------------------------------


def test_wrong_or_missing_extension(tmp_path, edf_bytes):
    (tmp_path / "rec.xyz").write_bytes(edf_bytes)
    expect_error(tmp_path / "rec.xyz", "unsupported file type '.xyz'", ".edf")
    (tmp_path / "rec").write_bytes(edf_bytes)
    expect_error(tmp_path / "rec", "(no extension)")


def test_not_found_and_folder(tmp_path):
    expect_error(tmp_path / "absent.edf", "not found")
    (tmp_path / "dir.edf").mkdir()
    expect_error(tmp_path / "dir.edf", "folder")


# -- WFDB ----------------------------------------------------------------------------------------


def test_wfdb_header_whose_data_file_is_missing(wfdb_copy):
    (wfdb_copy.parent / "v100s.dat").unlink()
    msg = expect_error(wfdb_copy, "v100s.dat", "missing")
    assert "header" in msg


def test_wfdb_data_without_header(tmp_path, wfdb_copy):
    wfdb_copy.unlink()
    expect_error(tmp_path / "v100s.dat", "v100s.hea")
    (tmp_path / "x.mat").write_bytes(b"\x00" * 100)
    expect_error(tmp_path / "x.mat", ".hea")


def test_wfdb_truncated_and_empty_data(wfdb_copy):
    dat = wfdb_copy.parent / "v100s.dat"
    payload = dat.read_bytes()
    dat.write_bytes(payload[:1001])
    expect_error(wfdb_copy, "truncated", "90000 bytes")
    dat.write_bytes(b"")
    expect_error(wfdb_copy, "empty")


def test_wfdb_bad_headers(tmp_path, wfdb_copy):
    text = wfdb_copy.read_text()
    wfdb_copy.write_text("this is not a header\n")
    expect_error(wfdb_copy, "not a WFDB header")
    wfdb_copy.write_bytes(bytes(range(256)) * 4)
    expect_error(wfdb_copy, "not a WFDB header")
    wfdb_copy.write_text("# only a comment\n")
    expect_error(wfdb_copy, "no record line")
    first, *rest = text.splitlines()
    wfdb_copy.write_text("\n".join([first, rest[0]]) + "\n")  # says 3 signals, describes 1
    expect_error(wfdb_copy, "declares 3 signals")
    wfdb_copy.write_bytes(b"")
    expect_error(wfdb_copy, "empty")


def test_cinc_channel_missing_is_clear(wfdb_copy):
    msg = expect_error(wfdb_copy, "ABP", "Available", "'PLETH'", channels=["II", "ABP"])
    assert "'V'" in msg


# -- tables ---------------------------------------------------------------------------------------


def test_csv_non_numeric_column_is_named(tmp_path):
    (tmp_path / "x.csv").write_text("time,ECG,note\n0,1.0,ok\n0.01,1.1,bad\n")
    expect_error(tmp_path / "x.csv", "column 'note' is not numeric", "'ok'")
    (tmp_path / "semi.csv").write_text("time;ECG;note\n0;1;ok\n0.01;2;bad\n")  # ';' is understood now
    expect_error(tmp_path / "semi.csv", "column 'note' is not numeric")


def test_csv_time_column_problems(tmp_path):
    t = np.arange(200) / 100.0
    t[120:] += 0.005  # half a sample late from row 121 on: fits no grid
    t[150:] += 0.002
    pd.DataFrame({"time_s": t, "a": np.ones(200)}).to_csv(tmp_path / "jit.csv", index=False)
    expect_error(tmp_path / "jit.csv", "irregular", "time_s", "row")
    pd.DataFrame({"t": [0.0, 0.0, 0.0], "a": [1, 2, 3]}).to_csv(tmp_path / "still.csv", index=False)
    expect_error(tmp_path / "still.csv", "does not increase")
    pd.DataFrame({"time": ["0", "x", "2"], "a": [1, 2, 3]}).to_csv(tmp_path / "txt.csv", index=False)
    expect_error(tmp_path / "txt.csv", "must hold numbers", "'x'")
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(tmp_path / "none.csv", index=False)
    expect_error(tmp_path / "none.csv", "no time column", "sfreq=")
    pd.DataFrame({"Time_sec": [0.0, 0.5], "b": [3.0, 4.0]}).to_csv(tmp_path / "named.csv", index=False)
    expect_error(tmp_path / "named.csv", "time column 'time_se' not found", "Did you mean 'Time_sec'",
                 time_column="time_se")


def test_rates_out_of_range(tmp_path):  # (not named 'absurd': the phrase must come from the message)
    pd.DataFrame({"time": np.arange(10) * 1e-9, "a": np.arange(10.0)}).to_csv(tmp_path / "fast.csv", index=False)
    expect_error(tmp_path / "fast.csv", "1e+09 Hz", "outside the plausible")
    pd.DataFrame({"a": np.arange(10.0)}).to_csv(tmp_path / "slow.csv", index=False)
    expect_error(tmp_path / "slow.csv", "is absurd", sfreq=1e-6)
    np.savez(tmp_path / "zero.npz", data=np.ones((1, 10)), sfreq=0.0)
    expect_error(tmp_path / "zero.npz", "is absurd")


def test_csv_binary_header_only_and_bad_parquet(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "bin.csv").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    expect_error(tmp_path / "bin.csv")
    (tmp_path / "head.csv").write_text("time,a\n")
    expect_error(tmp_path / "head.csv", "no rows")
    (tmp_path / "bad.parquet").write_text("not parquet " * 40)
    expect_error(tmp_path / "bad.parquet", "PARQUET")


# -- npz -----------------------------------------------------------------------------------------


def test_npz_problems(tmp_path):
    np.savez(tmp_path / "ok.npz", data=np.ones((2, 100)), sfreq=10.0)
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) - 60])
    expect_error(tmp_path / "cut.npz", "not a NumPy .npz")
    (tmp_path / "text.npz").write_text("data=1")
    expect_error(tmp_path / "text.npz", "not a NumPy .npz")
    np.savez(tmp_path / "nokeys.npz", x=np.ones(3))
    expect_error(tmp_path / "nokeys.npz", "'data'", "'sfreq'", "['x']")
    np.savez(tmp_path / "obj.npz", data=np.ones((2, 10)), sfreq=10.0, ch_names=np.array(["a", None], dtype=object))
    expect_error(tmp_path / "obj.npz", "never unpickled")
    np.savez(tmp_path / "names.npz", data=np.ones((2, 10)), sfreq=10.0, ch_names=np.array(["a", "b", "c"]))
    expect_error(tmp_path / "names.npz", "'ch_names' has 3 entries", "2 channels")
    np.savez(tmp_path / "3d.npz", data=np.ones((2, 3, 4)), sfreq=10.0)
    expect_error(tmp_path / "3d.npz", "2-D")
    np.savez(tmp_path / "dup.npz", data=np.ones((2, 10)), sfreq=10.0, ch_names=np.array(["a", "a"]))
    expect_error(tmp_path / "dup.npz", "duplicate channel")


# -- uploads: the message names the uploaded file, never the private temp path ----------------------


def test_upload_errors_name_the_upload(edf_bytes):
    with pytest.raises(RecordingError) as err:
        read_recording_bytes(edf_bytes[:5000], "cut.edf")
    msg = str(err.value)
    assert msg.startswith("cut.edf") and "truncated" in msg and "bioxbridge-upload" not in msg
    with pytest.raises(BioXError, match="EEG Fz"):
        read_recording_bytes(edf_bytes, "ok.edf", channels=["EEG Fz"])
