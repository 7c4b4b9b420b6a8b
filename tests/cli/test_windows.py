"""``python -m bioxbridge_core windows`` as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bioxbridge_core.data.windows import PairedWindows

REPO = Path(__file__).resolve().parents[2]
SFREQ_ARGS = ["--old-sfreq", "100", "--old-modality", "ECG", "--new-sfreq", "50", "--new-modality", "PPG"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bioxbridge_core", "windows", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)


def test_demo_counts_table_and_saved_windows(tmp_path):
    out = tmp_path / "w.npz"
    r = _cli("--demo", "ecg-ppg", *SFREQ_ARGS, "--seed", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "windows per split and class" in r.stdout
    for word in ("train", "pair", "test", "rest", "stress", "exercise", "labelled spans per split and class: none"):
        assert word in r.stdout, r.stdout
    pw = PairedWindows.load(out)
    assert pw.x_old.shape[1:] == (1, 1000) and pw.x_new.shape[1:] == (1, 500)
    total_line = [ln for ln in r.stdout.splitlines() if ln.startswith("train")][0]
    assert int(total_line.split()[-1]) == int((pw.meta["split"] == "train").sum())


def test_json_with_encoder_names(tmp_path):
    r = _cli("--demo", "eeg-ecg", "--old", "builtin:eeg", "--new", "builtin:ecg", "--json", "--step-seconds", "5")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["label_names"] == ["rest", "task"] and summary["step_s"] == 5.0
    assert summary["old"]["shape"][1] == 8 and summary["new"]["shape"][1:] == [1, 1000]
    subs = summary["subjects_per_split"]
    assert not set(subs["train"]) & set(subs["test"])
    assert all(summary["per_split"][s]["rest"] > 0 for s in ("train", "test"))


def test_broken_manifest_exits_2_with_one_line(tmp_path):
    pd.DataFrame([{"path": "missing.edf", "subject": "a", "old_channels": "ECG", "new_channels": "PPG"}]).to_csv(
        tmp_path / "bad.csv", index=False)
    r = _cli("--manifest", str(tmp_path / "bad.csv"), *SFREQ_ARGS)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "bad.csv, row 1: file not found" in lines[0]
    r = _cli("--manifest", str(tmp_path / "bad.csv"), "--old-sfreq", "100")
    assert r.returncode == 2 and "--old-modality" in r.stderr


# -- window lengths: refused before any work, anywhere ----------------------------------------------
def _main(*argv: str):
    from bioxbridge_core.cli import main

    return main(list(argv))


def _no_work(monkeypatch):
    """Make every step that reads data or trains fail the test if reached."""
    from bioxbridge_core.data import demo, manifest, pairing
    from bioxbridge_core.models import heads

    def boom(*a, **k):
        raise AssertionError("work started before the window length was checked")

    for mod, name in ((pairing, "_read"), (pairing, "make_paired_windows"), (manifest, "read_manifest"),
                      (heads, "train_task_head"), (demo, "demo_manifest")):
        monkeypatch.setattr(mod, name, boom)


def test_cli_refuses_a_window_outside_the_encoders_range_before_any_work(tmp_path, monkeypatch, capsys):
    from bioxbridge_core.models.registry import encoder_spec

    _no_work(monkeypatch)
    lo, hi = encoder_spec("builtin:ppg").window_range
    cases = [
        ("windows", "--demo", "ecg-ppg", "--old", "builtin:ecg", "--new", "builtin:ppg", "--window-seconds", "90"),
        ("run", "--demo", "ecg-ppg", "--old", "builtin:ecg", "--new", "builtin:ppg", "--window-seconds", "1",
         "--out", str(tmp_path / "run"), "--no-progress"),
        ("align", "--demo", "ecg-ppg", "--window-seconds", "90", "--out", str(tmp_path / "al")),
        ("windows", "--manifest", str(tmp_path / "m.csv"), "--old", "builtin:ecg", "--new", "builtin:ppg",
         "--window-seconds", "4", "--step-seconds", "0"),
    ]
    for argv in cases:
        assert _main(*argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), err
        assert f"{lo:g}-{hi:g} s" in err[0] or "step" in err[0], err
    assert not (tmp_path / "run").exists() and not (tmp_path / "al").exists()


def test_predict_refuses_a_bundle_window_outside_the_new_encoders_range(tmp_path, monkeypatch, capsys):
    from bioxbridge_core._io import atomic_write_json
    from bioxbridge_core.data import readers
    from bioxbridge_core.runs import schema as S

    monkeypatch.setattr(readers, "read_recording", lambda *a, **k: pytest.fail("the recording was read"))
    atomic_write_json(tmp_path / S.BUNDLE, S.with_schema({
        "old_encoder": "builtin:ecg", "new_encoder": "builtin:ppg", "old_position": "norm",
        "new_position": "layer4.1", "label_names": ["a", "b"], "window_s": 120.0, "bridge_config": {}}))
    assert _main("predict", "--run", str(tmp_path), str(tmp_path / "x.edf")) == 2
    err = capsys.readouterr().err
    assert "encoder 'builtin:ppg' accepts windows of 2-60 s; 120 s was asked for" in err
    assert _main("predict", "--run", str(tmp_path), str(tmp_path / "x.edf"), "--step-seconds", "-1") == 2
    assert "--step-seconds" in capsys.readouterr().err


def test_engine_entry_points_refuse_before_the_head_is_trained(tmp_path, monkeypatch):
    from bioxbridge_core.errors import ConfigError
    from bioxbridge_core.pipeline import PipelineConfig, check_windows, prepare_data, run_pipeline

    _no_work(monkeypatch)
    assert check_windows("builtin:ecg", "builtin:ppg", 16.0, 4.0) == (16.0, 4.0)
    cfg = PipelineConfig(old="builtin:ecg", new="builtin:ppg", demo="ecg-ppg", window_s=75.0)
    for fn in (lambda: prepare_data(cfg), lambda: run_pipeline(cfg, tmp_path / "out")):
        with pytest.raises(ConfigError, match="encoder 'builtin:ecg' accepts windows of 2-60 s; 75 s"):
            fn()
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_run_at_16_s_on_the_cinc_fixture_then_predict(tmp_path, fixtures_dir):
    """The whole pipeline at a non-default window: one labelled window per alarm span, a bundle that
    loads at 16 s, predictions on the new modality alone."""
    from bioxbridge_core.data.recipes import cinc2015_manifest
    from bioxbridge_core.data.readers import read_recording
    from bioxbridge_core.inference.predict import predict_recording
    from bioxbridge_core.pipeline import PipelineConfig, prepare_data, run_pipeline
    from bioxbridge_core.runs.bundle import load_bundle

    man = cinc2015_manifest(fixtures_dir / "cinc2015_vt", out_dir=tmp_path, label_start=44, label_end=60)
    cfg = PipelineConfig(old="builtin:ecg", new="builtin:ppg", manifest=str(man), window_s=16.0, step_s=8.0,
                         seed=1, bridge={"epochs": 1, "batch_size": 8})
    data = prepare_data(cfg)
    lab = data.windows.meta[data.windows.meta["label"].notna()]
    assert lab.groupby("recording").size().tolist() == [1] * 6 and (lab["start_s"] == 44.0).all()
    assert data.old_encoder.spec.window_s == 16.0 and data.new_encoder.spec.window_s == 16.0
    report = run_pipeline(cfg, tmp_path / "run")
    assert report["window_s"] == 16.0 and report["n_windows"]["train"] == 2
    model = load_bundle(tmp_path / "run", device="cpu")
    assert model.new_encoder.spec.window_s == 16.0
    rec = read_recording(fixtures_dir / "cinc2015_vt" / "v100s.hea").pick(["PLETH"])
    frame = predict_recording(model, rec)
    assert len(frame) and ((frame["end_s"] - frame["start_s"]) == 16.0).all()


def test_manifest_may_be_a_data_folder_that_a_recipe_fits(fixtures_dir, tmp_path, monkeypatch, capsys):
    """``--manifest FOLDER``: the app's recipe (data.recipes.detect_recipe) writes the manifest; stderr says
    which recipe ran; the old side is the old encoder's modality."""
    monkeypatch.setenv("BIOXBRIDGE_CACHE", str(tmp_path / "cache"))
    assert _main("windows", "--manifest", str(fixtures_dir / "eegmat"), "--old", "builtin:eeg", "--new",
                 "builtin:ecg", "--no-cache", "--json") == 0
    out = capsys.readouterr()
    assert "eegmat: eegmat recipe (" in out.err and "old side EEG" in out.err
    summary = json.loads(out.out)
    assert Path(summary["manifest"]).name == "eegmat_old-eeg.csv" and summary["n_windows"] > 0
    assert summary["old"]["channels"][0].startswith("EEG") and summary["new"]["channels"] == ["ECG ECG"]
    other = tmp_path / "eegmat"  # another folder of the same layout gets its own manifest
    shutil.copytree(fixtures_dir / "eegmat", other)
    assert _main("windows", "--manifest", str(other), "--old", "builtin:eeg", "--new", "builtin:ecg",
                 "--no-cache", "--json") == 0
    second = json.loads(capsys.readouterr().out)
    assert second["manifest"] != summary["manifest"] and Path(summary["manifest"]).is_file()
    assert str(other) in Path(second["manifest"]).read_text() and str(other) not in Path(summary["manifest"]).read_text()


def test_manifest_folder_without_a_recipe_lists_the_recipes(tmp_path, capsys):
    from bioxbridge_core.data.recipes import RECIPES

    folder = tmp_path / "mystery"
    folder.mkdir()
    (folder / "a.csv").write_text("x\n1\n")
    for cmd, extra in (("windows", []), ("run", ["--out", str(tmp_path / "run")])):
        assert _main(cmd, "--manifest", str(folder), "--old", "builtin:ecg", "--new", "builtin:ppg", *extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: mystery: a folder, but no dataset recipe fits") and "\n" not in err
        assert all(name in err for name in RECIPES) and str(tmp_path) not in err
