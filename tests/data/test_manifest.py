"""Manifest reading and validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bioxbridge_core.errors import ManifestError
from bioxbridge_core.data.manifest import read_manifest, write_manifest


def _touch(folder: Path, names):
    for n in names:
        (folder / n).parent.mkdir(parents=True, exist_ok=True)
        (folder / n).write_bytes(b"x")


def _write(folder: Path, rows, name="m.csv") -> Path:
    path = folder / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _rows(n_subjects=6, **extra):
    return [{"path": f"data/s{i}_{lab}.edf", "subject": f"s{i}", "old_channels": "ECG",
             "new_channels": "PPG PLETH", "label": lab, **extra}
            for i in range(n_subjects) for lab in ("rest", "stress")]


def test_reads_relative_paths_and_assigns_splits(tmp_path):
    rows = _rows()
    _touch(tmp_path, [r["path"] for r in rows])
    m = read_manifest(_write(tmp_path, rows), seed=2)
    assert len(m) == 12
    assert all(Path(p).is_absolute() and Path(p).exists() for p in m.table["old_path"])
    assert (m.table["old_path"] == m.table["new_path"]).all()
    assert m.table["old_channels"].iloc[0] == ("ECG",)
    assert set(m.table["split"]) == {"train", "pair", "test"}
    assert (m.table.groupby("subject")["split"].nunique() == 1).all()
    assert m.label_names == ["rest", "stress"]
    again = read_manifest(tmp_path / "m.csv", seed=2)
    assert again.table["split"].tolist() == m.table["split"].tolist()


def test_two_file_rows_channel_lists_and_spans(tmp_path):
    _touch(tmp_path, ["a_eeg.edf", "a_ecg.csv", "b_eeg.edf", "b_ecg.csv", "c_eeg.edf", "c_ecg.csv"])
    rows = [{"old_path": f"{s}_eeg.edf", "new_path": f"{s}_ecg.csv", "subject": s,
             "old_channels": "EEG Fp1; EEG Fp2 ;EEG O1", "new_channels": "ECG II", "label": "x" if s != "c" else "",
             "label_start": "10" if s == "a" else "", "label_end": "20" if s == "a" else ""}
            for s in "abc"]
    m = read_manifest(_write(tmp_path, rows))
    t = m.table.set_index("subject")
    assert t.loc["a", "old_channels"] == ("EEG Fp1", "EEG Fp2", "EEG O1")
    assert t.loc["a", "new_path"].endswith("a_ecg.csv") and t.loc["a", "old_path"].endswith("a_eeg.edf")
    assert (t.loc["a", "label_start"], t.loc["a", "label_end"]) == (10.0, 20.0)
    assert np.isnan(t.loc["b", "label_start"]) and t.loc["b", "label"] == "x"
    assert t.loc["c", "label"] is None


def test_absolute_paths_are_allowed(tmp_path):
    _touch(tmp_path, [f"abs_{s}.edf" for s in ("s1", "s2", "s3")])
    rows = [{"path": str(tmp_path / f"abs_{s}.edf"), "subject": s, "old_channels": "A", "new_channels": "B"}
            for s in ("s1", "s2", "s3")]
    other = tmp_path / "elsewhere"
    other.mkdir()
    m = read_manifest(_write(other, rows))
    assert m.table["old_path"].tolist() == [str((tmp_path / f"abs_{s}.edf").resolve()) for s in ("s1", "s2", "s3")]


def test_explicit_splits_kept_and_blanks_filled(tmp_path):
    rows = _rows(6)
    for r in rows:
        r["split"] = {"s0": "train", "s1": "test"}.get(r["subject"], "")
    _touch(tmp_path, [r["path"] for r in rows])
    m = read_manifest(_write(tmp_path, rows))
    t = m.table.groupby("subject")["split"].first()
    assert t["s0"] == "train" and t["s1"] == "test"
    assert t.notna().all() and set(t) <= {"train", "pair", "val", "test"}


@pytest.mark.parametrize("case, match", [
    ("no_subject", r"missing column\(s\) \['subject'\]"),
    ("no_path", r"missing column\(s\) \['path'\]"),
    ("missing_file", r"row 2: file not found: .*s0_stress.edf"),
    ("bad_split", r"row 1: unknown split 'training'"),
    ("two_splits", r"subject 's0' is in split 'train' \(row 1\) and 'test' \(row 2\)"),
    ("empty_channels", r"row 3: 'new_channels' is empty"),
    ("bad_span", r"row 1: need 0 <= label_start < label_end"),
])
def test_errors_name_manifest_row_and_problem(tmp_path, case, match):
    rows = _rows(3)
    _touch(tmp_path, [r["path"] for r in rows])
    if case == "no_subject":
        for r in rows:
            del r["subject"]
    elif case == "no_path":
        for r in rows:
            r["file"] = r.pop("path")
    elif case == "missing_file":
        (tmp_path / rows[1]["path"]).unlink()
    elif case == "bad_split":
        for r in rows:
            r["split"] = ""
        rows[0]["split"] = "training"
    elif case == "two_splits":
        for r in rows:
            r["split"] = "pair"
        rows[0]["split"], rows[1]["split"] = "train", "test"
    elif case == "empty_channels":
        rows[2]["new_channels"] = " ; "
    elif case == "bad_span":
        for r in rows:
            r["label_start"], r["label_end"] = "", ""
        rows[0]["label_start"], rows[0]["label_end"] = "30", "20"
    path = _write(tmp_path, rows, name="broken.csv")
    with pytest.raises(ManifestError, match=match) as info:
        read_manifest(path)
    assert "broken.csv" in str(info.value)


def test_empty_and_missing_manifest(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ManifestError, match="empty"):
        read_manifest(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("path,subject,old_channels,new_channels\n")
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(tmp_path / "header.csv")
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.csv")


def test_write_manifest_round_trip(tmp_path):
    _touch(tmp_path, ["a.npz", "b.npz", "c.npz"])
    rows = [{"path": f"{s}.npz", "subject": s, "old_channels": ["EEG Fp1", "EEG O1"], "new_channels": ["ECG"],
             "label": "rest"} for s in "abc"]
    m = read_manifest(write_manifest(rows, tmp_path / "w.csv"))
    assert m.table["old_channels"].tolist() == [("EEG Fp1", "EEG O1")] * 3
