"""The reported cases (tests/fixtures/cases, synthetic copies of ../shared/cases): each gives its right outcome
through the engine and the command line."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from bioxbridge_core.cli import main as cli_main
from bioxbridge_core.data.channels import eeg_position, match_channels, parse_derivation
from bioxbridge_core.data.readers import read_header, read_recording
from bioxbridge_core.errors import BioXError, RecordingError, WindowingError
from bioxbridge_core.spec import SignalSpec

try:
    from ._reader_checks import check_recording
except ImportError:
    from _reader_checks import check_recording

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")
UTC = dt.timezone.utc


@pytest.fixture(scope="module")
def cases() -> Path:
    return Path(__file__).resolve().parents[1] / "fixtures" / "cases"


def cli(capsys, *args) -> tuple[int, str, str]:
    code = cli_main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def inspect_json(capsys, *args) -> dict:
    code, out, err = cli(capsys, "inspect", *args)
    assert code == 0, err
    return json.loads(out)


def one_line_error(capsys, *args) -> str:
    code, out, err = cli(capsys, *args)
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
    assert code == 2 and out == "" and len(lines) == 1, err
    return lines[0]


# -- C01: EDF+D --------------------------------------------------------------------------------------
def test_c01_edf_plus_d_gap(cases, capsys):
    path = cases / "C01" / "edfplus_d_gap.edf"
    rec = check_recording(read_recording(path), sfreq=128.0, n_times=80 * 128, ch_names=["ECG II", "PPG", "CLOCK"])
    assert rec.gaps == [(30.0, 20.0)]  # records 31-60 start 20 s after record 30 ends
    assert rec.start_time == dt.datetime(2026, 2, 1, 10, 0, 0)
    gap = rec.gap_mask()
    assert gap.sum() == 20 * 128 and np.isnan(rec.data[:, gap]).all() and np.isfinite(rec.data[:, ~gap]).all()
    clock = rec.data[2]  # the file's CLOCK channel holds each sample's wall-clock second
    np.testing.assert_allclose(clock[~gap], rec.times()[~gap], atol=100 / 65535 + 1e-4)
    (ann,) = rec.annotations
    assert (ann.onset_s, ann.duration_s, ann.description) == (55.0, 20.0, "stress")
    assert clock[int(ann.onset_s * rec.sfreq)] == pytest.approx(55.0, abs=0.01)  # on the right sample
    info = inspect_json(capsys, path)
    assert info["format"] == "EDF+D" and info["gaps"] == [{"onset_s": 30.0, "duration_s": 20.0}]
    assert info["duration_s"] == 80.0


def test_c01_no_window_spans_the_gap(cases, tmp_path):
    from bioxbridge_core.data.manifest import read_manifest
    from bioxbridge_core.data.pairing import make_paired_windows

    shutil.copy(cases / "C01" / "edfplus_d_gap.edf", tmp_path)
    (tmp_path / "m.csv").write_text("path,subject,old_channels,new_channels,split\n"
                                    "edfplus_d_gap.edf,S1,ECG II,PPG,pair\n")
    pw = make_paired_windows(read_manifest(tmp_path / "m.csv"), old_spec=SignalSpec("ECG", 64.0, 10.0),
                             new_spec=SignalSpec("PPG", 32.0, 10.0), step_s=5.0, cache=False)
    starts = pw.meta["start_s"].to_numpy()
    assert len(starts) and not ((starts + 10.0 > 30.0) & (starts < 50.0)).any()
    assert starts.max() >= 50.0  # windows after the gap are kept, at their true times


# -- C03: Empatica E4 ---------------------------------------------------------------------------------
def test_c03_empatica_bvp(cases, capsys):
    path = cases / "C03" / "BVP.csv"
    rec = check_recording(read_recording(path), sfreq=64.0, ch_names=["BVP"], n_times=7680)
    assert rec.start_time == dt.datetime(2026, 1, 1, 10, 0, tzinfo=UTC) and rec.ch_types == ["PPG"]
    np.testing.assert_allclose(rec.data[0, :3], [-0.79, 0.24, -1.90], atol=1e-6)
    info = inspect_json(capsys, path)
    assert info["sfreq"] == 64.0 and info["start_time"] == "2026-01-01T10:00:00+00:00"


# -- C04: epoch milliseconds --------------------------------------------------------------------------
def test_c04_epoch_milliseconds(cases, capsys):
    path = cases / "C04" / "polar_h10_ecg.csv"
    rec = check_recording(read_recording(path), sfreq=125.0, n_times=7500, ch_names=["ECG"])
    assert rec.duration_s == 60.0 and rec.units == ["uV"] and rec.gaps == []
    assert rec.start_time == dt.datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert inspect_json(capsys, path)["sfreq"] == 125.0


# -- C06: channels at different rates, per side ---------------------------------------------------------
def test_c06_psg_each_side_at_its_own_rate(cases, capsys):
    psg = cases / "C06" / "psg.edf"
    eeg = check_recording(read_recording(psg, channels="EEG"), sfreq=256.0, n_times=60 * 256)
    ecg = check_recording(read_recording(psg, channels=["ECG"]), sfreq=512.0, n_times=60 * 512)
    assert eeg.n_chans == 6 and ecg.units == ["mV"] and eeg.start_time == ecg.start_time
    with pytest.raises(RecordingError, match=r"\(512 Hz: ECG; 256 Hz: EEG Fp1, .*EEG O2\).*pick channels"):
        read_recording(psg)
    with pytest.raises(RecordingError, match=r"'EEG Fp1' \(256 Hz\), 'ECG' \(512 Hz\)"):
        read_recording(psg, channels=["EEG Fp1", "ECG"])
    info = inspect_json(capsys, psg)  # header view: every channel with its own rate
    assert info["sfreq"] is None and info["rates"] == {"512": ["ECG"], "256": eeg.ch_names}
    assert {c["name"]: c["sfreq"] for c in info["channels"]}["ECG"] == 512.0
    assert inspect_json(capsys, psg, "--channels", "ECG")["sfreq"] == 512.0


def test_c06_one_file_manifest_row_windows(cases, tmp_path, capsys):
    for f in ("psg.edf", "manifest.csv"):
        shutil.copy(cases / "C06" / f, tmp_path)
    code, out, err = cli(capsys, "windows", "--manifest", tmp_path / "manifest.csv", "--old-sfreq", 128,
                         "--old-modality", "EEG", "--new-sfreq", 128, "--new-modality", "ECG",
                         "--window-seconds", 10, "--no-cache", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n_windows"] == 6 and summary["old"]["shape"] == [6, 6, 1280]
    assert summary["new"]["shape"] == [6, 1, 1280]


def _toy_bundle(new_ch_names):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _bridge_toys import ToyHead, channels_encoder, tokens_encoder

    from bioxbridge_core.bridge import Bridge, BridgeConfig, BridgedModel

    new, old = channels_encoder(), tokens_encoder()
    br = Bridge.from_positions(new.position("layer2"), old.position("blocks.1"), BridgeConfig(rank=2,
                                                                                                n_prototypes=4))
    info = {"window_s": 2.0, "step_s": 2.0, "new_ch_names": list(new_ch_names)}
    return BridgedModel(new, old, br, ToyHead(16, ["calm", "stress"]), new_position="layer2",
                        old_position="blocks.1", info=info)


@pytest.mark.parametrize("args", [["--channels", "Pleth"], []])
def test_c06_predict_reads_only_its_channels(cases, capsys, monkeypatch, args):
    import bioxbridge_core.runs.bundle as bundle

    monkeypatch.setattr(bundle, "load_bundle", lambda *a, **k: _toy_bundle(["Pleth"]))
    code, out, err = cli(capsys, "predict", "--run", "unused", cases / "C06" / "pleth_ecg.edf", *args)
    assert code == 0, err
    result = json.loads(out)
    assert result["windows"] == 30 and result["file"] == "pleth_ecg.edf"  # 60 s of Pleth in 2 s windows


def _toy_run(monkeypatch, new_ch_names):
    import bioxbridge_core.runs.bundle as bundle

    model = _toy_bundle(new_ch_names)
    model.info["new_encoder"] = "builtin:ppg"  # the toy's new encoder takes PPG
    monkeypatch.setattr(bundle, "load_bundle", lambda *a, **k: model)


@pytest.mark.parametrize("channel, looks", [("II", "ECG"), ("ECG II", "ECG"), ("CLOCK", None)])
def test_predict_refuses_a_channel_of_another_signal(cases, capsys, monkeypatch, channel, looks):
    """A PPG bridge fed an ECG lead is refused naming file, channel, what it looks like and what it takes;
    a name that says nothing ('CLOCK') is used."""
    _toy_run(monkeypatch, ["PPG"])
    path = cases / ("C11/bedside01.hea" if channel == "II" else "C01/edfplus_d_gap.edf")
    if looks is None:
        assert cli(capsys, "predict", "--run", "unused", path, "--channels", channel)[0] == 0
        return
    line = one_line_error(capsys, "predict", "--run", "unused", path, "--channels", channel)
    assert line == f"error: {path.name}: channel '{channel}' looks like {looks}; builtin:ppg takes PPG."


def test_predict_names_the_bundle_channel_the_file_lacks(cases, capsys, monkeypatch):
    _toy_run(monkeypatch, ["PLETH"])
    line = one_line_error(capsys, "predict", "--run", "unused", cases / "C01" / "edfplus_d_gap.edf")
    assert line.startswith("error: edfplus_d_gap.edf: the bundle's channel(s) ['PLETH'] are not in the file; "
                           "its channels are ['ECG II', 'PPG', 'CLOCK'].")
    assert "encoder takes" not in line
    line = one_line_error(capsys, "predict", "--run", "unused", cases / "C06" / "psg.edf")  # mixed rates
    assert line.startswith("error: psg.edf: the bundle's channel(s) ['PLETH'] are not in the file; its channels "
                           "are ['EEG Fp1',")


def test_c01_predict_reports_the_windows_dropped_for_the_gap(cases, capsys, monkeypatch):
    """C01: 80 s of PPG with a 20 s gap at 30-50 s; 2 s windows: 40 in all, the 10 inside the gap dropped."""
    _toy_run(monkeypatch, ["PPG"])
    code, out, err = cli(capsys, "predict", "--run", "unused", cases / "C01" / "edfplus_d_gap.edf",
                         "--channels", "PPG")
    assert code == 0, err
    result = json.loads(out)
    assert result["dropped"] == {"gap": 10} and result["windows"] == 30
    assert result["drop_reasons"]["gap"].startswith("touches a recording gap")
    assert "edfplus_d_gap.edf: dropped 10 window(s): gap 10 (touches a recording gap" in err


# -- C07: degenerate header ranges ---------------------------------------------------------------------
def test_c07_degenerate_ranges_are_refused(cases, capsys):
    path = cases / "C07" / "degenerate_ranges.edf"
    with pytest.raises(RecordingError) as err:
        read_recording(path)
    msg = str(err.value)
    assert "'ECG'" in msg and "physical minimum equals physical maximum" in msg
    assert "'PLETH'" in msg and "digital minimum (0) is not below digital maximum (0)" in msg
    with pytest.raises(RecordingError, match="'PLETH': digital minimum"):
        read_recording(path, channels=["PLETH"])
    line = one_line_error(capsys, "inspect", path)
    assert "degenerate_ranges.edf" in line and "physical minimum" in line
    info = inspect_json(capsys, path, "--header")  # flagged, not hidden
    assert [(c["name"], c["usable"]) for c in info["channels"]] == [("ECG", False), ("PLETH", False)]


# -- C09: several samples per frame --------------------------------------------------------------------
def test_c09_each_signal_at_its_own_rate(cases):
    hea = cases / "C09" / "faros.hea"
    ecg = check_recording(read_recording(hea, channels=["ECG"]), sfreq=250.0, n_times=60 * 250)
    pleth = check_recording(read_recording(hea, channels=["PLETH"]), sfreq=50.0, n_times=60 * 50)
    # the samples as stored: each 1 s frame is 250 ECG then 50 PLETH 16-bit values
    frames = np.fromfile(cases / "C09" / "faros.dat", dtype="<i2").reshape(60, 300).astype(np.float64)
    np.testing.assert_allclose(ecg.data[0], frames[:, :250].ravel() / 1000.0, atol=1e-6)  # gain 1000/mV
    np.testing.assert_allclose(pleth.data[0], frames[:, 250:].ravel() / 10.0, atol=1e-4)  # gain 10/NU
    with pytest.raises(RecordingError, match=r"250 Hz: ECG; 50 Hz: PLETH"):
        read_recording(hea)
    assert [(c.name, c.sfreq) for c in read_header(hea).channels] == [("ECG", 250.0), ("PLETH", 50.0)]


# -- C11: a WFDB record uploaded as two files ------------------------------------------------------------
def test_c11_wfdb_upload_of_header_and_data(cases):
    from bioxbridge_core.data.uploads import read_uploads

    files = [(p.name, p.read_bytes()) for p in sorted((cases / "C11").iterdir())]
    result = read_uploads(files)
    assert result.ok and list(result.recordings) == ["bedside01.hea"]
    rec = result.recordings["bedside01.hea"]
    check_recording(rec, sfreq=125.0, n_times=7500, ch_names=["II", "PLETH"], source_name="bedside01.hea")
    only_header = read_uploads([f for f in files if f[0].endswith(".hea")])
    (name, msg), = only_header.errors
    assert name == "bedside01.hea" and "bedside01.dat" in msg and "/" not in msg.replace("bedside01", "")
    only_data = read_uploads([f for f in files if f[0].endswith(".dat")])
    assert "bedside01.hea" in only_data.errors[0][1] and not only_data.records


# -- C12: bipolar montages ----------------------------------------------------------------------------
def test_c12_bipolar_derivations(cases, capsys):
    sleep = read_recording(cases / "C12" / "sleep_edf_like.edf")
    chb = read_recording(cases / "C12" / "chbmit_like.edf")
    assert [parse_derivation(c) for c in sleep.ch_names[:2]] == [("FPZ", "CZ"), ("PZ", "OZ")]
    assert [parse_derivation(c) for c in chb.ch_names[:4]] == [("FP1", "F7"), ("F7", "T7"), ("T7", "P7"),
                                                               ("P7", "O1")]
    assert eeg_position("EEG Fpz-Cz") is None and eeg_position("FP1-F7") is None  # never the first electrode
    single = SignalSpec("EEG", 100.0, 10.0, n_chans=2, ch_names=["FPZ", "PZ"])
    with pytest.raises(WindowingError, match="bipolar derivation"):
        match_channels(sleep.ch_names[:2], single, where="sleep_edf_like.edf")
    banana = SignalSpec("EEG", 100.0, 10.0, n_chans=4, ch_names=["FP1-F7", "F7-T7", "T7-P7", "P7-O1"])
    assert match_channels(["EEG P7-O1", "EEG T3-P7", "EEG Fp1-F7", "EEG F7-T3"], banana, where="x") == [
        "EEG Fp1-F7", "EEG F7-T3", "EEG T3-P7", "EEG P7-O1"]  # case, prefix, T3=T7 aliases
    assert match_channels(chb.ch_names[:4], banana, where="chbmit_like.edf") == chb.ch_names[:4]
    header = read_header(cases / "C12" / "chbmit_like.edf")
    assert all("bipolar derivation" in c.flags for c in header.channels[:4])
    line = one_line_error(capsys, "windows", "--manifest", cases / "C12" / "manifest_sleep_edf_like.csv",
                          "--old", "builtin:eeg", "--new", "builtin:ecg")
    assert "bipolar derivation" in line and "EEG Fpz-Cz" in line
    assert "manifest_sleep_edf_like.csv, row 1 (sleep_edf_like.edf), old side:" in line  # file and row named
    assert str(cases) not in line  # a file name, never the folder it lies in


def test_c12_swapped_sides_name_the_file_and_row(cases, tmp_path, capsys):
    """Old and new channels swapped: the EEG encoder refuses 'ECG' naming manifest, row, file and side."""
    shutil.copy(cases / "C12" / "chbmit_like.edf", tmp_path)
    (tmp_path / "m.csv").write_text("path,subject,old_channels,new_channels,split\n"
                                    "chbmit_like.edf,S1,ECG,FP1-F7,pair\n")
    line = one_line_error(capsys, "windows", "--manifest", tmp_path / "m.csv", "--old", "builtin:eeg",
                          "--new", "builtin:ecg", "--no-cache")
    assert "m.csv, row 1 (chbmit_like.edf), old side:" in line and "['ECG']" in line
    assert str(tmp_path) not in line
    # the PPG side offered an EEG derivation: refused as another signal, naming the row and the file by
    # its name even when the manifest gives a full path (as recipe manifests do)
    (tmp_path / "abs.csv").write_text("path,subject,old_channels,new_channels,split\n"
                                      f"{tmp_path / 'chbmit_like.edf'},S1,ECG,FP1-F7,pair\n")
    line = one_line_error(capsys, "windows", "--manifest", tmp_path / "abs.csv", "--old-sfreq", 128,
                          "--old-modality", "ECG", "--new-sfreq", 128, "--new-modality", "PPG", "--no-cache")
    assert line == ("error: abs.csv, row 1 (chbmit_like.edf), new side: channel 'FP1-F7' looks like EEG; "
                    "the PPG encoder takes PPG.")


# -- C16: OpenBCI GUI export ---------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_c16_openbci_export(cases, tmp_path, capsys, suffix):
    path = tmp_path / f"OpenBCI-RAW-2026-01-01{suffix}"
    shutil.copy(cases / "C16" / "OpenBCI-RAW-2026-01-01.txt", path)
    rec = check_recording(read_recording(path), sfreq=250.0, n_times=5000,
                          ch_names=[f"EXG Channel {i}" for i in range(4)])
    assert rec.units == ["uV"] * 4 and rec.gaps == []
    np.testing.assert_allclose(rec.data[:, 0], [0, 10, 20, 30])
    np.testing.assert_allclose(rec.data[:, 1], [5.99, 16.73, 27.46, 38.19], atol=1e-5)
    assert inspect_json(capsys, path)["sfreq"] == 250.0


def test_every_case_file_reads_or_refuses_in_one_line(cases):
    """Whatever the channels: a Recording, or one RecordingError line naming the file."""
    for f in sorted(cases.rglob("*")):
        if f.suffix.lower() not in (".edf", ".hea", ".csv", ".txt") or f.name.startswith("manifest"):
            continue
        try:
            read_recording(f)
        except BioXError as exc:
            assert f.name in str(exc) and "\n" not in str(exc)
