"""Stress-Predict recipe (E4 EDA + BVP pairs, per-second labels) and full-data runs at 16 s / 20 s windows."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _e4 import install_e4_shim, write_e4  # noqa: E402

from bioxbridge_core.data.manifest import read_manifest  # noqa: E402
from bioxbridge_core.data.pairing import make_paired_windows  # noqa: E402
from bioxbridge_core.data.recipes import cinc2015_manifest, stress_predict_manifest  # noqa: E402
from bioxbridge_core.errors import ManifestError  # noqa: E402
from bioxbridge_core.spec import SignalSpec  # noqa: E402

EDA = SignalSpec("EDA", 4.0, 20.0, min_window_s=4.0, max_window_s=120.0)
PPG = SignalSpec("PPG", 50.0, 10.0, min_window_s=2.0, max_window_s=60.0)
T0 = 1_644_227_574.0
#: (seconds from the E4 start, label) per second, like labels.csv: rest, stress, rest, stress, rest
SEGMENTS = [(9, 130, 0), (130, 220, 1), (220, 300, 0), (300, 380, 1), (380, 590, 0)]


def _stress_folder(root: Path, subjects=("S02", "S04", "S06", "S08", "S10"), seconds=600) -> Path:
    rng = np.random.default_rng(3)
    rows = []
    for k, s in enumerate(subjects):
        t4, t64 = np.arange(seconds * 4) / 4, np.arange(seconds * 64) / 64
        stress4 = np.zeros_like(t4)
        for a, b, lab in SEGMENTS:
            stress4[(t4 >= a) & (t4 < b)] = lab
        eda = 2 + 0.5 * stress4 + 0.02 * rng.standard_normal(len(t4))
        bvp = np.sin(2 * np.pi * (1.1 + 0.2 * np.interp(t64, t4, stress4)) * t64) + 0.1 * rng.standard_normal(len(t64))
        write_e4(root / s / "EDA.csv", eda, 4.0, T0 + 1000 * k)
        write_e4(root / s / "BVP.csv", bvp, 64.0, T0 + 1000 * k)
        for a, b, lab in SEGMENTS:
            rows += [{"participant": int(s[1:]), "time_unix_s": int(T0 + 1000 * k + t), "label": lab}
                     for t in range(a, b)]
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def test_stress_predict_recipe_turns_per_second_labels_into_events(tmp_path, monkeypatch):
    root = _stress_folder(tmp_path / "sp")
    (root / "S12").mkdir()
    write_e4(root / "S12" / "BVP.csv", np.zeros(640), 64.0, T0)  # no EDA.csv: left out
    path = stress_predict_manifest(root, out_dir=tmp_path / "out")
    m = read_manifest(path)
    assert sorted(m.subjects) == ["S02", "S04", "S06", "S08", "S10"]
    assert (m.table["old_channels"] == ("EDA",)).all() and (m.table["new_channels"] == ("BVP",)).all()
    ev = pd.read_csv(tmp_path / "out" / "stress_predict_events" / "S04_events.tsv", sep="\t")
    assert ev.to_dict("list") == {"onset": [float(a) for a, _, _ in SEGMENTS],
                                  "duration": [float(b - a) for a, b, _ in SEGMENTS],
                                  "trial_type": ["rest", "stress", "rest", "stress", "rest"]}
    notes = pd.read_json(path.with_suffix(".notes.json"), typ="series")
    assert notes["left_out"] == [{"subject": "S12", "reason": "no EDA.csv"}]
    install_e4_shim(monkeypatch, tmp_path)
    pw = make_paired_windows(m, old_spec=EDA, new_spec=PPG, window_s=20.0, step_s=10.0, cache=False)
    assert pw.x_old.shape[1:] == (1, 80) and pw.x_new.shape[1:] == (1, 1000)
    for lab, (a, b) in (("stress", (130, 220)), ("stress", (300, 380))):
        got = pw.meta[(pw.meta["subject"] == "S02") & (pw.meta["label"] == lab) & (pw.meta["start_s"] >= a)
                      & (pw.meta["start_s"] < b)]["start_s"].tolist()
        assert got == list(np.arange(a, b - 20 + 1e-9, 10.0))  # anchored at the segment start, inside it
    assert pw.recordings[0]["offset_s"] == 0.0 and pw.recordings[0]["aligned_on"] == "start times"
    # the first 9 s carry no label: no labelled window starts before 9 s
    assert (pw.meta.loc[pw.meta["label"].notna(), "start_s"] >= 9).all()
    rev = read_manifest(stress_predict_manifest(root, out_dir=tmp_path / "rev", old="PPG", subjects=["S02"]))
    assert rev.table["old_channels"].iloc[0] == ("BVP",) and len(rev) == 1
    with pytest.raises(ManifestError, match=r"no subject folder\(s\) \['S99'\]"):
        stress_predict_manifest(root, out_dir=tmp_path / "x", subjects=["S99"])


# -- full development data (slow, skipped when ../shared/data is absent) ------------------------------
def _eda_encoder() -> str:
    """``builtin:eda`` when the built-in exists, else a small registered conv encoder for the test."""
    from bioxbridge_core.models.builtin import BUILTIN_NAMES
    from bioxbridge_core.models.base import SequentialAdapter, Stage
    from bioxbridge_core.models.registry import register_adapter, registered_adapters

    if "eda" in BUILTIN_NAMES:
        return "builtin:eda"
    if "test-eda" not in registered_adapters():
        def spec(path, *, ch_names=None):
            return SignalSpec("EDA", 4.0, 20.0, n_chans=1, min_window_s=4.0, max_window_s=120.0)

        @register_adapter("test-eda", modality="EDA", spec_fn=spec, description="test-only EDA conv net")
        def _build(path, *, ch_names=None):
            torch.manual_seed(0)
            stages = [Stage(f"conv{i}", nn.Sequential(nn.Conv1d(cin, cout, 3, padding=1), nn.GELU()),
                            "channels", "channels") for i, (cin, cout) in enumerate(((1, 16), (16, 32), (32, 32)))]
            return SequentialAdapter(spec(path), stages, name="test-eda")
    return "test-eda:none"


@pytest.mark.slow
@pytest.mark.realdata
def test_run_on_stress_predict(shared_data, tmp_path, monkeypatch):
    from bioxbridge_core.pipeline import PipelineConfig, run_pipeline

    root = shared_data / "stress_predict"
    if not (root / "labels.csv").is_file():
        pytest.skip(f"Stress-Predict not found at {root}")
    torch.set_num_threads(1)
    install_e4_shim(monkeypatch, tmp_path)
    subjects = ["S02", "S04", "S06", "S08", "S10", "S12"]
    path = stress_predict_manifest(root, out_dir=tmp_path, subjects=subjects)
    m = read_manifest(path, seed=0)
    assert m.label_names == ["rest", "stress"] and len(m.spans_table()) >= 6 * 7
    cfg = PipelineConfig(old=_eda_encoder(), new="builtin:ppg", manifest=str(path), window_s=20.0,
                         bridge={"epochs": 2})
    report = run_pipeline(cfg, tmp_path / "run")
    assert set(report["label_names"]) == {"rest", "stress"} and report["window_s"] == 20.0
    assert min(report["n_windows"].values()) > 10
    assert 0.0 <= report["bridge"]["metrics"]["balanced_accuracy"] <= 1.0


@pytest.mark.slow
@pytest.mark.realdata
def test_run_on_cinc_with_the_alarm_span_and_16_s_windows(shared_data, tmp_path):
    from bioxbridge_core.pipeline import PipelineConfig, prepare_data, run_pipeline

    torch.set_num_threads(1)
    root = shared_data / "cinc2015_vt"
    alarms = pd.read_csv(root / "alarms.csv")
    records = alarms[alarms.result == 1].recordname.tolist()[:6] + alarms[alarms.result == 0].recordname.tolist()[:6]
    path = cinc2015_manifest(root, out_dir=tmp_path, records=records)
    cfg = PipelineConfig(old="builtin:ecg", new="builtin:ppg", manifest=str(path), window_s=16.0, step_s=4.0,
                         bridge={"epochs": 2})
    data = prepare_data(cfg)
    meta = data.windows.meta
    lab = meta[meta["label"].notna()]
    assert (lab["start_s"] == 284.0).all() and lab["recording"].is_unique  # one window per record, 284-300 s
    # every labelled record gives its one alarm window, or says why not (NaN/flat window, dropped span)
    n_labelled_records = int(read_manifest(path).table["label"].notna().sum())
    lost = sum(d["n"] for d in data.windows.dropped_windows if d["label"] is not None)
    assert len(lab) + lost + len(data.windows.dropped_spans) == n_labelled_records
    report = run_pipeline(cfg, tmp_path / "run")  # the 16 s / 4 s ECG -> PPG run that used to crash
    assert report["window_s"] == 16.0 and report["n_windows"]["pair"] > 100
    assert report["bridge"]["epochs_run"] == 2
