"""Jobs run in their own processes: two at once, STOP, a killed worker, failures."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
from _bridge_toys import paired_data  # noqa: E402

from bioxbridge_core.data.windows import PairedWindows  # noqa: E402
from bioxbridge_core.jobs import job_state, pid_alive, run_worker, start_job  # noqa: E402
from bioxbridge_core.runs import RunStore, read_history, read_metrics, read_status  # noqa: E402

FINAL = ("completed", "failed", "stopped")


@pytest.fixture(scope="module")
def windows_file(tmp_path_factory):
    x_old, x_new, groups, labels = paired_data(32, n_subjects=4)
    meta = pd.DataFrame({"subject": groups, "recording": groups, "split": "pair",
                         "start_s": np.arange(32, dtype=float), "label": np.where(labels, "b", "a")})
    path = tmp_path_factory.mktemp("win") / "pairs.npz"
    PairedWindows(x_old, x_new, meta, old_channels=["ECG"], new_channels=["PPG"], sfreq_old=50, sfreq_new=25,
                  window_s=2.0, step_s=2.0).save(path)
    return path


def _config(windows, epochs):
    return {"windows": str(windows), "old_encoder": "toy:tokens", "new_encoder": "toy:channels",
            "old_position": "blocks.1", "new_position": "layer2", "encoder_factory": "_bridge_toys:make_encoder",
            "bridge": {"epochs": epochs, "batch_size": 8, "lr": 1e-2, "rank": 2, "n_prototypes": 4}}


def _env(sleep_s=0.0):
    return {"PYTHONPATH": str(TESTS), "TOY_SLEEP_S": str(sleep_s), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _wait(pred, timeout_s=90.0, what=""):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _log(run):
    p = run.path / "log.txt"
    return p.read_text() if p.exists() else ""


@pytest.mark.slow
def test_two_jobs_at_once_finish_independently_and_stop_one(tmp_path, windows_file):
    store = RunStore(tmp_path)
    short = store.create("bridge", _config(windows_file, 4))
    long = store.create("bridge", _config(windows_file, 400))
    pid_long = start_job(long.path, env=_env(0.01))
    pid_short = start_job(short.path, env=_env(0.01))
    assert pid_long != pid_short
    _wait(lambda: job_state(short.path)["state"] in FINAL, what="short job")
    assert job_state(short.path)["state"] == "completed", _log(short)
    assert job_state(long.path)["state"] in ("queued", "running"), _log(long)  # still going on its own
    assert [r["epoch"] for r in read_history(short.path)] == [1, 2, 3, 4]
    assert (short.path / "bridge.safetensors").exists() and read_metrics(short.path)["bridge"]["trainable_params"] > 0
    _wait(lambda: len(read_history(long.path)) >= 1, what="first epoch of the long job")
    long.request_stop()
    _wait(lambda: job_state(long.path)["state"] in FINAL, what="stopped job")
    st = read_status(long.path)
    assert st["state"] == "stopped", _log(long)
    assert len(read_history(long.path)) < 400 and (long.path / "checkpoint" / "checkpoint.safetensors").exists()
    assert read_status(short.path)["state"] == "completed"  # the other run was not affected
    _wait(lambda: not pid_alive(pid_long) and not pid_alive(pid_short), timeout_s=20, what="workers to exit")


@pytest.mark.slow
def test_killed_job_resumes_from_checkpoint(tmp_path, windows_file):
    run = RunStore(tmp_path).create("bridge", _config(windows_file, 12))
    pid = start_job(run.path, env=_env(0.05))
    _wait(lambda: len(read_history(run.path)) >= 2, what="two epochs")
    os.killpg(pid, signal.SIGKILL)
    _wait(lambda: not pid_alive(pid), timeout_s=10, what="worker death")
    st = job_state(run.path)
    assert st["state"] == "failed" and st["message"] == "worker exited unexpectedly"
    done = len(read_history(run.path))
    assert done >= 2
    start_job(run.path, env=_env(0.0))
    _wait(lambda: job_state(run.path)["state"] in FINAL, what="resumed job")
    assert job_state(run.path)["state"] == "completed", _log(run)
    metrics = read_metrics(run.path)
    assert metrics["bridge"]["resumed_from_epoch"] >= done
    assert [r["epoch"] for r in read_history(run.path)] == list(range(1, 13))
    assert "resuming from the checkpoint" in _log(run)


def test_failure_marks_only_that_run(tmp_path, windows_file):
    store = RunStore(tmp_path)
    bad = store.create("bridge", {"old_encoder": "toy:tokens"})
    unknown = store.create("nonsense", {})
    assert run_worker(bad.path) == 1
    assert run_worker(unknown.path) == 1
    assert read_status(bad.path)["state"] == "failed" and "windows" in read_status(bad.path)["message"]
    assert "unknown run kind 'nonsense'" in read_status(unknown.path)["message"]
    assert {i.state for i in store.list()} == {"failed"}


def test_stop_before_start_and_in_process_run(tmp_path, windows_file, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    run = RunStore(tmp_path).create("bridge", _config(windows_file, 2))
    run.request_stop()
    assert run_worker(run.path) == 0 and read_status(run.path)["state"] == "stopped"
    run.clear_stop()
    assert run_worker(run.path) == 0
    st = read_status(run.path)
    assert st["state"] == "completed" and st["pid"] == os.getpid()


def test_dead_pid_is_detected(tmp_path):
    run = RunStore(tmp_path).create("bridge", {})
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    run.write_status("running", "epoch 3", pid=proc.pid)
    assert job_state(run.path)["state"] == "failed"
    assert read_status(run.path)["message"] == "worker exited unexpectedly"


def test_bridge_job_saves_a_loadable_bundle(tmp_path, windows_file, monkeypatch):
    heads = pytest.importorskip("bioxbridge_core.models.heads")
    from _bridge_toys import make_encoder

    from bioxbridge_core.runs import load_bundle

    monkeypatch.syspath_prepend(str(TESTS))
    head = heads.TaskHead(16, 2, label_names=["a", "b"], encoder_name="toy:tokens")
    head.fitted = True
    head_path = head.save(tmp_path / "head.safetensors")
    run = RunStore(tmp_path / "runs").create("bridge", {**_config(windows_file, 2), "head": str(head_path)})
    assert run_worker(run.path) == 0, read_status(run.path)
    model = load_bundle(run.path, device="cpu", encoder_loader=make_encoder)
    assert model.info["new_ch_names"] == ["PPG"] and model.info["window_s"] == 2.0
    assert model.label_names == ["a", "b"]
    x_new = PairedWindows.load(windows_file).x_new
    assert model.predict_proba(x_new).shape == (len(x_new), 2)


def test_bridge_job_scores_test_split_and_kd_when_asked(tmp_path, monkeypatch):
    """With a labelled test split and a head, the job evaluates bridge, oracle, chance and (asked) KD."""
    heads = pytest.importorskip("bioxbridge_core.models.heads")
    x_old, x_new, groups, labels = paired_data(40, n_subjects=5)
    split = np.where(np.isin(groups, np.unique(groups)[:4]), "pair", "test")
    meta = pd.DataFrame({"subject": groups, "recording": groups, "split": split,
                         "start_s": np.arange(40, dtype=float), "label": np.where(labels, "b", "a")})
    windows = tmp_path / "pairs.npz"
    PairedWindows(x_old, x_new, meta, old_channels=["ECG"], new_channels=["PPG"], sfreq_old=50, sfreq_new=25,
                  window_s=2.0, step_s=2.0).save(windows)
    monkeypatch.syspath_prepend(str(TESTS))
    head = heads.TaskHead(16, 2, label_names=["a", "b"], encoder_name="toy:tokens")
    head.fitted = True
    head_path = head.save(tmp_path / "head.safetensors")
    cfg = {**_config(windows, 2), "head": str(head_path), "baselines": {"kd": True}, "kd_epochs": 1}
    run = RunStore(tmp_path / "runs").create("bridge", cfg)
    assert run_worker(run.path) == 0, read_status(run.path)
    metrics = read_metrics(run.path)
    n_test = int((split == "test").sum())
    for method in ("bridge", "oracle", "chance", "kd"):
        assert sum(map(sum, metrics[method]["test"]["confusion"])) == n_test, method
    assert metrics["kd"]["trainable_params"] > 0 and metrics["kd"]["epochs"] == 1
    assert all("val_agreement" in r for r in read_history(run.path))
