"""read_uploads / stage_uploads: several uploaded files grouped into records, safely."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from bioxbridge_core.data import uploads
from bioxbridge_core.data.uploads import read_uploads, stage_uploads

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:DeprecationWarning")


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def cinc(fixtures_dir):
    folder = fixtures_dir / "cinc2015_vt"
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.stem in ("v100s", "v102s")}


def _no_server_path(text: str) -> None:
    assert "bioxbridge-uploads" not in text and "/tmp" not in text and "<upload>" not in text, text


def test_several_records_at_once(cinc, fixtures_dir):
    edf = (fixtures_dir / "eegmat" / "Subject00_1.edf").read_bytes()
    result = read_uploads(list(cinc.items()) + [("Subject00_1.edf", edf)])
    assert result.ok and sorted(result.recordings) == ["Subject00_1.edf", "v100s.hea", "v102s.hea"]
    rec = result.recordings["v100s.hea"]
    assert rec.source == "v100s.hea" and rec.sfreq == 250.0 and rec.n_times == 15000
    assert sorted(r.files for r in result.records if r.name == "v102s.hea")[0] == ["v102s.hea", "v102s.dat"]


def test_zip_of_a_folder_with_junk_and_an_e4_set(cinc):
    e4 = {"e4/BVP.csv": b"1767261600.0\n64.0\n" + b"0.5\n" * 640, "e4/EDA.csv": b"1767261600.0\n4.0\n" + b"0.1\n" * 40,
          "e4/IBI.csv": b"1767261600.0, IBI\n1.0,0.8\n", "e4/tags.csv": b"1767261601.0\n", "e4/info.txt": b"E4",
          "__MACOSX/e4/._BVP.csv": b"junk", "readme.pdf": b"%PDF"}
    members = {f"rec/{k}": v for k, v in cinc.items()} | e4
    result = read_uploads([("session.zip", _zip(members))])
    assert not result.errors, result.errors
    assert sorted(result.recordings) == ["session.zip/e4/BVP.csv", "session.zip/e4/EDA.csv",
                                         "session.zip/rec/v100s.hea", "session.zip/rec/v102s.hea"]
    assert result.recordings["session.zip/e4/BVP.csv"].sfreq == 64.0
    notes = " ".join(result.notes)
    assert "IBI.csv" in notes and "tags.csv" in notes and "info.txt" in notes and "readme.pdf" in notes
    assert "__MACOSX" not in notes


def test_streamlit_like_objects_and_mapping(cinc):
    class Uploaded:
        def __init__(self, name, data):
            self.name, self._data = name, data

        def getvalue(self):
            return self._data

    assert read_uploads([Uploaded(k, v) for k, v in cinc.items()]).ok
    assert read_uploads(dict(cinc)).ok


def test_missing_parts_and_bad_files_are_listed_not_raised(cinc):
    items = [("v100s.hea", cinc["v100s.hea"]), ("v102s.dat", cinc["v102s.dat"]), ("notes.docx", b"x"),
             ("empty.csv", b""), ("bad.edf", b"not an edf" * 40), ("dup.csv", b"a"), ("dup.csv", b"b")]
    result = read_uploads(items)
    errors = dict(result.errors)
    assert "v100s.dat" in errors["v100s.hea"] and "upload" in errors["v100s.hea"]
    assert "v102s.hea" in errors["v102s.dat"]
    assert "unsupported" in errors["notes.docx"] and "empty" in errors["empty.csv"]
    assert errors["bad.edf"].startswith("bad.edf: not an EDF/BDF file")
    assert "uploaded twice" in errors["dup.csv"] and not result.records
    for _, msg in result.errors:
        _no_server_path(msg)
        assert "\n" not in msg


def test_multi_segment_record_in_a_zip(tmp_path):
    import wfdb

    for name, n in (("s1", 200), ("s2", 100)):
        wfdb.wrsamp(name, fs=100, units=["mV"], sig_name=["II"], p_signal=np.zeros((n, 1)), fmt=["16"],
                    write_dir=str(tmp_path))
    (tmp_path / "ms.hea").write_text("ms/3 1 100 400\ns1 200\n~ 100\ns2 100\n")
    members = {f"m/{p.name}": p.read_bytes() for p in tmp_path.iterdir()}
    result = read_uploads([("ms.zip", _zip(members))])
    assert list(result.recordings) == ["ms.zip/m/ms.hea"] and not result.errors
    rec = result.recordings["ms.zip/m/ms.hea"]
    assert rec.n_times == 400 and rec.gaps == [(2.0, 1.0)]
    assert sorted(result.records[0].files) == sorted(f"ms.zip/{m}" for m in members)


def test_zip_bombs_and_unsafe_members_are_refused(monkeypatch):
    for bad in ("../evil.csv", "/etc/evil.csv", "C:/evil.csv", "a/../../evil.csv"):
        (name, msg), = read_uploads([("x.zip", _zip({bad: b"t,a\n0,1\n"}))]).errors
        assert name == "x.zip" and "absolute path or '..'" in msg
    monkeypatch.setattr(uploads, "MAX_UNZIPPED_BYTES", 10_000)
    (_, msg), = read_uploads([("bomb.zip", _zip({"big.csv": b"0" * 50_000}))]).errors
    assert "unpacks to" in msg and "limit" in msg
    monkeypatch.setattr(uploads, "MAX_ZIP_MEMBERS", 3)
    (_, msg), = read_uploads([("many.zip", _zip({f"f{i}.csv": b"t,a\n0,1\n" for i in range(5)}))]).errors
    assert "holds 5 files" in msg
    (_, msg), = read_uploads([("total.csv", b"0" * 2000)], max_bytes=1000).errors
    assert "more than the limit" in msg
    (_, msg), = read_uploads([("broken.zip", b"PK\x03\x04 nope")]).errors
    assert "not a readable zip" in msg


def test_stage_uploads_writes_records_for_manifests(cinc, tmp_path):
    result = stage_uploads(list(cinc.items()), tmp_path)
    assert result.ok and {r.path.name for r in result.records} == {"v100s.hea", "v102s.hea"}
    assert all(r.path.is_file() and r.recording is None for r in result.records)
    assert (tmp_path / "v100s.dat").is_file()
