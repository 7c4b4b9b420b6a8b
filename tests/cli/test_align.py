"""``python -m bioxbridge_core align`` end to end on the offline demo (subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]

pytest.importorskip("bioxbridge_core.data.demo")
pytest.importorskip("bioxbridge_core.models.registry")
pytest.importorskip("bioxbridge_core.models.heads")


def _run(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, BIOXBRIDGE_CACHE=str(cache), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "bioxbridge_core", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_align_demo_writes_files_and_summary(tmp_path):
    out = tmp_path / "al"
    proc = _run(["align", "--demo", "ecg-ppg", "--out", str(out), "--n-perm", "2", "--device", "cpu"],
                tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "alignment.json").read_text())
    assert {"new_positions", "old_positions", "probe_f1", "cka", "cka_biased", "null_cka", "selected",
            "n_pairs"} <= set(data)
    sel = data["selected"]
    assert sel["new_position"] in data["new_positions"] and sel["old_position"] in data["old_positions"]
    M, L = len(data["new_positions"]), len(data["old_positions"])
    assert np.array(data["cka"], dtype=float).shape == (M, L)
    with np.load(out / "features.npz", allow_pickle=False) as z:
        assert len(z.files) == M + L and z["new_0"].shape[0] == data["n_pairs"] == z["old_0"].shape[0]
    assert (out / "old_head.safetensors").is_file()
    assert f"selected: read {sel['new_position']} -> write {sel['old_position']}" in proc.stdout

    # a saved head is reused, and the same seed gives the same selection
    out2 = tmp_path / "al2"
    proc2 = _run(["align", "--demo", "ecg-ppg", "--out", str(out2), "--head", str(out / "old_head.safetensors"),
                  "--json", "--n-perm", "2", "--device", "cpu"], tmp_path / "cache")
    assert proc2.returncode == 0, proc2.stderr
    summary = json.loads(proc2.stdout)
    assert summary["selected"] == sel and summary["n_pairs"] == data["n_pairs"]
    assert not (out2 / "old_head.safetensors").exists()


def test_align_user_errors_are_one_line(tmp_path, capsys):
    from bioxbridge_core.cli import main

    rc = main(["align", "--manifest", str(tmp_path / "missing.csv"), "--old", "builtin:ecg", "--new",
               "builtin:ppg", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "missing.csv" in err and "Traceback" not in err
    rc = main(["align", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "--old ENCODER --new ENCODER" in capsys.readouterr().err
