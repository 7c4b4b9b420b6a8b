"""Data page sources: server folders only under configured roots, files that belong together,
no silent channel substitution, a new source clears the old dataset, a reload keeps it."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")
FIX = REPO / "tests" / "fixtures"
C11 = FIX / "cases" / "C11"
EEGMAT = FIX / "eegmat"
CINC = FIX / "cinc2015_vt"


def _problems(at: AppTest) -> list[str]:
    out = [f"exception: {e.value}" for e in at.exception]
    out += [f"bug panel: {e.value}" for e in at.error if "This is a bug" in e.value]
    return out


def _app(tmp_path: Path, page: str = "data", **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["run_root"] = str(tmp_path / "runs")
    for k, v in session.items():
        at.session_state[k] = v
    at.run()
    at.switch_page(f"pages/{page}.py").run()
    return at


def _texts(at: AppTest) -> list[str]:
    return [e.value for kind in ("error", "warning", "info", "success", "caption", "markdown") for e in
            getattr(at, kind)]


def _no_server_paths(at: AppTest, *paths: Path) -> None:
    shown = "\n".join(_texts(at))
    for p in paths:
        assert str(p) not in shown, f"server path {p} shown to the browser"


# -- server folders ------------------------------------------------------------------------------------------
@pytest.fixture
def lab_root(tmp_path, monkeypatch):
    """A configured root 'lab' with a bad manifest, a manifest pointing outside, and a link leading out."""
    lab, outside = tmp_path / "lab", tmp_path / "outside"
    lab.mkdir()
    outside.mkdir()
    (outside / "secret.edf").write_bytes((EEGMAT / "Subject00_1.edf").read_bytes())
    (lab / "bad.csv").write_text("path,subject\nnowhere.edf,s1\n")
    (lab / "sneaky.csv").write_text("path,subject,old_channels,new_channels,label\n"
                                    "../outside/secret.edf,s1,EEG Fp1,ECG ECG,rest\n")
    os.symlink(outside, lab / "escape")
    (lab / "bedside").mkdir()
    for f in C11.iterdir():
        (lab / "bedside" / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("BIOXBRIDGE_DATA_ROOTS", f"lab={lab}")
    return lab


def _server(tmp_path) -> AppTest:
    at = _app(tmp_path, data_source="server")
    assert at.selectbox(key="w_data_server_root").options == ["lab"]
    return at


@pytest.mark.parametrize("typed", ["../outside", "escape", "escape/secret.edf", "/etc", "bedside/../../outside"])
def test_server_source_refuses_paths_outside_its_roots(tmp_path, lab_root, typed):
    at = _server(tmp_path)
    at.text_input(key="w_data_server_path").set_value(typed).run()
    assert not _problems(at), _problems(at)
    assert at.error and "outside" in at.error[0].value, [e.value for e in at.error]
    assert at.session_state["manifest_path"] is None
    _no_server_paths(at, lab_root, lab_root.parent)


def test_server_listing_shows_only_what_is_inside(tmp_path, lab_root):
    at = _server(tmp_path)
    options = at.selectbox(key="w_data_server_entry").options
    assert "bad.csv" in options and "bedside/" in options
    assert not any("escape" in o or "secret" in o for o in options)  # the link out is not listed


def test_server_manifest_pointing_outside_is_refused(tmp_path, lab_root):
    at = _server(tmp_path)
    at.text_input(key="w_data_server_path").set_value("sneaky.csv").run()
    at.button(key="w_data_use_server").click().run()
    assert not _problems(at), _problems(at)
    assert any("sneaky.csv" in e.value and "outside" in e.value for e in at.error), [e.value for e in at.error]
    assert at.session_state["manifest_path"] is None
    _no_server_paths(at, lab_root, lab_root.parent)


def test_server_bad_manifest_shows_a_readable_error_without_paths(tmp_path, lab_root):
    at = _server(tmp_path)
    at.selectbox(key="w_data_server_entry").set_value("bad.csv").run()
    at.button(key="w_data_use_server").click().run()
    assert not at.exception
    assert at.error and "bad.csv" in at.error[0].value
    assert at.session_state["manifest_path"] is None
    _no_server_paths(at, lab_root)


def test_server_folder_with_a_recipe_builds_its_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOXBRIDGE_DATA_ROOTS", f"fixtures={FIX}")
    at = _server_named(tmp_path, "fixtures")
    at.selectbox(key="w_data_server_entry").set_value("eegmat/").run()
    assert any("mental arithmetic" in c.value for c in at.caption)
    at.button(key="w_data_use_server").click().run()
    assert not _problems(at), _problems(at)
    assert at.session_state["dataset_label"] == "fixtures/eegmat (eegmat)"
    assert (at.session_state["old_encoder"], at.session_state["new_encoder"]) == ("builtin:eeg", "builtin:ecg")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Windows"] == "32" and metrics["Classes"] == "2"
    _no_server_paths(at, FIX)


def _server_named(tmp_path, name) -> AppTest:
    at = _app(tmp_path, data_source="server")
    assert at.selectbox(key="w_data_server_root").options == [name]
    return at


def test_server_folder_without_recipe_is_built_from_names(tmp_path, lab_root):
    at = _server(tmp_path)
    at.selectbox(key="w_data_server_entry").set_value("bedside/").run()
    assert not _problems(at), _problems(at)
    assert at.multiselect(key="w_data_old_channels_ecg").value == ["II"]
    assert at.multiselect(key="w_data_new_channels_ppg").value == ["PLETH"]


def test_default_roots_are_the_demo_and_shared_data_only(monkeypatch, tmp_path):
    from ui.server_data import configured_roots

    monkeypatch.delenv("BIOXBRIDGE_DATA_ROOTS", raising=False)
    monkeypatch.setenv("BIOXBRIDGE_SHARED_DATA", str(tmp_path / "absent"))
    assert [r.name for r in configured_roots(config_file=tmp_path / "none.toml")] == ["built-in demo"]
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv("BIOXBRIDGE_SHARED_DATA", str(tmp_path / "shared"))
    assert [r.name for r in configured_roots(config_file=tmp_path / "none.toml")] == ["built-in demo", "shared data"]
    cfg = tmp_path / "studio.toml"
    cfg.write_text(f'[data]\nroots = {{ "study" = "{tmp_path / "shared"}" }}\n')
    assert [r.name for r in configured_roots(config_file=cfg)] == ["built-in demo", "study"]


# -- files that belong together (case C11) -------------------------------------------------------------------
def _upload(at: AppTest, key: str, files: list[tuple[str, bytes]]) -> AppTest:
    at.file_uploader(key=key).set_value([(n, d, "application/octet-stream") for n, d in files]).run()
    return at


def _c11() -> list[tuple[str, bytes]]:
    return [(f.name, f.read_bytes()) for f in sorted(C11.iterdir())]


def test_wfdb_header_with_its_signal_file_is_one_recording(tmp_path):
    at = _app(tmp_path, data_source="upload-one")
    _upload(at, "w_data_upload-one", _c11())
    assert not _problems(at), _problems(at)
    assert not at.warning or not any("exactly" in w.value for w in at.warning)
    assert at.multiselect(key="w_data_old_channels_ecg").value == ["II"]
    assert at.multiselect(key="w_data_new_channels_ppg").value == ["PLETH"]
    at.text_input(key="w_data_label").set_value("alarm")
    at.button(key="w_data_use_upload").click().run()
    assert not _problems(at), _problems(at)
    assert at.session_state["dataset_label"] == "bedside01.hea"


def test_header_without_its_signal_file_is_refused_by_name(tmp_path):
    at = _app(tmp_path, data_source="upload-one")
    _upload(at, "w_data_upload-one", [("bedside01.hea", (C11 / "bedside01.hea").read_bytes())])
    assert not _problems(at), _problems(at)
    msg = " ".join(e.value for e in at.error)
    assert "bedside01.hea" in msg and "bedside01.dat" in msg and "not uploaded" in msg
    _no_server_paths(at, tmp_path, REPO)
    at = _app(tmp_path, data_source="upload-one")
    _upload(at, "w_data_upload-one", [("bedside01.dat", (C11 / "bedside01.dat").read_bytes())])
    assert any("bedside01.dat" in e.value and "header bedside01.hea" in e.value for e in at.error)


def test_several_records_and_a_zip_of_a_folder(tmp_path):
    names = ["v100s", "v143l"]
    files = [(f"{r}{s}", (CINC / f"{r}{s}").read_bytes()) for r in names for s in (".hea", ".dat")]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, d in _c11():
            zf.writestr(f"ward/{n}", d)
    at = _app(tmp_path, data_source="upload-many")
    _upload(at, "w_data_upload-many", files + [("ward.zip", buf.getvalue())])
    assert not _problems(at), _problems(at)
    plan = at.dataframe[0].value
    assert sorted(plan["file"]) == ["bedside01.hea", "v100s.hea", "v143l.hea"]


def test_alarms_csv_is_accepted_as_a_label_table(tmp_path):
    records = ["v100s", "v102s", "v143l", "v159l"]
    files = [(f"{r}{s}", (CINC / f"{r}{s}").read_bytes()) for r in records for s in (".hea", ".dat")]
    at = _app(tmp_path, data_source="upload-many")
    _upload(at, "w_data_upload-many", files)
    at.selectbox(key="w_data_label_source").set_value("table").run()
    at.file_uploader(key="w_data_label_csv").set_value(
        ("alarms.csv", (CINC / "alarms.csv").read_bytes(), "text/csv")).run()
    assert not _problems(at), _problems(at)
    assert at.selectbox(key="w_data_label_csv_file_col").value == "recordname"
    assert at.selectbox(key="w_data_label_csv_label_col").value == "result"
    plan = at.dataframe[0].value
    assert list(plan["label"]) == ["false_alarm", "false_alarm", "true_alarm", "true_alarm"]
    at.checkbox(key="w_data_label_csv_use_span").check().run()  # the 16 s before each alarm (fixtures: 44-60 s)
    at.number_input(key="w_data_label_csv_span_start").set_value(44.0).run()
    at.number_input(key="w_data_label_csv_span_end").set_value(60.0).run()
    at.button(key="w_data_use_upload").click().run()
    assert not _problems(at), _problems(at)
    from bioxbridge_core.data.manifest import read_manifest

    man = read_manifest(at.session_state["manifest_path"])
    assert man.label_names == ["false_alarm", "true_alarm"]
    assert set(man.table["label_start"]) == {44.0} and set(man.table["label_end"]) == {60.0}


# -- no silent substitutions ---------------------------------------------------------------------------------
def test_missing_modality_leaves_the_picker_empty_with_a_message(tmp_path):
    at = _app(tmp_path, data_source="upload-many")  # default encoders ECG -> PPG; eegmat has EEG + ECG, no PPG
    _upload(at, "w_data_upload-many", [(f.name, f.read_bytes()) for f in sorted(EEGMAT.glob("*.edf"))[:2]])
    assert not _problems(at), _problems(at)
    picker = at.multiselect(key="w_data_new_channels_ppg")
    assert picker.value == [] and picker.options == []
    assert any("No PPG channel" in w.value for w in at.warning)
    assert at.button(key="w_data_use_upload").disabled
    at.checkbox(key="w_data_new_by_name").check().run()  # explicit, never silent
    assert "EEG Fp1" in at.multiselect(key="w_data_new_channels_ppg").options
    assert at.multiselect(key="w_data_new_channels_ppg").value == []


def test_choosing_a_new_source_clears_the_old_dataset(tmp_path):
    at = _app(tmp_path, data_source="demo")
    assert at.session_state["manifest_path"] and any(m.label == "Windows" for m in at.metric)
    at.radio(key="w_data_source").set_value("upload-many").run()
    assert not _problems(at), _problems(at)
    assert at.session_state["manifest_path"] is None
    assert not any(m.label == "Windows" for m in at.metric)
    assert not at.error


# -- a reload keeps the work ---------------------------------------------------------------------------------
def test_reload_keeps_dataset_encoders_and_positions(tmp_path):
    at = _app(tmp_path, data_source="upload-many")
    _upload(at, "w_data_upload-many", [(f.name, f.read_bytes()) for f in sorted(EEGMAT.glob("*.edf"))])
    at.selectbox(key="w_data_old_select").set_value("builtin:eeg").run()
    at.selectbox(key="w_data_new_select").set_value("builtin:ecg").run()
    at.button(key="w_data_use_upload").click().run()
    at.session_state["positions"] = {"read": "blocks.1", "write": "blocks.2"}
    # AppTest runs a switched-to page on its own; a run of app.py (as every browser run is) saves the session
    at.switch_page("app.py").run()
    token = at.query_params.get("s")
    assert token and str(tmp_path) not in str(token) and "/" not in str(token)
    manifest = at.session_state["manifest_path"]

    again = AppTest.from_file(APP, default_timeout=120)  # a reload: a new session with the same URL
    again.query_params["s"] = token
    again.session_state["run_root"] = str(tmp_path / "runs")
    again.run()
    assert again.session_state["manifest_path"] == manifest
    assert again.session_state["dataset_label"] == "8 recordings"
    assert (again.session_state["old_encoder"], again.session_state["new_encoder"]) == ("builtin:eeg", "builtin:ecg")
    assert again.session_state["positions"] == {"read": "blocks.1", "write": "blocks.2"}
    again.switch_page("pages/data.py").run()
    assert {m.label: m.value for m in again.metric}["Windows"] == "32"

    forged = AppTest.from_file(APP, default_timeout=120)  # a token that names no session restores nothing
    forged.query_params["s"] = "../../etc/passwd"
    forged.run()
    assert forged.session_state["manifest_path"] is None


def test_c06_psg_one_file_row_previews_each_side_at_its_own_rate(tmp_path, monkeypatch):
    """C06: EEG at 256 Hz and ECG at 512 Hz in one EDF, used as a one-file manifest row from a server folder."""
    cases = tmp_path / "cases"
    (cases / "C06").mkdir(parents=True)
    for f in ("psg.edf", "manifest.csv"):
        (cases / "C06" / f).write_bytes((FIX / "cases" / "C06" / f).read_bytes())
    monkeypatch.setenv("BIOXBRIDGE_DATA_ROOTS", f"cases={cases}")
    at = _app(tmp_path, data_source="server", old_encoder="builtin:eeg", new_encoder="builtin:ecg")
    at.selectbox(key="w_data_server_entry").set_value("C06/manifest.csv").run()
    at.button(key="w_data_use_server").click().run()
    assert not _problems(at), _problems(at)
    # the only red box is the labels verdict (C06 is an unlabelled pair row), not the preview or windowing
    assert [e.value for e in at.error if "two labelled classes" not in e.value] == []
    shown = "\n".join(_texts(at))
    assert "--channels" not in shown and "command line" not in shown
    # the preview read each side with its own channels: both rates are named in the side captions
    captions = [c.value for c in at.caption]
    assert any("EEG Fp1" in c and "256 Hz" in c for c in captions), captions
    assert any("ECG" in c and "512 Hz" in c for c in captions), captions
    from bioxbridge_core.models.registry import encoder_spec

    window_s = at.session_state.get("window_s") or encoder_spec(at.session_state["old_encoder"]).window_s
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Windows"] == str(int(60 // window_s))  # 60 s of signal in whole windows
    _no_server_paths(at, cases)


def test_app_messages_do_not_point_to_command_line_flags():
    from ui.errors import redact

    msg = redact("/srv/lab/psg.edf: its signals have different sampling rates (512 Hz: ECG; 256 Hz: EEG Fp1). "
                 "Readers never resample: pick channels that share one rate (channels=, or --channels in the "
                 "command line).")
    assert msg.startswith("psg.edf: its signals") and "512 Hz: ECG" in msg
    assert "--channels" not in msg and "command line" not in msg and "channels=" not in msg
