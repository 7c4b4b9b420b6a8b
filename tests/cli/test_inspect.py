"""``python -m bioxbridge_core inspect``: JSON on success, one stderr line and exit 2 on unreadable files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bioxbridge_core.cli.inspect_cmd import channel_quality, flat_fraction
from bioxbridge_core.data.recording import Recording

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "bioxbridge_core", "inspect", *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_inspect_good_fixture_prints_json(fixtures_dir):
    path = fixtures_dir / "cinc2015_vt" / "v143l.hea"
    out = run_cli(path, "--channels", "PLETH;II")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["sfreq"] == 250.0 and info["n_times"] == 15000 and info["duration_s"] == 60.0
    assert [c["name"] for c in info["channels"]] == ["PLETH", "II"]
    assert [c["type"] for c in info["channels"]] == ["PPG", "ECG"]
    assert [c["unit"] for c in info["channels"]] == ["NU", "mV"]
    assert [q["name"] for q in info["quality"]] == ["PLETH", "II"]
    for q in info["quality"]:
        assert q["nan_fraction"] == 0.0 and 0.0 <= q["flat_fraction"] < 0.5 and q["std"] > 0


def test_inspect_reports_flat_and_nan(tmp_path):
    from bioxbridge_core.data.readers import write_recording

    x = np.sin(np.arange(1000) / 5.0)
    flat = x.copy()
    flat[200:600] = 0.3  # 4 s flat at 100 Hz
    gaps = x.copy()
    gaps[:100] = np.nan
    write_recording(Recording(np.vstack([flat, gaps]), 100.0, ["ECG I", "PPG"], units=["mV", "NU"]),
                    tmp_path / "q.npz")
    out = run_cli(tmp_path / "q.npz")
    assert out.returncode == 0, out.stderr
    q = {c["name"]: c for c in json.loads(out.stdout)["quality"]}
    assert q["ECG I"]["flat_fraction"] == pytest.approx(0.4, abs=0.002)
    assert q["PPG"]["nan_fraction"] == pytest.approx(0.1)
    assert q["PPG"]["flat_fraction"] == 0.0


@pytest.mark.parametrize("case", ["truncated", "garbage", "missing-channel", "absent", "no-dat"])
def test_inspect_unreadable_file_one_line_exit_2(fixtures_dir, tmp_path, case):
    edf = (fixtures_dir / "eegmat" / "Subject00_2.edf").read_bytes()
    args: list = []
    if case == "truncated":
        path = tmp_path / "cut.edf"
        path.write_bytes(edf[:20000])
    elif case == "garbage":
        path = tmp_path / "noise.edf"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif case == "missing-channel":
        path = tmp_path / "ok.edf"
        path.write_bytes(edf)
        args = ["--channels", "EEG Cz;ECG ECG"]
    elif case == "absent":
        path = tmp_path / "absent.hea"
    else:
        path = tmp_path / "v100s.hea"
        path.write_bytes((fixtures_dir / "cinc2015_vt" / "v100s.hea").read_bytes())
    out = run_cli(path, *args)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and path.name in lines[0]
    assert "Traceback" not in out.stderr


def test_flat_fraction_units():
    x = np.r_[np.zeros(300), np.arange(1.0, 701.0)]
    assert flat_fraction(x, 100.0) == pytest.approx(0.3)
    assert flat_fraction(x, 100.0, min_s=5.0) == 0.0  # a 3 s run is shorter than 5 s
    assert flat_fraction(np.full(50, np.nan), 10.0) == 0.0
    rec = Recording(np.vstack([x, np.full(1000, np.nan)]), 100.0, ["a", "b"])
    q = channel_quality(rec)
    assert q[1]["nan_fraction"] == 1.0 and q[1]["min"] is None and q[0]["max"] == 700.0


def test_inspect_shows_reader_warnings_and_header(tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "data"))
    from _edf_builder import Sig, write_edf

    path = write_edf(tmp_path / "lat.edf", [Sig("EEG F\xf6".encode("latin-1"), np.zeros(200), 100),
                                            Sig("ECG", np.zeros(400), 200, dim="mV")], n_records=2)
    out = run_cli(path, "--channels", "EEG F\xf6")
    assert out.returncode == 0, out.stderr
    assert "Latin-1" in out.stderr and "lat.edf" in out.stderr  # shown, never muted
    info = json.loads(out.stdout)
    assert info["warnings"] and info["header"][1] == {"name": "ECG", "sfreq": 200.0, "unit": "mV", "type": "ECG",
                                                      "n_samples": 400, "usable": True, "problems": [],
                                                      "flags": []}
    head = json.loads(run_cli(path, "--header").stdout)
    assert head["rates"] == {"200": ["ECG"], "100": ["EEG F\xf6"]} and "quality" not in head


def test_library_and_file_errors_become_one_line(monkeypatch, capsys):
    import pandas as pd

    from bioxbridge_core import cli
    from bioxbridge_core.cli import inspect_cmd

    def boom(*a, **k):
        raise pd.errors.ParserError("Error tokenizing data.\nC error: Expected 1 fields")

    monkeypatch.setattr(inspect_cmd, "inspect_file", boom)
    assert cli.main(["inspect", "x.csv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: ParserError: Error tokenizing data. C error: Expected 1 fields"]

    def missing(*a, **k):
        raise FileNotFoundError(2, "No such file or directory", "m.csv")

    monkeypatch.setattr(inspect_cmd, "inspect_file", missing)
    assert cli.main(["inspect", "x.csv"]) == 2
    assert capsys.readouterr().err.strip() == "error: m.csv: No such file or directory"

    def bug(*a, **k):
        raise KeyError("a bug keeps its traceback")

    monkeypatch.setattr(inspect_cmd, "inspect_file", bug)
    with pytest.raises(KeyError):
        cli.main(["inspect", "x.csv"])


def test_slow_channels_get_the_windowing_minimum_flat_duration():
    """A skin temperature at 4 Hz in 0.01 degC steps repeats values for seconds: not a flat line (the 1 s
    rule called the Stress-Predict TEMP.csv 100 % flat); EDA gets MIN_FLAT_S too; a PPG keeps 1 s."""
    from bioxbridge_core.data.preprocess import MIN_FLAT_S

    sfreq, n = 4.0, 4 * 600
    t = np.arange(n) / sfreq
    temp = np.round(33.0 + 0.5 * np.sin(2 * np.pi * t / 600.0), 2)  # drifts ~0.005 degC/s: runs of seconds
    stuck = temp.copy()
    stuck[: int(120 * sfreq)] = 33.0  # a sensor stuck for 120 s
    eda = np.round(0.5 + 0.001 * t, 2)  # 0.01 uS steps: 10 s runs
    ppg = np.sin(2 * np.pi * 1.2 * t)
    ppg[:8] = 0.0  # 2 s constant
    rec = Recording(np.vstack([temp, stuck, eda, ppg]).astype(np.float64), sfreq, ["TEMP", "Skin temp", "EDA", "BVP"])
    q = {c["name"]: c for c in channel_quality(rec)}
    assert flat_fraction(temp, sfreq) > 0.5  # what the plain 1 s rule says
    assert q["TEMP"]["flat_fraction"] == 0.0 and f"{MIN_FLAT_S['TEMP']:g} s" in q["TEMP"]["flat_rule"]
    assert q["Skin temp"]["flat_fraction"] == pytest.approx(120 / 600, abs=0.01)
    assert "TEMP" in q["Skin temp"]["flat_rule"]
    assert q["EDA"]["flat_rule"].startswith(f"constant for >= {MIN_FLAT_S['EDA']:g} s (EDA")
    assert q["EDA"]["flat_fraction"] > 0  # 10 s runs are longer than EDA's 5 s
    assert q["BVP"]["flat_fraction"] == pytest.approx(8 / n) and q["BVP"]["flat_rule"] == "constant for >= 1 s (default)"
