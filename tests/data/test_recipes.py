"""Dataset recipes on the committed fixtures (always) and the full development data (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bioxbridge_core.errors import ConfigError, ManifestError
from bioxbridge_core.spec import SignalSpec
from bioxbridge_core.data.manifest import read_manifest
from bioxbridge_core.data.pairing import make_paired_windows
from bioxbridge_core.data.recipes import cinc2015_manifest, edf_channel_names, eegmat_manifest

EEG_ANY = SignalSpec("EEG", 100.0, 10.0, n_chans=None)
ECG = SignalSpec("ECG", 100.0, 10.0)
PPG = SignalSpec("PPG", 50.0, 10.0)


def _no_leak(pw):
    subjects = {s: set(g["subject"]) for s, g in pw.meta.groupby("split")}
    names = sorted(subjects)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not subjects[a] & subjects[b], (a, b)
    recs = pw.meta.groupby("recording")["split"].nunique()
    assert (recs == 1).all()


def test_eegmat_fixture_manifest_and_windows(fixtures_dir, tmp_path):
    path = eegmat_manifest(fixtures_dir / "eegmat", out_dir=tmp_path)
    assert path.parent == tmp_path and path.name == "eegmat_old-eeg.csv"
    m = read_manifest(path, seed=0)
    t = m.table
    assert len(t) == 8 and t["subject"].nunique() == 4
    assert set(zip(t["old_file"].map(lambda p: Path(p).name[-6:]), t["label"])) == {("_1.edf", "rest"),
                                                                                     ("_2.edf", "task")}
    names = edf_channel_names(fixtures_dir / "eegmat" / "Subject00_1.edf")
    eeg = tuple(c for c in names if c.startswith("EEG"))
    assert t["old_channels"].iloc[0] == eeg and len(eeg) == 6
    assert t["new_channels"].iloc[0] == ("ECG ECG",)
    pw = make_paired_windows(m, old_spec=EEG_ANY, new_spec=ECG, cache=False)
    counts = pw.counts()
    assert set(counts.index) == {"train", "pair", "test"}
    assert (counts[["rest", "task"]] == 4 * counts.index.map(lambda s: m.table[m.table.split == s].subject.nunique())
            .to_numpy()[:, None]).all().all()  # 40 s -> 4 windows per file
    assert pw.x_old.shape[1:] == (6, 1000) and pw.x_new.shape[1:] == (1, 1000)
    _no_leak(pw)
    rev = read_manifest(eegmat_manifest(fixtures_dir / "eegmat", out_dir=tmp_path, old="ECG"))
    assert rev.table["old_channels"].iloc[0] == ("ECG ECG",) and rev.table["new_channels"].iloc[0] == eeg


def test_eegmat_excludes_reference_channel(tmp_path):
    from bioxbridge_core.data.readers import write_recording
    from bioxbridge_core.data.recording import Recording

    rng = np.random.default_rng(0)
    rec = Recording(data=rng.standard_normal((4, 2500)), sfreq=250.0,
                    ch_names=["EEG Fp1", "EEG Pz", "EEG A2-A1", "ECG ECG"], units=["uV", "uV", "uV", "mV"])
    write_recording(rec, tmp_path / "Subject09_1.edf")
    m = read_manifest(eegmat_manifest(tmp_path, out_dir=tmp_path / "out"))
    assert m.table["old_channels"].iloc[0] == ("EEG Fp1", "EEG Pz")
    with pytest.raises(ConfigError, match="old"):
        eegmat_manifest(tmp_path, old="PPG")
    with pytest.raises(ManifestError, match="no eegmat files"):
        eegmat_manifest(tmp_path / "out")


def test_cinc_fixture_manifest_labels_only_the_alarm_span(fixtures_dir, tmp_path):
    path = cinc2015_manifest(fixtures_dir / "cinc2015_vt", out_dir=tmp_path, label_start=44, label_end=60)
    m = read_manifest(path, seed=0)
    t = m.table.set_index("subject")
    assert len(t) == 6 and (t["new_channels"] == ("PLETH",)).all()
    assert (t["old_channels"].map(len) == 1).all()
    alarms = dict(line.split(",") for line in (fixtures_dir / "cinc2015_vt" / "alarms.csv").read_text().split()[1:])
    for name, result in alarms.items():
        assert t.loc[name, "label"] == ("true_alarm" if result == "1" else "false_alarm")
        assert (t.loc[name, "label_start"], t.loc[name, "label_end"]) == (44.0, 60.0)
    notes = json.loads(path.with_suffix(".notes.json").read_text())
    assert notes["left_out"] == [] and notes["n_records"] == 6
    pw = make_paired_windows(m, old_spec=SignalSpec("ECG", 100.0, 8.0), new_spec=SignalSpec("PPG", 50.0, 8.0), window_s=8.0,
                             step_s=4.0, cache=False)
    lab = pw.meta[pw.meta["label"].notna()]
    assert ((lab["start_s"] >= 44) & (lab["start_s"] + 8 <= 60)).all()
    assert pw.dropped == {}  # the fixtures were chosen without NaN or flat stretches
    assert len(lab) == 3 * 6  # windows at 44, 48 and 52 s of each record
    assert pw.meta["label"].isna().sum() > len(lab)  # most of each record is unlabelled pair data
    counts = pw.counts()
    for split in ("train", "test"):
        assert (counts.loc[split, ["false_alarm", "true_alarm"]] > 0).all()
    _no_leak(pw)


def test_cinc_records_without_pleth_are_left_out(fixtures_dir, tmp_path):
    from bioxbridge_core.data.readers import read_recording, write_recording

    data = tmp_path / "cinc"
    shutil.copytree(fixtures_dir / "cinc2015_vt", data)
    rec = read_recording(data / "v100s.hea").pick(["II", "V"])
    write_recording(rec, data / "v999s.hea")
    out = cinc2015_manifest(data, out_dir=tmp_path, old="PPG", label_start=44, label_end=60)
    m = read_manifest(out)
    assert "v999s" not in set(m.table["subject"]) and len(m) == 6
    assert (m.table["old_channels"] == ("PLETH",)).all()
    notes = json.loads(out.with_suffix(".notes.json").read_text())
    assert [d["record"] for d in notes["left_out"]] == ["v999s"]
    assert "PLETH" in notes["left_out"][0]["reason"]


def test_recipes_default_to_cache_folder(fixtures_dir):
    from bioxbridge_core.paths import cache_dir

    path = cinc2015_manifest(fixtures_dir / "cinc2015_vt", label_start=44, label_end=60)
    assert path.parent == cache_dir("recipes") and path.is_file()


@pytest.mark.slow
@pytest.mark.realdata
def test_eegmat_full_data(shared_data, tmp_path):
    path = eegmat_manifest(shared_data / "eegmat", out_dir=tmp_path)
    m = read_manifest(path)
    assert (m.table["old_channels"].map(len) == 19).all()
    assert not any("A2" in c for c in m.table["old_channels"].iloc[0])
    pw = make_paired_windows(m, old_spec=EEG_ANY, new_spec=ECG, cache=False)
    counts = pw.counts()
    assert (counts[["rest", "task"]] > 0).all().all()
    _no_leak(pw)


@pytest.mark.slow
@pytest.mark.realdata
def test_cinc_full_data(shared_data, tmp_path):
    path = cinc2015_manifest(shared_data / "cinc2015_vt", out_dir=tmp_path)
    notes = json.loads(path.with_suffix(".notes.json").read_text())
    n_headers = len(list((shared_data / "cinc2015_vt").glob("*.hea")))
    m = read_manifest(path)
    assert len(m) + len(notes["left_out"]) == n_headers
    assert all("PLETH" in d["reason"] for d in notes["left_out"])
    pw = make_paired_windows(m, old_spec=ECG, new_spec=PPG, cache=False)
    lab = pw.meta[pw.meta["label"].notna()]
    assert ((lab["start_s"] >= 284) & (lab["start_s"] + 10 <= 300)).all()
    counts = pw.counts()
    for split in ("train", "test"):
        assert (counts.loc[split, ["false_alarm", "true_alarm"]] > 0).all()
    assert sum(pw.dropped.values()) > 0  # the dev half has NaN/flat stretches
    _no_leak(pw)
