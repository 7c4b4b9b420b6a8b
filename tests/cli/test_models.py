from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "bioxbridge_core", "models", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_models_json():
    out = _run("--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    by_name = {r["name"]: r for r in rows}
    assert {"builtin:ecg", "builtin:ppg", "builtin:eeg"} <= set(by_name)
    for r in rows:
        assert {"name", "modality", "sampling_rate", "params", "positions"} <= set(r)
    assert by_name["builtin:ppg"]["sampling_rate"] == 50.0 and by_name["builtin:ppg"]["positions"][0] == "stem"


def test_models_table():
    out = _run()
    assert out.returncode == 0, out.stderr
    assert "builtin:eeg" in out.stdout and "positions" in out.stdout.splitlines()[0]
