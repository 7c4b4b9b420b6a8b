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
from bioxbridge_core.errors import RunError  # noqa: E402
from bioxbridge_core.jobs import can_resume, job_state, pid_alive, resume_job, run_worker, start_job  # noqa: E402
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
    assert can_resume(run.path)
    resume_job(run.path, env=_env(0.0))
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


def _labelled_windows(tmp_path, n=40, n_subjects=5):
    """Pairs of 4 subjects plus a labelled test subject."""
    x_old, x_new, groups, labels = paired_data(n, n_subjects=n_subjects)
    split = np.where(np.isin(groups, np.unique(groups)[:n_subjects - 1]), "pair", "test")
    meta = pd.DataFrame({"subject": groups, "recording": groups, "split": split,
                         "start_s": np.arange(n, dtype=float), "label": np.where(labels, "b", "a")})
    path = tmp_path / "pairs.npz"
    PairedWindows(x_old, x_new, meta, old_channels=["ECG"], new_channels=["PPG"], sfreq_old=50, sfreq_new=25,
                  window_s=2.0, step_s=2.0).save(path)
    return path, int((split == "test").sum())


def _head(tmp_path):
    heads = pytest.importorskip("bioxbridge_core.models.heads")
    import torch

    head = heads.TaskHead(16, 2, label_names=["a", "b"], encoder_name="toy:tokens")
    with torch.no_grad():
        head.linear.weight.normal_()
    head.fitted = True
    return head.save(tmp_path / "head.safetensors")


@pytest.mark.slow
def test_stop_keeps_the_best_epoch_as_a_usable_evaluated_bundle_then_resume_finishes(tmp_path, monkeypatch):
    from _bridge_toys import make_encoder

    from bioxbridge_core.runs import load_bundle

    windows, n_test = _labelled_windows(tmp_path)
    run = RunStore(tmp_path / "runs").create("bridge", {**_config(windows, 300), "head": str(_head(tmp_path))})
    pid = start_job(run.path, env=_env(0.01))
    _wait(lambda: len(read_history(run.path)) >= 2, what="two epochs")
    run.request_stop()
    # final once the worker has exited: it marks 'stopped' first, then saves and evaluates the best epoch
    _wait(lambda: job_state(run.path)["state"] in FINAL and not pid_alive(pid), what="stopped job")
    st = read_status(run.path)
    assert st["state"] == "stopped", _log(run)
    assert "kept as a usable bridge" in st["message"]
    metrics = read_metrics(run.path)["bridge"]
    done = len(read_history(run.path))
    assert metrics["stopped"] is True and 1 <= metrics["best_epoch"] <= done < 300
    assert sum(map(sum, metrics["test"]["confusion"])) == n_test  # evaluated like a finished run
    assert metrics["confidence_calibration"]["temperature"] > 0 and metrics["confidence_calibration"]["n"] > 0
    model = load_bundle(run.path, device="cpu", encoder_loader=make_encoder)
    assert model.info["best_epoch"] == metrics["best_epoch"] and model.info["stopped"] is True
    assert model.info["confidence_calibration"]["temperature"] == metrics["confidence_calibration"]["temperature"]

    assert can_resume(run.path)
    import json

    cfg = json.loads((run.path / "config.json").read_text())
    cfg["bridge"]["epochs"] = done + 2  # the fingerprint ignores epochs: finish soon
    (run.path / "config.json").write_text(json.dumps(cfg))
    resume_job(run.path, env=_env(0.0))
    _wait(lambda: job_state(run.path)["state"] in FINAL, what="resumed job")
    assert read_status(run.path)["state"] == "completed", _log(run)
    assert [r["epoch"] for r in read_history(run.path)] == list(range(1, done + 3))
    assert read_metrics(run.path)["bridge"]["resumed_from_epoch"] == done
    assert not can_resume(run.path)
    with pytest.raises(RunError, match="only a stopped or failed run"):
        resume_job(run.path)


def test_stop_before_the_first_epoch_keeps_no_bundle(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    windows, _ = _labelled_windows(tmp_path)
    run = RunStore(tmp_path / "runs").create("bridge", {**_config(windows, 3), "head": str(_head(tmp_path))})
    from bioxbridge_core.training import trainer as trainer_mod

    real = trainer_mod.BridgeTrainer._train

    def stop_at_once(self, *a, **k):  # STOP appears while the frozen features are being cached
        run.request_stop()
        return real(self, *a, **k)

    monkeypatch.setattr(trainer_mod.BridgeTrainer, "_train", stop_at_once)
    assert run_worker(run.path) == 0
    st = read_status(run.path)
    assert st["state"] == "stopped" and "nothing to keep" in st["message"]
    assert not (run.path / "bundle.json").exists()


def test_bridge_job_calibrates_confidence_on_pair_val(tmp_path, monkeypatch):
    """The bundle carries a temperature; test-split confidence is recorded raw and calibrated."""
    monkeypatch.syspath_prepend(str(TESTS))
    windows, _ = _labelled_windows(tmp_path)
    run = RunStore(tmp_path / "runs").create("bridge", {**_config(windows, 2), "head": str(_head(tmp_path))})
    assert run_worker(run.path) == 0, read_status(run.path)
    import json

    bundle = json.loads((run.path / "bundle.json").read_text())
    cal = bundle["confidence_calibration"]
    assert cal["n"] == read_metrics(run.path)["bridge"]["n_val"] > 0
    # the temperature is fitted against smoothed targets (calibration.smoothing), so the raw NLL may move either
    # way by a little; the fit itself is tested in tests/test_calibration.py
    from bioxbridge_core.calibration import T_BOUNDS

    assert T_BOUNDS[0] <= cal["temperature"] <= T_BOUNDS[1]
    assert np.isfinite(cal["nll_before"]) and np.isfinite(cal["nll_after"])
    conf = read_metrics(run.path)["bridge"]["test_confidence"]
    assert set(conf) == {"raw", "calibrated"}
    chance = read_metrics(run.path)["bridge"]["agreement_chance"]
    assert 0.5 <= chance <= 1.0  # share of the old model's most common class among 2


@pytest.mark.slow
def test_finished_workers_are_reaped(tmp_path, windows_file):
    run = RunStore(tmp_path).create("bridge", _config(windows_file, 1))
    pid = start_job(run.path, env=_env(0.0))
    _wait(lambda: read_status(run.path)["state"] in FINAL, what="job end")

    def gone() -> bool:  # a zombie keeps its /proc entry (state Z) until its parent collects it
        return not Path(f"/proc/{pid}").exists()

    _wait(gone, timeout_s=20, what="the worker to be reaped (no zombie left)")


def test_worker_gets_a_thread_count(tmp_path, windows_file, monkeypatch):
    from bioxbridge_core import jobs

    seen = {}

    class FakePopen:
        pid = 424242

        def __init__(self, cmd, env=None, **kw):
            seen.update(env)

        def wait(self):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(jobs.subprocess, "Popen", FakePopen)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("BIOXBRIDGE_THREADS", raising=False)
    run = RunStore(tmp_path).create("bridge", _config(windows_file, 1))
    start_job(run.path)
    assert int(seen["OMP_NUM_THREADS"]) >= 1 and seen["OMP_NUM_THREADS"] == seen["MKL_NUM_THREADS"]
    start_job(run.path, env={"OMP_NUM_THREADS": "3"})  # the caller's choice wins
    assert seen["OMP_NUM_THREADS"] == "3"
