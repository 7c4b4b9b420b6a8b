"""manifest_from_files: subjects from file names, labels from names / annotations / a table / nothing."""

from __future__ import annotations

import numpy as np
import pytest

from bioxbridge_core.data.manifest import read_manifest
from bioxbridge_core.data.readers import read_recording, write_recording
from bioxbridge_core.data.recording import Annotation
from bioxbridge_core.data.uploads import (
    DEFAULT_SUBJECT_PATTERN,
    label_from_name,
    manifest_from_files,
    parse_label_map,
    read_label_table,
    subject_from_name,
)
from bioxbridge_core.errors import ConfigError, ManifestError

EEG = ["EEG Fp1", "EEG F3", "EEG F4", "EEG C3", "EEG C4", "EEG O1"]
ECG = ["ECG ECG"]


@pytest.fixture
def eegmat_files(fixtures_dir):
    files = sorted((fixtures_dir / "eegmat").glob("*.edf"))
    if len(files) != 8:
        pytest.skip("eegmat fixtures missing")
    return files


@pytest.mark.parametrize("name, pattern, expected", [
    ("Subject00_1.edf", DEFAULT_SUBJECT_PATTERN, "Subject00"),
    ("site_a_p7_2.edf", DEFAULT_SUBJECT_PATTERN, "site_a_p7"),
    ("p12.edf", DEFAULT_SUBJECT_PATTERN, "p12"),
    ("rec-p03-night2.bdf", r"rec-(p\d+)-.*", "p03"),
    ("S07_run1.edf", r"(?P<subject>S\d+)_run\d", "S07"),
])
def test_subject_from_name(name, pattern, expected):
    assert subject_from_name(name, pattern) == expected


def test_subject_pattern_errors_name_the_file():
    with pytest.raises(ManifestError, match="x_1.edf"):
        subject_from_name("x_1.edf", r"S\d+")
    with pytest.raises(ManifestError, match="not a valid regular expression"):
        subject_from_name("x_1.edf", r"(unclosed")


def test_label_map_parsing_and_longest_ending_wins():
    m = parse_label_map("_1=rest, _2 -> task\n_12=other")
    assert m == {"_1": "rest", "_2": "task", "_12": "other"}
    assert label_from_name("Subject00_1.edf", m) == "rest"
    assert label_from_name("Subject00_12.edf", m) == "other"
    assert label_from_name("Subject00_3.edf", m) is None
    with pytest.raises(ManifestError, match="ENDING=LABEL"):
        parse_label_map("_1 rest")
    with pytest.raises(ManifestError, match="both"):
        parse_label_map("_1=rest,_1=task")


def test_eegmat_uploads_labelled_from_file_names(eegmat_files, tmp_path):
    out = manifest_from_files(eegmat_files, old_channels=EEG, new_channels=ECG, out_path=tmp_path / "m.csv",
                              label_map=parse_label_map("_1=rest,_2=task"))
    man = read_manifest(out.path)
    assert len(man) == 8 and man.subjects == ["Subject00", "Subject01", "Subject02", "Subject03"]
    assert man.label_names == ["rest", "task"]
    by_file = dict(zip(man.table["old_file"].map(lambda p: p.rsplit("/", 1)[-1]), man.table["label"]))
    assert by_file["Subject02_1.edf"] == "rest" and by_file["Subject02_2.edf"] == "task"
    assert list(man.table.iloc[0]["old_channels"]) == EEG and list(man.table.iloc[0]["new_channels"]) == ECG
    assert out.n_labelled == 8 and not out.notes
    # both recordings of one subject always share a split (no leakage)
    assert man.table.groupby("subject")["split"].nunique().max() == 1


def test_unmatched_names_are_unlabelled_with_a_note(eegmat_files, tmp_path):
    out = manifest_from_files(eegmat_files, old_channels=EEG, new_channels=ECG, out_path=tmp_path / "m.csv",
                              label_map={"_1": "rest"})
    man = read_manifest(out.path)
    assert man.label_names == ["rest"]
    assert man.table["label"].isna().sum() == 4
    assert out.notes and "4 file(s) got no label" in out.notes[0]


def test_missing_channel_names_the_file(eegmat_files, tmp_path):
    with pytest.raises(ManifestError, match=r"Subject00_1\.edf.*EEG Cz"):
        manifest_from_files(eegmat_files, old_channels=["EEG Cz"], new_channels=ECG, out_path=tmp_path / "m.csv",
                            label_map={"_1": "rest"})


def test_bad_label_source_and_missing_mapping(eegmat_files, tmp_path):
    with pytest.raises(ConfigError, match="label_source"):
        manifest_from_files(eegmat_files, old_channels=EEG, new_channels=ECG, out_path=tmp_path / "m.csv",
                            label_source="guess")
    with pytest.raises(ManifestError, match="mapping"):
        manifest_from_files(eegmat_files, old_channels=EEG, new_channels=ECG, out_path=tmp_path / "m.csv")


def test_label_table_with_whole_files_and_spans(eegmat_files, tmp_path):
    table = read_label_table(b"file,label,label_start,label_end\n"
                             b"Subject00_1.edf,rest,,\n"
                             b"Subject00_2,task,10,30\n"
                             b"Other_9.edf,rest,,\n", name="labels.csv")
    out = manifest_from_files(eegmat_files[:2], old_channels=EEG, new_channels=ECG, out_path=tmp_path / "m.csv",
                              label_source="table", label_table=table)
    man = read_manifest(out.path)
    t = man.table.set_index(man.table["old_file"].map(lambda p: p.rsplit("/", 1)[-1]))
    assert t.loc["Subject00_1.edf", "label"] == "rest" and np.isnan(t.loc["Subject00_1.edf", "label_start"])
    assert t.loc["Subject00_2.edf", "label"] == "task"
    assert (t.loc["Subject00_2.edf", "label_start"], t.loc["Subject00_2.edf", "label_end"]) == (10.0, 30.0)
    assert any("Other_9.edf" in n for n in out.notes)


def test_label_table_errors():
    with pytest.raises(ManifestError, match="labels.csv.*missing column"):
        read_label_table(b"name,label\na,b\n", name="labels.csv")
    with pytest.raises(ManifestError, match="row 1"):
        read_label_table(b"file,label,label_start,label_end\na.edf,x,5,2\n", name="labels.csv")


def _annotated_edf(src, dst, annotations):
    rec = read_recording(src)
    rec.annotations = [Annotation(*a) for a in annotations]
    return write_recording(rec, dst)


def test_labels_from_edf_annotations_one_span_and_several(eegmat_files, tmp_path):
    one = _annotated_edf(eegmat_files[0], tmp_path / "A01_x.edf", [(0.0, 20.0, "rest"), (25.0, 0.0, "marker")])
    two = _annotated_edf(eegmat_files[1], tmp_path / "A02_x.edf", [(0.0, 20.0, "rest"), (20.0, 20.0, "task")])
    out = manifest_from_files([one, two], old_channels=EEG, new_channels=ECG, out_path=tmp_path / "m" / "m.csv",
                              label_source="annotations")
    man = read_manifest(out.path)
    assert man.subjects == ["A01", "A02"]
    a1 = man.table[man.table["subject"] == "A01"].iloc[0]
    assert (a1["label"], a1["label_start"], a1["label_end"]) == ("rest", 0.0, 20.0)  # zero-length marker ignored
    a2 = man.table[man.table["subject"] == "A02"]
    assert sorted(a2["label"]) == ["rest", "task"] and len(a2) == 2  # cut into two segments
    for p in a2["old_path"]:
        seg = read_recording(p)
        assert abs(seg.duration_s - 20.0) < 0.01 and seg.ch_names[:len(EEG)] == EEG
    # renaming/filtering the annotations
    out2 = manifest_from_files([two], old_channels=EEG, new_channels=ECG, out_path=tmp_path / "m2.csv",
                               label_source="annotations", annotation_map={"task": "arithmetic"})
    man2 = read_manifest(out2.path)
    assert man2.label_names == ["arithmetic"] and len(man2) == 1


def test_overlapping_annotations_are_refused(eegmat_files, tmp_path):
    f = _annotated_edf(eegmat_files[0], tmp_path / "B_1.edf", [(0.0, 20.0, "rest"), (10.0, 20.0, "task")])
    with pytest.raises(ManifestError, match="B_1.edf.*overlap"):
        manifest_from_files([f], old_channels=EEG, new_channels=ECG, out_path=tmp_path / "m.csv",
                            label_source="annotations")


def test_two_file_rows_fixed_label_and_subject_override(eegmat_files, tmp_path):
    ecg_only = write_recording(read_recording(eegmat_files[0], channels=ECG), tmp_path / "ecg.npz")
    out = manifest_from_files([eegmat_files[0]], new_files=[ecg_only], old_channels=EEG, new_channels=ECG,
                              out_path=tmp_path / "m.csv", subject="P1", label_source="fixed", label="rest")
    man = read_manifest(out.path)
    row = man.table.iloc[0]
    assert row["subject"] == "P1" and row["label"] == "rest"
    assert row["old_path"].endswith("Subject00_1.edf") and row["new_path"].endswith("ecg.npz")
    none = manifest_from_files(eegmat_files[:2], old_channels=EEG, new_channels=ECG,
                               out_path=tmp_path / "n.csv", label_source="none")
    assert read_manifest(none.path).label_names == [] and not none.notes
