"""``python -m bioxbridge_core windows`` as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

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
