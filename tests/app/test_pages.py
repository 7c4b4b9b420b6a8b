"""AppTest checks of every page: no exception, key elements render, engine gaps are friendly.

The fast tests use a small manifest over the committed CinC 2015 fixtures (ECG lead II + PLETH)
and a temporary run store. The slow test drives the whole flow: task head, a 2-epoch bridge
run in a subprocess, prediction on an uploaded new-signal file, the run list.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
APP = str(REPO / "app.py")
PAGES = ("home", "data", "models", "alignment", "train", "predict", "runs")
FIXTURES = REPO / "tests" / "fixtures" / "cinc2015_vt"
RECORDS = (("v100s", "false"), ("v102s", "false"), ("v113l", "false"),
           ("v143l", "true"), ("v159l", "true"), ("v194s", "true"))


def _problems(at: AppTest) -> list[str]:
    """Uncaught exceptions plus error panels that come from the boundary's 'bug' branch."""
    out = [f"exception: {e.value}" for e in at.exception]
    out += [f"bug panel: {e.value}" for e in at.error if "This is a bug" in e.value]
    return out


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    if not FIXTURES.is_dir():
        pytest.skip("CinC fixtures missing")
    path = tmp_path / "manifest.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "subject", "old_channels", "new_channels", "label"])
        for rec, label in RECORDS:
            w.writerow([str(FIXTURES / f"{rec}.hea"), rec, "II", "PLETH", label])
    return path


def _app(tmp_path: Path, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["run_root"] = str(tmp_path / "runs")
    for k, v in session.items():
        at.session_state[k] = v
    return at.run()


def test_home_renders_with_demo_button(tmp_path):
    at = _app(tmp_path)
    assert not _problems(at)
    assert at.title[0].value == "BioX-Bridge Studio"
    assert at.button(key="w_home_demo").label == "Run the demo"
    assert at.selectbox(key="w_sidebar_device").value == "auto"
    assert any("No runs yet" in c.value for c in at.caption)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_a_dataset(tmp_path, page):
    at = _app(tmp_path, data_source="server")
    at.switch_page(f"pages/{page}.py").run()
    assert not _problems(at), _problems(at)
    assert at.title, f"{page} shows no title"


def test_demo_button_opens_data_page(tmp_path):
    at = _app(tmp_path)
    at.button(key="w_home_demo").click().run()
    assert not _problems(at)
    assert at.title[0].value == "Data"
    assert at.radio(key="w_data_source").value == "demo"
    # either the demo is active, or the page says politely that the generator is not built yet
    assert at.success or any("not available yet" in i.value for i in at.info)


def test_data_page_previews_manifest_and_counts_windows(tmp_path, manifest):
    at = _app(tmp_path, data_source="server", manifest_path=str(manifest))
    at.switch_page("pages/data.py").run()
    assert not _problems(at), _problems(at)
    assert len(at.get("plotly_chart")) >= 1
    metrics = {m.label: m.value for m in at.metric}
    if "Windows" not in metrics:  # pairing not built: must be a friendly note, not a crash
        assert any("not available yet" in i.value for i in at.info)
    else:
        assert int(metrics["Windows"]) > 0 and int(metrics["Classes"]) == 2


def test_data_page_rejects_unreadable_upload(tmp_path):
    at = _app(tmp_path, data_source="upload-one")
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="w_data_upload-one").set_value(("junk.csv", b"not,a\nsignal", "text/csv")).run()
    assert not at.exception
    assert at.error, "an unreadable upload must show an error panel"
    assert "junk.csv" in at.error[0].value


def test_models_page_trains_head_and_shows_metrics(tmp_path, manifest):
    at = _app(tmp_path, data_source="server", manifest_path=str(manifest))
    at.switch_page("pages/models.py").run()
    assert not _problems(at)
    assert at.selectbox(key="w_models_old_select").value == "builtin:ecg"
    button = at.button(key="w_models_train_head")
    button.click().run()
    assert not _problems(at), _problems(at)
    labels = [m.label for m in at.metric]
    if not labels:
        assert any("not available yet" in i.value for i in at.info)
    else:
        assert "Balanced accuracy" in labels
        assert len(at.get("plotly_chart")) >= 1  # confusion matrix


def _run_folder(tmp_path, run_id: str, state: str, message: str = "", *, history_row: dict | None = None):
    """A bridge run folder as the run store writes it (config, status, a one-epoch history)."""
    run = tmp_path / "runs" / run_id
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"kind": "bridge", "encoders": {"old": "builtin:ecg", "new": "builtin:ppg"}}')
    (run / "status.json").write_text(json.dumps({"state": state, "message": message, "pid": None,
                                                 "updated": "2026-01-01T00:00:00", "progress": {}}))
    row = {"epoch": 1, "train_loss": 0.5, "val_loss": 0.6, "seconds": 1.0, **(history_row or {})}
    (run / "history.json").write_text(json.dumps([row]))
    return run


def test_runs_page_lists_a_failed_run_with_its_reason(tmp_path):
    _run_folder(tmp_path, "20260101-000000-bridge-abcd", "failed", "PLETH is flat in v100s")
    at = _app(tmp_path)
    at.switch_page("pages/runs.py").run()
    assert not _problems(at), _problems(at)
    assert any("PLETH is flat" in e.value for e in at.error)
    assert len(at.get("plotly_chart")) >= 1  # loss curve
    at.switch_page("pages/home.py").run()
    assert not _problems(at)


def test_runs_page_warns_when_the_confidence_temperature_hit_its_bound(tmp_path):
    """A bridge whose confidence fit found no signal says so where its run is shown (as the CLI does)."""
    run = _run_folder(tmp_path, "20260101-000000-bridge-ef01", "completed", history_row={"val_agreement": 0.9})
    (run / "metrics.json").write_text('{"bridge": {"best_epoch": 1, "agreement_chance": 0.5, "n_val": 40, '
                                      '"confidence_calibration": {"temperature": 10000.0, "n": 40}}}')
    at = _app(tmp_path)
    at.switch_page("pages/runs.py").run()
    assert not _problems(at), _problems(at)
    assert any("search bound" in w.value and "T = 1e+04" in w.value for w in at.warning), [w.value for w in at.warning]
    (run / "metrics.json").write_text('{"bridge": {"best_epoch": 1, "agreement_chance": 0.5, "n_val": 40, '
                                      '"confidence_calibration": {"temperature": 1.3, "n": 40}}}')
    at.run()
    assert not any("search bound" in w.value for w in at.warning)


def test_engine_never_imports_streamlit():
    code = (
        "import importlib, pkgutil, sys\n"
        "import bioxbridge_core as pkg\n"
        "skipped = []\n"
        "for m in pkgutil.walk_packages(pkg.__path__, 'bioxbridge_core.'):\n"
        "    if m.name.endswith('__main__'):\n"
        "        continue\n"
        "    try:\n"
        "        importlib.import_module(m.name)\n"
        "    except ImportError as exc:\n"
        "        skipped.append(m.name)\n"
        "bad = sorted(k for k in sys.modules if k == 'streamlit' or k.startswith('streamlit.'))\n"
        "print('IMPORTED', len([k for k in sys.modules if k.startswith('bioxbridge_core')]))\n"
        "print('STREAMLIT', bad[:3])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "HOME": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "STREAMLIT []" in out.stdout, out.stdout
    assert int(out.stdout.split("IMPORTED")[1].split()[0]) > 5


@pytest.mark.slow
def test_full_flow_head_bridge_predict(tmp_path, manifest):
    at = _app(tmp_path, data_source="server", manifest_path=str(manifest),
              positions={"read": "layer2.0", "write": "blocks.4"})
    at.switch_page("pages/models.py").run()
    at.button(key="w_models_train_head").click().run()
    at.switch_page("pages/train.py").run()
    assert not _problems(at), _problems(at)
    assert any(m.label == "Bridge trainable parameters" for m in at.metric)
    at.number_input(key="w_train_epochs").set_value(2).run()
    at.button(key="w_train_start").click().run()
    assert not _problems(at), _problems(at)
    run_id = at.session_state["active_run"]
    status = tmp_path / "runs" / run_id / "status.json"
    deadline = time.time() + 240
    while time.time() < deadline and '"completed"' not in status.read_text() and '"failed"' not in status.read_text():
        time.sleep(1)
    assert '"completed"' in status.read_text(), status.read_text()
    at.run()
    assert any("completed" in m.value for m in at.markdown)
    assert any("agrees with the old model on" in c.value for c in at.caption)

    at.switch_page("pages/predict.py").run()
    c11 = REPO / "tests" / "fixtures" / "cases" / "C11"
    # a WFDB header alone: refused by name, no server path
    at.file_uploader(key="w_predict_upload").set_value([("bedside01.hea", (c11 / "bedside01.hea").read_bytes(),
                                                          "application/octet-stream")]).run()
    assert any("bedside01.hea" in e.value and "bedside01.dat" in e.value for e in at.error), [e.value for e in at.error]
    assert not any(str(tmp_path) in e.value or str(REPO) in e.value for e in at.error)
    # a recording without the bridge's modality: an empty channel picker and a message, never a stand-in
    edf = REPO / "tests" / "fixtures" / "eegmat" / "Subject00_1.edf"
    at.file_uploader(key="w_predict_upload").set_value([(edf.name, edf.read_bytes(), "application/octet-stream")]).run()
    assert at.multiselect(key="w_predict_channels").value == [] and at.multiselect(key="w_predict_channels").options == []
    assert any("No PPG channel" in w.value for w in at.warning)
    # the header with its signal file, plus a second record: several recordings at once (case C11)
    files = [(f.name, f.read_bytes(), "application/octet-stream") for f in sorted(c11.iterdir())]
    files += [(f"v143l{s}", (FIXTURES / f"v143l{s}").read_bytes(), "application/octet-stream") for s in (".hea", ".dat")]
    at.file_uploader(key="w_predict_upload").set_value(files).run()
    assert not _problems(at), _problems(at)
    assert at.selectbox(key="w_predict_record").options == ["bedside01.hea", "v143l.hea"]
    assert at.multiselect(key="w_predict_channels").value == ["PLETH"]
    at.text_input(key="w_predict_truth").set_value("true")
    at.button(key="w_predict_go").click().run()
    assert not _problems(at), _problems(at)
    assert any(m.label == "Windows" and int(m.value) > 0 for m in at.metric)
    summary = at.dataframe[0].value
    assert list(summary["recording"]) == ["bedside01.hea", "v143l.hea"] and (summary["windows"] > 0).all()
    assert any("Confidence is calibrated" in i.value for i in at.info)
    assert at.get("download_button")

    at.switch_page("pages/runs.py").run()
    assert not _problems(at), _problems(at)
    assert at.get("download_button")


@pytest.mark.slow
def test_demo_flow_models_alignment_train_page(tmp_path):
    at = _app(tmp_path)
    at.button(key="w_home_demo").click().run()
    if any("not available yet" in i.value for i in at.info):
        pytest.skip("demo generator not built")
    assert at.success and int(next(m.value for m in at.metric if m.label == "Windows")) > 0
    at.switch_page("pages/models.py").run()
    at.button(key="w_models_train_head").click().run()
    at.switch_page("pages/alignment.py").run()
    at.button(key="w_align_run").click().run()
    assert not _problems(at), _problems(at)
    assert len(at.get("plotly_chart")) >= 3  # probe bars, CKA map, self-similarity
    picked = at.session_state["positions"]
    assert picked["read"] == at.selectbox(key="w_align_read").value
    at.toggle(key="w_align_debiased").set_value(False).run()
    assert not _problems(at), _problems(at)
    at.switch_page("pages/train.py").run()
    assert not _problems(at), _problems(at)
    labels = [m.label for m in at.metric]
    assert "Bridge trainable parameters" in labels


# -- several uploaded files, label sources ------------------------------------------------------------------
EEGMAT = REPO / "tests" / "fixtures" / "eegmat"
EEG_CHANNELS = ["EEG Fp1", "EEG F3", "EEG F4", "EEG C3", "EEG C4", "EEG O1"]


@pytest.fixture
def eegmat_files() -> list[Path]:
    files = sorted(EEGMAT.glob("*.edf"))
    if len(files) != 8:
        pytest.skip("eegmat fixtures missing")
    return files


def _upload_many(tmp_path: Path, files: list[Path]) -> AppTest:
    """Data page, 'several files' source, eegmat files uploaded, EEG (old) -> ECG (new) chosen."""
    at = _app(tmp_path, data_source="upload-many")
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="w_data_upload-many").set_value(
        [(f.name, f.read_bytes(), "application/octet-stream") for f in files]).run()
    at.selectbox(key="w_data_old_select").set_value("builtin:eeg").run()
    at.selectbox(key="w_data_new_select").set_value("builtin:ecg").run()
    assert not _problems(at), _problems(at)
    return at


def _active_manifest(at: AppTest):
    from bioxbridge_core.data.manifest import read_manifest

    return read_manifest(at.session_state["manifest_path"])


def test_data_page_several_files_subject_and_label_from_names(tmp_path, eegmat_files):
    at = _upload_many(tmp_path, eegmat_files)
    assert at.multiselect(key="w_data_old_channels_eeg").value == EEG_CHANNELS
    assert at.multiselect(key="w_data_new_channels_ecg").value == ["ECG ECG"]
    assert at.selectbox(key="w_data_label_source").value == "filename"
    plan = at.dataframe[0].value
    assert list(plan["subject"]) == [f.stem.rsplit("_", 1)[0] for f in eegmat_files]
    assert list(plan["label"]) == ["rest", "task"] * 4
    at.text_input(key="w_data_label_map").set_value("_1=rest").run()  # the mapping is editable
    assert list(at.dataframe[0].value["label"])[:2] == ["rest", "— (unlabelled)"]
    at.text_input(key="w_data_label_map").set_value("_1=rest, _2=task").run()
    at.button(key="w_data_use_upload").click().run()
    assert not _problems(at), _problems(at)
    man = _active_manifest(at)
    assert man.subjects == ["Subject00", "Subject01", "Subject02", "Subject03"] and man.label_names == ["rest", "task"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Windows"] == "32" and metrics["Labelled"] == "32" and metrics["Classes"] == "2"
    assert at.session_state["old_encoder"] == "builtin:eeg" and at.session_state["new_encoder"] == "builtin:ecg"


def test_data_page_subject_pattern_is_editable_and_errors_are_readable(tmp_path, eegmat_files):
    at = _upload_many(tmp_path, eegmat_files[:2])
    at.text_input(key="w_data_subject_pattern").set_value(r"Subject(\d+)_\d").run()
    assert list(at.dataframe[0].value["subject"]) == ["00", "00"]
    at.text_input(key="w_data_subject_pattern").set_value(r"P\d+").run()
    at.button(key="w_data_use_upload").click().run()
    assert not _problems(at), _problems(at)
    assert any("Subject00_1.edf" in e.value and "does not match" in e.value for e in at.error)
    assert at.session_state["manifest_path"] is None


def test_data_page_label_csv_source(tmp_path, eegmat_files):
    at = _upload_many(tmp_path, eegmat_files)
    at.selectbox(key="w_data_label_source").set_value("table").run()
    lines = ["file,label,label_start,label_end"] + [f"{f.name},{'rest' if f.stem.endswith('1') else 'task'},,"
                                                    for f in eegmat_files]
    lines[3] = "Subject01_1.edf,rest,0,20"  # a labelled span: the rest of that file is unlabelled pair data
    table = "\n".join(lines).encode()
    at.file_uploader(key="w_data_label_csv").set_value(("labels.csv", table, "text/csv")).run()
    assert not _problems(at), _problems(at)
    assert list(at.dataframe[0].value["label"]) == ["rest", "task"] * 4
    at.button(key="w_data_use_upload").click().run()
    assert not _problems(at), _problems(at)
    man = _active_manifest(at)
    spans = man.table.set_index("subject")
    assert man.label_names == ["rest", "task"]
    assert (man.table["label_end"] == 20.0).sum() == 1  # the span of Subject01_1 was kept
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Labelled"]) == 32 - 2 and int(metrics["Windows"]) == 32
    assert len(spans) == 8


def test_data_page_one_file_label_from_annotations(tmp_path, eegmat_files):
    from bioxbridge_core.data.readers import read_recording, write_recording
    from bioxbridge_core.data.recording import Annotation

    rec = read_recording(eegmat_files[0])
    rec.annotations = [Annotation(0.0, 20.0, "rest"), Annotation(20.0, 20.0, "task")]
    edf = write_recording(rec, tmp_path / "P07_night.edf")
    at = _app(tmp_path, data_source="upload-one", old_encoder="builtin:eeg", new_encoder="builtin:ecg")
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="w_data_upload-one").set_value(("P07_night.edf", edf.read_bytes(), "application/octet-stream"))
    at.run()
    assert at.selectbox(key="w_data_label_source").value == "fixed"  # typed label by default
    at.selectbox(key="w_data_label_source").set_value("annotations").run()
    at.text_input(key="w_data_subject").set_value("P07")
    at.button(key="w_data_use_upload").click().run()
    assert not _problems(at), _problems(at)
    man = _active_manifest(at)
    assert sorted(man.table["label"]) == ["rest", "task"] and set(man.table["subject"]) == {"P07"}
    assert any("cut into 2 segment" in i.value for i in at.info)  # the note is shown
    # one subject cannot fill the train/pair/test splits: a readable error in the Windows section, no crash
    assert any("Windows" in e.value for e in at.error) or {m.label: m.value for m in at.metric}.get("Labelled") == "4"


def test_data_page_typed_label_still_works_for_one_file(tmp_path, manifest):
    data = (FIXTURES / "v100s.hea")
    from bioxbridge_core.data.readers import read_recording, write_recording

    npz = write_recording(read_recording(data), tmp_path / "v100s.npz")
    at = _app(tmp_path, data_source="upload-one")
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="w_data_upload-one").set_value(("v100s.npz", npz.read_bytes(), "application/octet-stream"))
    at.run()
    at.text_input(key="w_data_label").set_value("false")
    at.button(key="w_data_use_upload").click().run()
    assert not _problems(at), _problems(at)
    man = _active_manifest(at)
    assert list(man.table["label"]) == ["false"] and man.table.iloc[0]["subject"] == "v100s"
    assert list(man.table.iloc[0]["old_channels"]) == ["II"] and list(man.table.iloc[0]["new_channels"]) == ["PLETH"]


# -- concurrency and navigation during training ---------------------------------------------------------------
POSITIONS = {"read": "layer2.0", "write": "blocks.4"}


def _chart_points(at: AppTest, key: str) -> int | None:
    """Number of x values of the first trace of the plotly chart with this widget key (None: not shown)."""
    import json

    for el in at.get("plotly_chart"):
        if el.proto.id.endswith(key):
            return len(json.loads(el.proto.spec)["data"][0]["x"])
    return None


def _wait_done(status: Path, timeout_s: float = 240.0) -> str:
    """The final status, once the run's worker has exited (a stopped run's worker still saves after 'stopped')."""
    import json

    from bioxbridge_core.jobs import pid_alive

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        text = status.read_text()
        if any(f'"{s}"' in text for s in ("completed", "failed", "stopped")):
            pid = json.loads(text).get("pid")
            if not pid or not pid_alive(int(pid)):
                return status.read_text()
        time.sleep(0.5)
    return status.read_text()


@pytest.mark.slow
def test_two_sessions_train_at_once_and_switching_pages_loses_nothing(tmp_path, manifest):
    import json

    sessions = [_app(tmp_path, data_source="server", manifest_path=str(manifest), positions=dict(POSITIONS))
                for _ in range(2)]
    a, b = sessions
    a.switch_page("pages/models.py").run()
    a.button(key="w_models_train_head").click().run()  # the head is on disk: session b finds it
    assert not _problems(a), _problems(a)
    plan = {0: (2, 11), 1: (3, 22)}  # epochs, seed per session
    for i, at in enumerate(sessions):
        at.switch_page("pages/train.py").run()
        at.number_input(key="w_train_epochs").set_value(plan[i][0])
        at.number_input(key="w_train_seed").set_value(plan[i][1]).run()
    for at in sessions:  # start both before either can finish
        at.button(key="w_train_start").click().run()
        assert not _problems(at), _problems(at)
    ids = [at.session_state["active_run"] for at in sessions]
    assert ids[0] and ids[1] and ids[0] != ids[1]

    # session a wanders off while both train, then comes back: same run, nothing lost
    for page in ("runs", "models", "alignment", "home", "train"):
        a.switch_page(f"pages/{page}.py").run()
        assert not _problems(a), (page, _problems(a))
        assert a.session_state["active_run"] == ids[0]
    assert any(ids[0] in m.value for m in a.markdown)

    for i, (at, rid) in enumerate(zip(sessions, ids)):
        run = tmp_path / "runs" / rid
        assert '"completed"' in _wait_done(run / "status.json"), (run / "log.txt").read_text()[-2000:]
        history = json.loads((run / "history.json").read_text())
        assert [h["epoch"] for h in history] == list(range(1, plan[i][0] + 1))  # its own epochs, nobody else's
        assert json.loads((run / "config.json").read_text())["seed"] == plan[i][1]
    for i, (at, rid) in enumerate(zip(sessions, ids)):
        at.run()
        assert at.session_state["active_run"] == rid
        assert any(rid in m.value and "completed" in m.value for m in at.markdown)
        assert _chart_points(at, f"w_train_curve_{rid}") == plan[i][0]
        at.switch_page("pages/runs.py").run()
        at.switch_page("pages/train.py").run()  # away and back: the same run and curve
        assert not _problems(at), _problems(at)
        assert at.session_state["active_run"] == rid
        assert _chart_points(at, f"w_train_curve_{rid}") == plan[i][0]
        other = ids[1 - i]
        assert _chart_points(at, f"w_train_curve_{other}") == plan[1 - i][0]  # the shared store shows both


# -- verdicts: an at-chance dataset and a good one -----------------------------------------------------------------
def _verdicts(at: AppTest) -> list[tuple[str, str]]:
    """(level, text) of every verdict box on the page."""
    out = []
    for kind, level in (("success", "go"), ("warning", "caution"), ("error", "stop")):
        for e in getattr(at, kind):
            for word in ("Fit to go on", "Go on with care", "Not fit to go on"):
                if e.value.startswith(f"**{word}"):
                    out.append((level, e.value))
    return out


@pytest.mark.slow
def test_verdicts_on_an_at_chance_eegmat_like_dataset(tmp_path, eegmat_files):
    """Real eegmat EEG+ECG, labelled by the half of each recording (first vs last 20 s): nothing to learn."""
    at = _upload_many(tmp_path, eegmat_files)
    at.selectbox(key="w_data_label_source").set_value("table").run()
    rows = ["file,label,label_start,label_end"] + [f"{f.name},{lab},{a},{b}" for f in eegmat_files
                                                  for lab, a, b in (("early", 0, 20), ("late", 20, 40))]
    at.file_uploader(key="w_data_label_csv").set_value(("halves.csv", "\n".join(rows).encode(), "text/csv")).run()
    at.button(key="w_data_use_upload").click().run()
    assert not _problems(at), _problems(at)
    levels = _verdicts(at)
    assert levels and levels[0][0] == "caution" and "Few labelled windows" in levels[0][1]  # 4 per class in train

    at.switch_page("pages/models.py").run()
    at.button(key="w_models_train_head").click().run()
    assert not _problems(at), _problems(at)
    old = [v for v in _verdicts(at) if "old model" in v[1].lower()]
    assert old and old[0][0] == "stop" and "at chance" in old[0][1], _verdicts(at)
    assert at.tabs[0].label.startswith("held-out subjects (test)")  # opens on held-out results

    at.switch_page("pages/alignment.py").run()
    at.button(key="w_align_run").click().run()
    assert not _problems(at), _problems(at)
    align = [v for v in _verdicts(at) if "alignment" in v[1].lower() or "nothing to transfer" in v[1].lower()]
    # at chance: the pseudo labels are one class (nothing to probe) or the cell does not beat its null
    assert align and align[0][0] == "stop", _verdicts(at)
    assert "No alignment above chance" in align[0][1] or "Nothing to transfer" in align[0][1]
    baseline = next(m for m in at.metric if m.label == "Debiased CKA of this cell").delta
    assert baseline.startswith("shuffled-pairs baseline")
    import json

    heat = json.loads(next(e for e in at.get("plotly_chart") if e.proto.id.endswith("w_align_cka")).proto.spec)
    assert f"shuffled {baseline.split()[-1]}" in heat["data"][0]["colorbar"]["ticktext"]  # one baseline, metric = heatmap


@pytest.mark.slow
def test_demo_verdicts_calibration_stop_predict_resume(tmp_path):
    """The good dataset: every stage fit to go on; a stopped run predicts from its best epoch with calibrated
    confidence, then resumes to the end."""
    import json

    at = _app(tmp_path)
    at.button(key="w_home_demo").click().run()
    assert [v[0] for v in _verdicts(at)] == ["go"]  # labelled windows per class
    at.switch_page("pages/models.py").run()
    at.button(key="w_models_train_head").click().run()
    assert [v[0] for v in _verdicts(at) if "old model" in v[1].lower()] == ["go"], _verdicts(at)
    at.switch_page("pages/alignment.py").run()
    at.button(key="w_align_run").click().run()
    assert not _problems(at), _problems(at)
    assert [v[0] for v in _verdicts(at) if "align" in v[1].lower()] == ["go"], _verdicts(at)

    at.switch_page("pages/train.py").run()
    at.number_input(key="w_train_epochs").set_value(40).run()
    at.button(key="w_train_start").click().run()
    assert not _problems(at), _problems(at)
    run_id = at.session_state["active_run"]
    run = tmp_path / "runs" / run_id
    deadline = time.time() + 300
    while time.time() < deadline and len(json.loads((run / "history.json").read_text() or "[]")
                                         if (run / "history.json").exists() else []) < 3:
        time.sleep(0.5)
    at.run()
    assert any("s per epoch" in c.value and "left" in c.value for c in at.caption), [c.value for c in at.caption]
    at.button(key=f"w_train_stop_{run_id}").click().run()
    status = _wait_done(run / "status.json", 300)
    assert '"stopped"' in status, (run / "log.txt").read_text()[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())["bridge"]
    assert metrics["stopped"] and (run / "bundle.json").exists() and "test" in metrics

    at.switch_page("pages/predict.py").run()  # the stopped run is offered, from its best epoch
    assert not _problems(at), _problems(at)
    assert run_id in at.selectbox(key="w_predict_run").value
    assert any(m.label == "Bridge, held-out test" for m in at.metric)
    from bioxbridge_core.data.demo import demo_manifest
    from bioxbridge_core.data.manifest import read_manifest
    from bioxbridge_core.data.readers import read_recording, write_recording

    man = read_manifest(demo_manifest("ecg-ppg", seed=0))
    test_row = man.table[man.table["split"] == "test"].iloc[0]
    ppg = write_recording(read_recording(test_row["new_path"], channels=list(test_row["new_channels"])),
                          tmp_path / "ppg_only.npz")
    at.file_uploader(key="w_predict_upload").set_value(("ppg_only.npz", ppg.read_bytes(), "application/octet-stream"))
    at.run()
    at.button(key="w_predict_go").click().run()
    assert not _problems(at), _problems(at)
    assert any("Confidence is calibrated" in i.value for i in at.info)
    assert float(next(m.value for m in at.metric if m.label == "Mean confidence")) < 0.999

    at.switch_page("pages/train.py").run()
    at.button(key=f"w_train_resume_{run_id}").click().run()
    status = _wait_done_after(run / "status.json", "completed", 400)
    assert '"completed"' in status, (run / "log.txt").read_text()[-2000:]
    history = json.loads((run / "history.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())["bridge"]
    assert metrics["resumed_from_epoch"] >= 3
    # every epoch once, continued after the stop (up to 40, or fewer when early stopping ends it)
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1)) and metrics["resumed_from_epoch"] < len(history) <= 40
    conf = metrics["test_confidence"]["calibrated"]
    assert conf["mean_wrong"] is None or conf["mean_wrong"] < 0.9  # wrong predictions are not sure of themselves
    print("demo test confidence", metrics["test_confidence"], metrics["confidence_calibration"]["temperature"])
    at.run()
    assert any(v[0] == "go" and "bridge agrees" in v[1] for v in _verdicts(at)), _verdicts(at)


def _wait_done_after(status: Path, state: str, timeout_s: float) -> str:
    import json

    from bioxbridge_core.jobs import pid_alive

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        text = status.read_text()
        if f'"{state}"' in text or '"failed"' in text:
            pid = json.loads(text).get("pid")
            if not pid or not pid_alive(int(pid)):
                return status.read_text()
        time.sleep(0.5)
    return status.read_text()


def test_models_page_shows_the_old_model_assessment(tmp_path, manifest, monkeypatch):
    """Subject-grouped CV of the old model beside hand-crafted features: its numbers decide the verdict."""
    import sys
    import types

    calls = []

    def assess_old_model(old_encoder, train, *, n_folds=5, seed=0, on_progress=None, **kw):
        calls.append(len(train))
        return {"n_windows": len(train), "n_subjects": 2, "n_folds": 2, "chance": 0.5,
                "label_names": list(train.label_names),
                "old_model": {"balanced_accuracy": 0.52, "balanced_accuracy_mean": 0.52, "balanced_accuracy_sd": 0.02},
                "handcrafted": {"balanced_accuracy": 0.9, "balanced_accuracy_mean": 0.9, "balanced_accuracy_sd": 0.01}}

    import bioxbridge_core.models.assess as real

    fake = types.ModuleType("bioxbridge_core.models.assess")
    fake.__dict__.update({k: v for k, v in vars(real).items() if not k.startswith("__")})  # choose_calibration...
    fake.assess_old_model = assess_old_model
    monkeypatch.setitem(sys.modules, "bioxbridge_core.models.assess", fake)
    at = _app(tmp_path, data_source="server", manifest_path=str(manifest))
    at.switch_page("pages/models.py").run()
    at.button(key="w_models_train_head").click().run()
    at.button(key="w_models_assess").click().run()
    assert not _problems(at), _problems(at)
    assert calls and calls[0] > 0
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Old model (CV)"] == "0.520" and metrics["Hand-crafted features (CV)"] == "0.900"
    old = [v for v in _verdicts(at) if "old model" in v[1].lower()]
    assert old[0][0] == "stop" and "subject-grouped CV on train" in old[0][1]
