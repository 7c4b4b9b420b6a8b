"""Channel names (10-20, bipolar derivations, matching an encoder), units, and Recording gaps / start times."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest

from bioxbridge_core.data.channels import (check_single_electrodes, eeg_position, is_bipolar, match_channels,
                                           parse_derivation)
from bioxbridge_core.data.recording import Recording, start_offset_s
from bioxbridge_core.data.units import normalise_unit, unit_scale
from bioxbridge_core.errors import EncoderError, RecordingError, WindowingError
from bioxbridge_core.spec import SignalSpec


@pytest.mark.parametrize("name, derivation, position", [
    ("EEG Fpz-Cz", ("FPZ", "CZ"), None),
    ("FP1-F7", ("FP1", "F7"), None),
    ("EEG T3-T5", ("T3", "T5"), None),
    ("T8-P8-0", ("T8", "P8"), None),  # CHB-MIT's repeated derivation
    ("EEG A2-A1", ("A2", "A1"), None),
    ("EEG Fp1", None, "FP1"),
    ("EEG Fp1-REF", None, "FP1"),
    ("EEG Fp1-LE", None, "FP1"),
    ("Fp1-AVG", None, "FP1"),
    ("EEG F3-A2", None, "F3"),  # referential to an ear (documented decision)
    ("C4-M1", None, "C4"),
    ("Cz", None, "CZ"),
    ("ECG II", None, None),
    ("EOG left", None, None),
])
def test_derivations_and_positions(name, derivation, position):
    assert parse_derivation(name) == derivation
    assert is_bipolar(name) == (derivation is not None)
    assert eeg_position(name) == position


def test_single_electrode_encoder_refuses_derivations():
    spec = SignalSpec("EEG", 100.0, 10.0, n_chans=2, ch_names=["FP1", "F7"])
    with pytest.raises(WindowingError, match=r"rec\.edf.*'FP1-F7'.*bipolar derivation"):
        match_channels(["FP1-F7", "F7-T7"], spec, where="rec.edf")
    assert match_channels(["EEG Fp1-REF", "EEG F7-REF"], spec, where="x") == ["EEG Fp1-REF", "EEG F7-REF"]
    with pytest.raises(EncoderError, match="builtin:eeg takes single electrodes"):
        check_single_electrodes(["EEG Fp1", "EEG Fpz-Cz"], "builtin:eeg")
    check_single_electrodes(["EEG Fp1", "EEG F3-A2"], "builtin:eeg")  # ear-referenced is fine


def test_bipolar_encoder_matches_names_and_refuses_reversed():
    spec = SignalSpec("EEG", 200.0, 10.0, n_chans=2, ch_names=["FP1-F7", "T7-P7"])
    assert match_channels(["eeg t3-t5", "EEG FP1-F7", "ECG"], spec, where="x") == ["EEG FP1-F7", "eeg t3-t5"]
    with pytest.raises(WindowingError, match="'F7-FP1' is the reverse derivation"):
        match_channels(["F7-FP1", "T7-P7"], spec, where="x")
    with pytest.raises(WindowingError, match="not derivations"):
        match_channels(["EEG Fp1", "EEG F7"], spec, where="x")


def test_pairing_still_exports_match_channels():
    from bioxbridge_core.data import pairing

    assert pairing.match_channels is match_channels


@pytest.mark.parametrize("raw, canon", [("uV", "uV"), ("\u00b5V", "uV"), ("\u03bcV", "uV"), ("microvolts", "uV"),
                                        ("mV", "mV"), ("V", "V"), ("mm Hg", "mmHg"), ("\u00b5S", "uS"),
                                        ("nu", "NU"), ("%", "%"), ("\u00b0C", "degC"), ("n/a", ""), ("ms", "ms"),
                                        ("mS", "mS"), ("beats/min", "bpm"), ("weird", "weird")])
def test_normalise_unit(raw, canon):
    assert normalise_unit(raw) == canon


def test_unit_scale():
    assert unit_scale("mV", "uV") == 1000.0 and unit_scale("\u00b5V", "mV") == 0.001
    assert unit_scale("V", "uV") == 1e6 and unit_scale("uV", "uV") == 1.0 and unit_scale("NU", "nu") == 1.0
    assert unit_scale("mmHg", "kPa") == pytest.approx(0.133322387415)
    assert unit_scale("0.1mV", "mV") == 0.1 and unit_scale("uV", "100 uV") == 0.01  # scaled units
    for a, b in (("NU", "uV"), ("uS", "mV"), ("", "uV"), ("foo", "uV")):
        with pytest.raises(RecordingError, match="onvert"):
            unit_scale(a, b)
    assert Recording(np.zeros((1, 10)), 10.0, ["x"], units=["\u00b5V"]).units == ["uV"]


def test_recording_gaps_survive_crop_pick_copy():
    data = np.arange(2000, dtype=float).reshape(2, 1000)
    data[:, 300:500] = np.nan
    rec = Recording(data, 100.0, ["a", "b"], gaps=[(3.0, 2.0)], start_time=dt.datetime(2026, 1, 1, 10),
                    warnings=["note"])
    assert rec.gap_mask().sum() == 200 and "1 gap(s)" in repr(rec)
    assert rec.pick(["b"]).gaps == [(3.0, 2.0)] and rec.copy().gaps == [(3.0, 2.0)]
    assert rec.pick("b").warnings == ["note"]
    c = rec.crop(4.0, 8.0)
    assert c.gaps == [(0.0, 1.0)] and c.start_time == dt.datetime(2026, 1, 1, 10, 0, 4)
    assert rec.crop(6.0).gaps == [] and rec.crop(0.0, 3.0).gaps == []
    assert rec.summary()["gaps"] == [{"onset_s": 3.0, "duration_s": 2.0}]
    with pytest.raises(RecordingError, match="overlap"):
        Recording(data, 100.0, ["a", "b"], gaps=[(1.0, 2.0), (2.0, 1.0)])


def test_start_time_rule(caplog):
    naive = dt.datetime(2026, 1, 1, 10, 0, 0, 250000)
    aware = dt.datetime(2026, 1, 1, 11, 0, 0, 750000, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    rec = Recording(np.zeros((1, 5)), 1.0, ["x"], start_time=aware)
    assert rec.start_time.tzinfo == dt.timezone.utc and rec.start_time.hour == 10  # aware -> UTC
    assert start_offset_s(naive, naive + dt.timedelta(seconds=1.5)) == 1.5
    with caplog.at_level(logging.WARNING):
        assert start_offset_s(naive, rec.start_time) == pytest.approx(0.5)  # naive taken as UTC
    assert "taken to be UTC" in caplog.text
    assert start_offset_s(None, naive) is None


def test_npz_round_trip_keeps_gaps_and_start(tmp_path):
    from bioxbridge_core.data.readers import read_recording, write_recording

    data = np.ones((1, 500))
    data[0, 100:200] = np.nan
    start = dt.datetime(2026, 1, 1, 10, 0, 0, 125000, tzinfo=dt.timezone.utc)
    rec = Recording(data, 50.0, ["x"], gaps=[(2.0, 2.0)], start_time=start)
    back = read_recording(write_recording(rec, tmp_path / "g.npz"))
    assert back.gaps == [(2.0, 2.0)] and back.start_time == start


# -- a channel of another signal ----------------------------------------------------------------------
@pytest.mark.parametrize("name, looks", [
    ("PLETH", "PPG"), ("BVP", "PPG"), ("ECG II", "ECG"), ("MLII", "ECG"), ("EEG Fpz-Cz", "EEG"), ("Fp1", "EEG"),
    ("GSR", "EDA"), ("EMG chin", "EMG"), ("RESP", "RESP"), ("Thorax", "RESP"), ("ABP", "ABP"), ("ART", "ABP"),
    ("EOG L", "EOG"), ("TEMP", "TEMP"), ("ACC_X", "ACC"),
    ("ch0", None), ("A1", None), ("EXG Channel 0", None), ("CLOCK", None), ("Artifact", None), ("SpO2", None),
])
def test_apparent_modality(name, looks):
    from bioxbridge_core.data.channels import apparent_modality

    assert apparent_modality(name) == looks


@pytest.mark.parametrize("modality, names", [
    ("ECG", ["II"]), ("ECG", ["V"]), ("ECG", ["MLII"]), ("ECG", ["ch0"]), ("ECG", ["A1"]), ("ECG", ["EXG Channel 0"]),
    ("PPG", ["PLETH"]), ("EDA", ["EDA"]), ("other", ["RESP"]),
])
def test_match_channels_lets_names_that_say_nothing_pass(modality, names):
    from bioxbridge_core.data.channels import match_channels

    assert match_channels(names, SignalSpec(modality, 100.0, 10.0, n_chans=1), where="f.edf") == names


@pytest.mark.parametrize("modality, name, looks", [
    ("ECG", "PLETH", "PPG"), ("ECG", "EEG Fp1", "EEG"), ("PPG", "RESP", "RESP"), ("PPG", "ABP", "ABP"),
    ("EEG", "ECG", "ECG"), ("EDA", "TEMP", "TEMP"),
])
def test_match_channels_refuses_a_channel_of_another_signal(modality, name, looks):
    from bioxbridge_core.data.channels import match_channels

    spec = SignalSpec(modality, 100.0, 10.0, n_chans=1)
    with pytest.raises(WindowingError) as err:
        match_channels([name], spec, where="v131l.hea", encoder=f"builtin:{modality.lower()}")
    assert str(err.value) == (f"v131l.hea: channel '{name}' looks like {looks}; builtin:{modality.lower()} "
                              f"takes {modality}.")
