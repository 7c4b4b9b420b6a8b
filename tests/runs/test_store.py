import json
import re

import pytest

from bioxbridge_core.errors import RunError
from bioxbridge_core.runs import RunStore, read_history
from bioxbridge_core.runs.schema import SCHEMA_VERSION


def test_create_writes_config_and_queued_status(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = store.create("bridge", {"seed": 3, "bridge": {"rank": 8}})
    assert re.fullmatch(r"\d{8}-\d{6}-bridge-[0-9a-f]{4}", run.id)
    cfg = json.loads((run.path / "config.json").read_text())
    assert cfg["schema_version"] == SCHEMA_VERSION and cfg["kind"] == "bridge" and cfg["seed"] == 3
    st = run.read_status()
    assert st["state"] == "queued" and st["pid"] is None and st["schema_version"] == SCHEMA_VERSION
    assert set(st["progress"]) == {"step", "total", "message"}
    assert store.get(run.id).path == run.path and run.kind == "bridge"


def test_status_history_metrics_stop(tmp_path):
    run = RunStore(tmp_path).create("bridge", {})
    run.write_status("running", "epoch 1", {"step": 2, "total": 10, "message": "epoch 1"}, pid=123)
    run.write_status("running", "epoch 2")  # keeps pid and progress
    st = run.read_status()
    assert (st["pid"], st["progress"]["step"], st["message"]) == (123, 2, "epoch 2")
    with pytest.raises(Exception, match="state"):
        run.write_status("finished")
    run.append_history({"epoch": 1, "train_loss": 0.5, "val_loss": 0.6, "seconds": 1.0})
    run.append_history({"epoch": 2, "train_loss": 0.4, "val_loss": 0.5, "seconds": 1.0})
    rows = read_history(run.path)
    assert isinstance(json.loads((run.path / "history.json").read_text()), list)
    assert [r["epoch"] for r in rows] == [1, 2] and all(r["schema_version"] == SCHEMA_VERSION for r in rows)
    run.write_metrics({"balanced_accuracy": 0.7})
    assert run.read_metrics()["balanced_accuracy"] == 0.7
    assert not run.stop_requested()
    run.request_stop()
    assert run.stop_requested() and (run.path / "STOP").exists()
    run.clear_stop()
    assert not run.stop_requested()
    assert not list(run.path.glob("*.tmp")) and not list(run.path.glob(".*"))


def test_list_newest_first_and_broken_folders(tmp_path):
    store = RunStore(tmp_path)
    a = store.create("bridge", {})
    b = store.create("pipeline", {})
    cfg = json.loads((a.path / "config.json").read_text())
    cfg["created"] = "2000-01-01T00:00:00+00:00"
    (a.path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "20990101-000000-bridge-dead").mkdir()  # no config
    bad = tmp_path / "20100101-000000-bridge-beef"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    infos = store.list()
    ids = [i.id for i in infos]
    assert ids.index(b.id) < ids.index(a.id)
    broken = {i.id: i for i in infos if i.broken}
    assert set(broken) == {"20990101-000000-bridge-dead", "20100101-000000-bridge-beef"}
    assert all(i.state == "failed" for i in broken.values())
    assert "config.json" in broken["20100101-000000-bridge-beef"].message
    assert infos[0].to_dict()["path"]


def test_get_delete_and_errors(tmp_path):
    store = RunStore(tmp_path)
    run = store.create("bridge", {})
    with pytest.raises(RunError, match="Did you mean"):
        store.get(run.id[:-1] + "x")
    with pytest.raises(RunError):
        store.create("Bad Kind", {})
    store.delete(run.id)
    assert not run.path.exists() and store.list() == []


def test_delete_refuses_live_run_and_list_spots_dead_workers(tmp_path):
    import subprocess
    import sys

    store = RunStore(tmp_path)
    run = store.create("bridge", {})
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "bioxbridge_core.jobs"])
    try:
        run.write_status("running", "busy", pid=proc.pid)
        with pytest.raises(RunError, match="still running"):
            store.delete(run.id)
        assert store.list()[0].state == "running"
    finally:
        proc.kill()
        proc.wait()
    info = store.list()[0]
    assert info.state == "failed" and info.message == "worker exited unexpectedly"
    assert run.read_status()["state"] == "failed"
    store.delete(run.id)
    assert not run.path.exists()


def test_newer_schema_is_refused(tmp_path):
    run = RunStore(tmp_path).create("bridge", {})
    (run.path / "metrics.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(RunError, match="newer"):
        run.read_metrics()


def _pipeline_folder(path, *, report: dict | None):
    path.mkdir()
    (path / "pipeline_config.json").write_text(json.dumps({"old": "builtin:eeg", "new": "builtin:ecg"}))
    if report is not None:
        (path / "report.json").write_text(json.dumps(report))


def test_run_out_folders_are_runs_and_other_folders_are_skipped(tmp_path):
    store = RunStore(tmp_path)
    app = store.create("bridge", {})
    _pipeline_folder(tmp_path / "eeg2ecg", report={
        "bridge": {"metrics": {"balanced_accuracy": 0.8114, "n": 24}},
        "verdicts": {"bridge": {"stage": "bridge", "level": "stop", "headline": "at chance"}}})
    _pipeline_folder(tmp_path / "unfinished", report=None)
    (tmp_path / "photos").mkdir()  # not a run: no run files, no run id
    (tmp_path / "photos" / "a.txt").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    infos = {i.id: i for i in store.list()}
    assert set(infos) == {app.id, "eeg2ecg", "unfinished"}
    done = infos["eeg2ecg"]
    assert (done.kind, done.state, done.broken) == ("run", "completed", False)
    assert "0.811" in done.message and "24 test windows" in done.message and "STOP" in done.message
    assert infos["unfinished"].state == "failed" and "report.json" in infos["unfinished"].message


def test_cli_runs_lists_run_out_folders_and_refuses_a_missing_root(tmp_path, capsys):
    from bioxbridge_core.cli import main

    _pipeline_folder(tmp_path / "eeg2ecg", report={"bridge": {"metrics": {"balanced_accuracy": 0.5, "n": 10}}})
    (tmp_path / "unrelated").mkdir()
    assert main(["runs", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("eeg2ecg  run  completed  bridge balanced accuracy 0.500")
    assert main(["runs", "--root", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr()
    assert err.out == "" and len(err.err.splitlines()) == 1 and "nope" in err.err and "no such" in err.err
