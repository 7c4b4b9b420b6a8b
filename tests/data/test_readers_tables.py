"""Tables as devices and spreadsheets write them: dialects, preambles, E4, OpenBCI, time columns."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from bioxbridge_core.data.readers import read_header, read_recording
from bioxbridge_core.errors import RecordingError

try:
    from ._reader_checks import check_recording
except ImportError:
    from _reader_checks import check_recording

UTC = dt.timezone.utc


def _expect(path, *phrases, **kw) -> str:
    with pytest.raises(RecordingError) as err:
        read_recording(path, **kw)
    msg = str(err.value)
    assert path.name in msg and "\n" not in msg, msg
    for p in phrases:
        assert p in msg, f"{p!r} not in {msg!r}"
    return msg


# -- dialects ------------------------------------------------------------------------------------
def test_semicolon_with_decimal_commas(tmp_path):
    rng = np.random.default_rng(0)
    ecg = np.round(rng.normal(size=300), 4)
    t = np.arange(300) / 250
    lines = ["Zeit [s];EKG [mV];SpO2 [%]"] + [f"{a:.3f};{b};{97.5:.1f}".replace(".", ",") for a, b in zip(t, ecg)]
    (tmp_path / "eu.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rec = check_recording(read_recording(tmp_path / "eu.csv", time_column="Zeit [s]"), n_times=300,
                          ch_names=["EKG", "SpO2"])
    assert rec.sfreq == 250.0 and rec.units == ["mV", "%"]
    np.testing.assert_allclose(rec.data[0], ecg, atol=1e-6)  # 1,2345 read as 1.2345, never 12345 or text
    np.testing.assert_allclose(rec.data[1], 97.5)


def test_tab_separated_decimal_comma_latin1_with_hash_preamble(tmp_path):
    body = "# exported by Gerät X\n# sampling rate: 100 Hz\n\nECG (µV)\tResp\n" + "".join(
        f"{i},5\t{-i},25\n" for i in range(50))
    (tmp_path / "lat.txt").write_bytes(body.encode("latin-1"))
    rec = check_recording(read_recording(tmp_path / "lat.txt"), n_times=50, ch_names=["ECG", "Resp"])
    assert rec.sfreq == 100.0 and rec.units == ["uV", ""]  # rate from the preamble, unit normalised
    assert rec.data[0, 3] == pytest.approx(3.5) and rec.data[1, 2] == pytest.approx(-2.25)
    assert any("Latin-1" in w for w in rec.warnings) and any("preamble" in w for w in rec.warnings)


def test_numeric_column_names_are_refused(tmp_path):
    (tmp_path / "nohead.csv").write_text("0.0,1.5\n0.01,1.6\n0.02,1.7\n")
    _expect(tmp_path / "nohead.csv", "first row holds numbers", "header row", sfreq=100.0)
    (tmp_path / "half.csv").write_text("time,-0.79\n0,1\n0.01,2\n")
    _expect(tmp_path / "half.csv", "'-0.79'", "are numbers")


# -- Empatica E4 ---------------------------------------------------------------------------------
def test_empatica_e4_files(tmp_path):
    (tmp_path / "EDA.csv").write_text("1495437325.250000\n4.000000\n0.000000\n0.123\n0.250\n0.251\n0.3\n")
    rec = check_recording(read_recording(tmp_path / "EDA.csv"), n_times=5, ch_names=["EDA"], sfreq=4.0)
    assert rec.start_time == dt.datetime(2017, 5, 22, 7, 15, 25, 250000, tzinfo=UTC)
    assert rec.units == ["uS"] and rec.ch_types == ["EDA"]
    np.testing.assert_allclose(rec.data[0], [0, 0.123, 0.25, 0.251, 0.3], atol=1e-6)
    (tmp_path / "ACC.csv").write_text("1495437325.0, 1495437325.0, 1495437325.0\n32.0, 32.0, 32.0\n"
                                      + "".join(f"{i}, {-i}, 64\n" for i in range(64)))
    acc = check_recording(read_recording(tmp_path / "ACC.csv"), n_times=64, sfreq=32.0,
                          ch_names=["ACC x", "ACC y", "ACC z"])
    assert acc.data[1, 10] == -10 and acc.start_time.tzinfo is not None
    (tmp_path / "IBI.csv").write_text("1495437325.000000, IBI\n12.3,0.81\n13.1,0.80\n")
    _expect(tmp_path / "IBI.csv", "inter-beat intervals", "not a sampled signal")
    (tmp_path / "tags.csv").write_text("1495437330.1\n1495437400.7\n")
    _expect(tmp_path / "tags.csv", "first row holds numbers")


# -- OpenBCI ---------------------------------------------------------------------------------------
def test_openbci_with_lost_packet_and_unix_timestamp(tmp_path):
    n, fs = 600, 250
    keep = np.ones(n, bool)
    keep[300:310] = False  # ten samples lost in transmission
    idx = np.arange(n)[keep]
    t0 = 1767261600.5
    lines = ["%OpenBCI Raw EEG Data", "%Number of channels = 2", "%Sample Rate = 250 Hz", "%Board = Cyton",
             "Sample Index, EXG Channel 0, EXG Channel 1, Accel Channel 0, Other, Timestamp, Timestamp (Formatted)"]
    for i in idx:
        lines.append(f"{i % 256}, {i * 0.5:.2f}, {-i:.2f}, 0.0, 192, {t0 + i / fs + 0.003 * (i % 3):.6f}, "
                     "2026-01-01 10:00:00.500")
    (tmp_path / "OpenBCI-RAW.txt").write_text("\n".join(lines) + "\n")
    rec = check_recording(read_recording(tmp_path / "OpenBCI-RAW.txt"), n_times=n, sfreq=250.0,
                          ch_names=["EXG Channel 0", "EXG Channel 1"])
    assert rec.units == ["uV", "uV"]
    assert rec.gaps == [(300 / fs, 10 / fs)]
    ok = ~rec.gap_mask()
    np.testing.assert_allclose(rec.data[0, ok], idx * 0.5, atol=1e-4)  # each sample at its true index
    assert rec.start_time == dt.datetime(2026, 1, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert any("Sample Index" in w and "10 samples lost" in w for w in rec.warnings)


# -- time columns ----------------------------------------------------------------------------------
@pytest.mark.parametrize("unit, factor", [("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)])
def test_epoch_time_columns_in_every_unit(tmp_path, unit, factor):
    ns = 1767261600_250_000_000 + np.arange(500, dtype=np.int64) * 8_000_000  # exact integers
    stamps = ns // int(1e9 / factor) if unit != "s" else ns / 1e9
    pd.DataFrame({"timestamp": stamps, "ECG": np.arange(500.0)}).to_csv(tmp_path / "e.csv", index=False,
                                                                       float_format="%.6f")
    rec = check_recording(read_recording(tmp_path / "e.csv"), n_times=500, ch_names=["ECG"])
    assert rec.sfreq == 125.0 and rec.duration_s == 4.0
    assert rec.start_time == dt.datetime(2026, 1, 1, 10, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize("name, scale, rate", [("time_ms", 1e3, 200.0), ("Time [us]", 1e6, 200.0),
                                               ("t (s)", 1, 200.0), ("elapsed_ms", 1e3, 200.0)])
def test_relative_time_units_from_the_name(tmp_path, name, scale, rate):
    pd.DataFrame({name: np.arange(400) / rate * scale, "PPG": np.ones(400)}).to_csv(tmp_path / "r.csv",
                                                                                   index=False)
    rec = read_recording(tmp_path / "r.csv")
    assert rec.sfreq == rate and rec.start_time is None and rec.ch_names == ["PPG"]


def test_whole_number_steps_without_unit_are_ambiguous(tmp_path):
    pd.DataFrame({"time": np.arange(0, 4000, 4), "ECG": np.ones(1000)}).to_csv(tmp_path / "amb.csv", index=False)
    _expect(tmp_path / "amb.csv", "steps by 4", "0.25 Hz if seconds", "250 Hz if milliseconds", "time_ms")


def test_iso_datetimes_with_and_without_zone(tmp_path):
    start = pd.Timestamp("2026-03-01 08:30:00.125")
    times = start + pd.to_timedelta(np.arange(300) * 20, unit="ms")
    pd.DataFrame({"datetime": times.strftime("%Y-%m-%dT%H:%M:%S.%f"), "x": np.ones(300)}).to_csv(
        tmp_path / "naive.csv", index=False)
    rec = read_recording(tmp_path / "naive.csv")
    assert rec.sfreq == 50.0 and rec.start_time == dt.datetime(2026, 3, 1, 8, 30, 0, 125000)  # naive clock
    pd.DataFrame({"datetime": times.strftime("%Y-%m-%dT%H:%M:%S.%f+01:00"), "x": np.ones(300)}).to_csv(
        tmp_path / "zoned.csv", index=False)
    rec = read_recording(tmp_path / "zoned.csv")
    assert rec.start_time == dt.datetime(2026, 3, 1, 7, 30, 0, 125000, tzinfo=UTC)  # converted to UTC


def test_times_of_day_give_rate_but_no_start(tmp_path):
    times = pd.Timestamp("2026-01-01 23:59:59") + pd.to_timedelta(np.arange(400) * 4, unit="ms")
    pd.DataFrame({"Time": times.strftime("%H:%M:%S.%f").str[:-3], "EEG": np.ones(400)}).to_csv(
        tmp_path / "tod.csv", index=False)
    rec = read_recording(tmp_path / "tod.csv")  # crosses midnight
    assert rec.sfreq == 250.0 and rec.n_times == 400 and rec.start_time is None and not rec.gaps
    assert any("times of day" in w for w in rec.warnings)


def test_millisecond_stamps_of_a_256_hz_signal_sit_on_its_grid(tmp_path):
    t_ms = np.round(np.arange(2560) / 256 * 1000)  # 3.906 ms steps written as 4, 4, 4, 3 ...
    pd.DataFrame({"time_ms": t_ms, "EEG": np.arange(2560.0)}).to_csv(tmp_path / "q.csv", index=False)
    rec = read_recording(tmp_path / "q.csv")
    assert rec.sfreq == 256.0 and rec.n_times == 2560 and not rec.gaps
    np.testing.assert_array_equal(rec.data[0], np.arange(2560.0))


def test_missing_rows_become_gaps_not_a_shift(tmp_path):
    t = np.arange(1000) / 100.0
    keep = np.ones(1000, bool)
    keep[400:450] = False
    pd.DataFrame({"time_s": t[keep], "a": t[keep]}).to_csv(tmp_path / "gap.csv", index=False)
    rec = read_recording(tmp_path / "gap.csv")
    assert rec.sfreq == 100.0 and rec.n_times == 1000 and rec.gaps == [(4.0, 0.5)]
    ok = ~rec.gap_mask()
    np.testing.assert_allclose(rec.data[0, ok], rec.times()[ok], atol=1e-6)
    assert any("1 gap(s)" in w for w in rec.warnings)


def test_irregular_stamps_are_refused_unless_a_rate_is_given(tmp_path):
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.004, 0.012, 500))  # event-like, no grid
    pd.DataFrame({"time": t, "a": np.ones(500)}).to_csv(tmp_path / "irr.csv", index=False)
    _expect(tmp_path / "irr.csv", "irregular", "time", "sfreq=")
    rec = read_recording(tmp_path / "irr.csv", sfreq=125.0)
    assert rec.sfreq == 125.0 and rec.n_times == 500 and any("irregular" in w for w in rec.warnings)


def test_implausible_derived_rate_is_refused(tmp_path):
    pd.DataFrame({"time_s": np.arange(10) * 1e-7, "a": np.ones(10)}).to_csv(tmp_path / "fast.csv", index=False)
    _expect(tmp_path / "fast.csv", "plausible", "time_s")
    pd.DataFrame({"time_s": np.arange(10) * 3600.0 * 24, "a": np.ones(10)}).to_csv(tmp_path / "slow.csv",
                                                                                   index=False)
    _expect(tmp_path / "slow.csv", "plausible")


def test_time_column_that_goes_back(tmp_path):
    pd.DataFrame({"t": [0.0, 0.01, 0.02, 0.015, 0.03], "a": np.ones(5)}).to_csv(tmp_path / "back.csv", index=False)
    _expect(tmp_path / "back.csv", "does not increase", "row 4")


def test_header_of_a_table_lists_its_channels(tmp_path):
    pd.DataFrame({"time": np.arange(100) / 50, "ECG (mV)": np.ones(100), "PLETH": np.ones(100)}).to_csv(
        tmp_path / "h.csv", index=False)
    h = read_header(tmp_path / "h.csv")
    assert h.format == "CSV" and [(c.name, c.sfreq, c.unit, c.type) for c in h.channels] == [
        ("ECG", 50.0, "mV", "ECG"), ("PLETH", 50.0, "", "PPG")]


def test_single_decimal_comma_column_and_a_written_row_index(tmp_path):
    (tmp_path / "one.csv").write_text("PPG\n1,5\n2,25\n3,0\n")
    rec = read_recording(tmp_path / "one.csv", sfreq=10.0)
    np.testing.assert_allclose(rec.data[0], [1.5, 2.25, 3.0])
    pd.DataFrame({"time": np.arange(50) / 10, "ECG": np.ones(50)}).to_csv(tmp_path / "idx.csv")  # index=True
    assert read_recording(tmp_path / "idx.csv").ch_names == ["ECG"]
