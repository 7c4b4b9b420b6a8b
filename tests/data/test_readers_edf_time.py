"""EDF+/BDF+ time stamps and header sanity, on files built byte by byte (_edf_builder)."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest

from bioxbridge_core.data.readers import read_header, read_recording
from bioxbridge_core.data.recording import start_offset_s
from bioxbridge_core.errors import RecordingError

try:
    from ._edf_builder import Sig, physical_step, write_edf
    from ._reader_checks import check_recording
except ImportError:
    from _edf_builder import Sig, physical_step, write_edf
    from _reader_checks import check_recording


def _clock(fs: int, onsets: list[float], record_s: float = 1.0) -> np.ndarray:
    """A 'clock' channel: each sample's true time in seconds from the first record."""
    return np.concatenate([o + np.arange(int(fs * record_s)) / fs for o in onsets])


def test_edf_plus_d_keeps_every_sample_time_and_annotations(tmp_path):
    fs = 100
    onsets = [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]  # 5 s missing after record 5
    clock = Sig("CLOCK", _clock(fs, onsets), fs, dim="s", pmin=0, pmax=100)
    ecg = Sig("ECG", np.sin(_clock(fs, onsets)), fs, dim="mV", pmin=-2, pmax=2)
    path = write_edf(tmp_path / "d.edf", [ecg, clock], n_records=10, plus="D", record_onsets=onsets,
                     annotations=[(12.0, 1.5, "event"), (2.0, 0.0, "early")])
    rec = check_recording(read_recording(path), n_times=15 * fs, sfreq=100.0, ch_names=["ECG", "CLOCK"])
    assert rec.gaps == [(5.0, 5.0)]
    mask = rec.gap_mask()
    assert mask.sum() == 5 * fs and mask[5 * fs] and not mask[5 * fs - 1] and not mask[10 * fs]
    assert np.isnan(rec.data[:, mask]).all() and np.isfinite(rec.data[:, ~mask]).all()
    t = rec.times()
    np.testing.assert_allclose(rec.data[1, ~mask], t[~mask], atol=physical_step(clock))  # true time of each sample
    assert [(a.onset_s, a.duration_s, a.description) for a in rec.annotations] == [(2.0, 0.0, "early"),
                                                                                  (12.0, 1.5, "event")]
    i = int(round(rec.annotations[1].onset_s * rec.sfreq))
    assert rec.data[1, i] == pytest.approx(12.0, abs=physical_step(clock))  # lands on the wall-clock sample
    header = read_header(path)
    assert header.format == "EDF+D" and header.gaps == [(5.0, 5.0)] and header.duration_s == 15.0


def test_edf_plus_pair_offset_by_a_fraction_of_a_second(tmp_path):
    fs = 128
    x = np.zeros(fs * 4)
    a = write_edf(tmp_path / "a.edf", [Sig("ECG", x, fs, dim="mV")], n_records=4, plus="C",
                  record_onsets=[0.25, 1.25, 2.25, 3.25], annotations=[(2.25, 0.5, "beep")])
    b = write_edf(tmp_path / "b.edf", [Sig("PPG", x, fs, dim="NU")], n_records=4, plus="C",
                  start_time="10.00.01", record_onsets=[0.75, 1.75, 2.75, 3.75])
    ra, rb = read_recording(a), read_recording(b)
    assert ra.start_time == dt.datetime(2026, 2, 1, 10, 0, 0, 250000)
    assert rb.start_time == dt.datetime(2026, 2, 1, 10, 0, 1, 750000)
    assert ra.start_offset_s(rb) == pytest.approx(1.5) and start_offset_s(rb.start_time, ra.start_time) == -1.5
    assert ra.gaps == [] and ra.n_times == 4 * fs
    assert [(an.onset_s, an.duration_s) for an in ra.annotations] == [(2.0, 0.5)]  # from the first sample
    assert read_header(a).start_time == ra.start_time
    # cropping keeps the microseconds
    assert ra.crop(0.5).start_time == dt.datetime(2026, 2, 1, 10, 0, 0, 750000)


def test_bdf_plus_d_record_times(tmp_path):
    fs = 64
    onsets = [0.0, 1.0, 4.0]
    path = write_edf(tmp_path / "g.bdf", [Sig("Cz", _clock(fs, onsets), fs, pmin=0, pmax=10, dmin=-(2 ** 23),
                                              dmax=2 ** 23 - 1)], n_records=3, plus="D", record_onsets=onsets,
                     bdf=True, tal_spr=20)
    rec = check_recording(read_recording(path), n_times=5 * fs, sfreq=64.0)
    assert rec.gaps == [(2.0, 2.0)]
    ok = ~rec.gap_mask()
    np.testing.assert_allclose(rec.data[0, ok], rec.times()[ok], atol=1e-5)


def test_edf_plus_c_that_jumps_is_followed_with_a_warning(tmp_path, caplog):
    path = write_edf(tmp_path / "c.edf", [Sig("ECG", np.zeros(300), 100, dim="mV")], n_records=3, plus="C",
                     record_onsets=[0, 1, 7])
    with caplog.at_level(logging.WARNING):
        rec = read_recording(path)
    assert rec.gaps == [(2.0, 5.0)] and rec.n_times == 800
    assert any("EDF+C" in w for w in rec.warnings)
    assert any("c.edf" in r.getMessage() and "EDF+C" in r.getMessage() for r in caplog.records)  # shown


def test_off_grid_record_onset_is_placed_and_reported(tmp_path):
    path = write_edf(tmp_path / "o.edf", [Sig("ECG", np.zeros(300), 100, dim="mV")], n_records=3, plus="D",
                     record_onsets=[0, 1, 5.003])
    rec = read_recording(path)
    assert rec.n_times == 600 and len(rec.gaps) == 1
    assert any("off the sample grid" in w and "ms" in w for w in rec.warnings)


@pytest.mark.parametrize("onsets, phrase", [([0, 0.5, 2], "before the previous one ends"),
                                            ([0, 3, 2], "corrupt")])
def test_overlapping_or_backward_records_are_refused(tmp_path, onsets, phrase):
    path = write_edf(tmp_path / "bad.edf", [Sig("ECG", np.zeros(300), 100)], n_records=3, plus="D",
                     record_onsets=onsets)
    with pytest.raises(RecordingError, match=phrase) as err:
        read_recording(path)
    assert "bad.edf" in str(err.value) and "record" in str(err.value)


def test_absurd_gap_is_refused_before_allocating(tmp_path):
    path = write_edf(tmp_path / "far.edf", [Sig("ECG", np.zeros(200), 100)], n_records=2, plus="D",
                     record_onsets=[0, 3e7])
    with pytest.raises(RecordingError, match=r"far\.edf.*GiB"):
        read_recording(path)
    assert read_header(path).gaps[0][1] == pytest.approx(3e7 - 1)  # the header still says what is there


def test_latin1_label_and_utf8_micro_in_dimension(tmp_path, caplog):
    x = 50 * np.sin(np.arange(500) / 7)
    path = write_edf(tmp_path / "enc.edf", [
        Sig("EEG F\xf6o".encode("latin-1"), x, 100, dim="\u00b5V".encode("utf-8"), pmin=-100, pmax=100),
        Sig("EEG Cz", x, 100, dim=b"\xb5V", pmin=-100, pmax=100),
    ], n_records=5)
    with caplog.at_level(logging.WARNING):
        rec = check_recording(read_recording(path), ch_names=["EEG F\xf6o", "EEG Cz"])
    assert rec.units == ["uV", "uV"]  # UTF-8 'µV' and Latin-1 'µV' both understood and normalised
    np.testing.assert_allclose(rec.data[0], x, atol=200 / 65535)  # microvolts, not volts
    text = " ".join(rec.warnings)
    assert "label" in text and "Latin-1" in text and "physical dimension" in text and "UTF-8" in text
    assert caplog.records  # warnings are shown, not muted
    flags = {c.name: c.flags for c in read_header(path).channels}
    assert any("Latin-1" in f for f in flags["EEG F\xf6o"])


def test_degenerate_and_impossible_header_fields(tmp_path):
    ok = Sig("PPG", np.ones(200), 100, dim="NU", pmin=0, pmax=10)
    cases = {
        "pminmax": (Sig("ECG", np.zeros(200), 100, pmin=0, pmax=0), "physical minimum equals physical maximum"),
        "dminmax": (Sig("ECG", np.zeros(200), 100, dmin=100, dmax=100), "digital minimum (100) is not below"),
        "drange": (Sig("ECG", np.zeros(200), 100, dmin=-40000, dmax=40000), "outside what 16-bit EDF"),
        "text": (Sig("ECG", np.zeros(200), 100, pmax="abc"), "physical maximum field 'abc' is not a number"),
    }
    for name, (bad, phrase) in cases.items():
        path = write_edf(tmp_path / f"{name}.edf", [bad, ok], n_records=2)
        with pytest.raises(RecordingError) as err:
            read_recording(path)
        msg = str(err.value)
        assert f"{name}.edf" in msg and "'ECG'" in msg and phrase in msg and "\n" not in msg, msg
        if name == "text":  # no sample of this file can be decoded: refused, naming the field
            with pytest.raises(RecordingError, match="'ECG': its physical maximum field 'abc' is not a number"):
                read_recording(path, channels=["PPG"])
            continue
        assert "PPG" in msg  # says which channels are still usable
        good = read_recording(path, channels=["PPG"])  # the other channel reads fine
        np.testing.assert_allclose(good.data, 1.0, atol=1e-3)
    for name, (bad, phrase) in cases.items():
        info = {c.name: c for c in read_header(tmp_path / f"{name}.edf").channels}
        assert not info["ECG"].usable and info["PPG"].usable and phrase in info["ECG"].problems[0]


def test_mixed_rates_pick_before_assembling(tmp_path):
    path = write_edf(tmp_path / "psg.edf", [Sig("EEG C3", np.zeros(512), 256), Sig("ECG", np.zeros(1024), 512),
                                            Sig("EEG C4", np.zeros(512), 256)], n_records=2)
    header = read_header(path)
    assert header.rates() == {512.0: ["ECG"], 256.0: ["EEG C3", "EEG C4"]} and header.mixed_rates
    with pytest.raises(RecordingError, match=r"different sampling rates \(512 Hz: ECG; 256 Hz: EEG C3, EEG C4\)"):
        read_recording(path)
    with pytest.raises(RecordingError, match=r"'EEG C3' \(256 Hz\), 'ECG' \(512 Hz\).*separately"):
        read_recording(path, channels=["EEG C3", "ECG"])
    assert read_recording(path, channels="EEG").sfreq == 256.0
    assert read_recording(path, channels=["ecg"]).n_times == 1024
