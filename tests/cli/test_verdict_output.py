"""``run`` prints one verdict per stage; ``predict`` shows the run's held-out numbers and warns when the
bridge is not trustworthy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bioxbridge_core.calibration import T_BOUNDS
from bioxbridge_core.cli import main as cli_main
from bioxbridge_core.cli.predict_cmd import run_quality
from bioxbridge_core.pipeline import format_verdicts
from bioxbridge_core.verdicts import run_verdicts, temperature_at_bound, trust_warning

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "cases"


def _alignment(cka: float, null: float):
    return SimpleNamespace(new_positions=["a", "b"], old_positions=["x"], new_position="b", old_position="x",
                           cka=np.array([[0.1], [cka]]), null_cka=np.array([[0.0], [null]]),
                           null_cka_std=np.array([[0.01], [0.01]]), n_pairs=120, probe_cv="grouped", notes=[])


def _report(agreement: float, *, chance_agreement: float = 0.5, temperature: float = 1.3, test_bacc: float = 0.8):
    history = [{"epoch": e, "val_loss": 1.0 - 0.1 * e, "val_agreement": agreement} for e in (1, 2, 3)]
    report = {"label_names": ["rest", "task"], "old_model": {"assessment": None},
              "oracle": {"metrics": {"balanced_accuracy": 0.9, "n": 200}},
              "bridge": {"metrics": {"balanced_accuracy": test_bacc, "f1_macro": test_bacc, "n": 200},
                         "agreement_chance": chance_agreement, "n_val": 24, "epochs": 3,
                         "confidence_calibration": {"temperature": temperature}}}
    return report, history


def test_a_bridge_at_chance_gets_a_stop_line_and_a_warning():
    report, history = _report(0.50, temperature=9999.6)
    report["verdicts"] = run_verdicts(report, alignment=_alignment(0.05, 0.04), history=history)
    assert set(report["verdicts"]) == {"old model", "alignment", "bridge"}
    assert report["verdicts"]["bridge"]["level"] == "stop"
    assert report["verdicts"]["alignment"]["level"] == "stop"
    text = format_verdicts(report)
    lines = text.splitlines()
    assert lines[0].startswith("old model: GO")
    assert lines[1].startswith("alignment: STOP") and "0.050" in lines[1]  # the deciding CKA
    assert lines[2].startswith("bridge: STOP") and "50%" in lines[2]
    assert lines[3].startswith("warning: predictions are not trustworthy") and "9999.6" in lines[3]


def test_a_good_bridge_goes_without_a_warning():
    report, history = _report(0.95, chance_agreement=0.5)
    report["verdicts"] = run_verdicts(report, alignment=_alignment(0.6, 0.05), history=history)
    text = format_verdicts(report)
    assert [ln.split(":")[1].split()[0] for ln in text.splitlines()] == ["GO", "GO", "GO"]
    assert "warning" not in text


def test_temperature_bound_alone_warns():
    assert temperature_at_bound({"temperature": T_BOUNDS[1]}) and temperature_at_bound({"temperature": T_BOUNDS[0]})
    assert not temperature_at_bound({"temperature": 2.0}) and not temperature_at_bound(None)
    assert "temperature hit its bound" in trust_warning({}, {"temperature": T_BOUNDS[1] * 0.999})
    assert trust_warning({}, {"temperature": 1.0}) is None


def test_run_quality_reads_a_run_folder_and_an_app_run(tmp_path):
    report, history = _report(0.50, temperature=9999.6, test_bacc=0.81)
    report["verdicts"] = run_verdicts(report, alignment=_alignment(0.5, 0.04), history=history)
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text(json.dumps(report))
    held, warning = run_quality(run)
    assert held["bridge_balanced_accuracy"] == 0.81 and held["n_test_windows"] == 200
    assert held["bridge_verdict"] == "stop" and "bridge verdict is STOP" in warning
    app = tmp_path / "app"
    app.mkdir()  # an app run: metrics.json + history.json, no verdict stored
    (app / "metrics.json").write_text(json.dumps({"bridge": {"agreement_chance": 0.5, "n_val": 400, "epochs": 3,
                                                             "test": {"balanced_accuracy": 0.9, "n": 50}}}))
    (app / "history.json").write_text(json.dumps(_report(0.95)[1]))
    held, warning = run_quality(app, {"confidence_calibration": {"temperature": 1.2}})
    assert held == {"bridge_balanced_accuracy": 0.9, "n_test_windows": 50, "bridge_verdict": "go"} and warning is None
    assert run_quality(tmp_path / "empty") == ({}, None)


def _toy_bundle():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from _bridge_toys import ToyHead, channels_encoder, tokens_encoder

    from bioxbridge_core.bridge import Bridge, BridgeConfig, BridgedModel

    new, old = channels_encoder(), tokens_encoder()
    br = Bridge.from_positions(new.position("layer2"), old.position("blocks.1"), BridgeConfig(rank=2, n_prototypes=4))
    info = {"window_s": 2.0, "step_s": 2.0, "new_ch_names": ["Pleth"],
            "confidence_calibration": {"temperature": 9999.6}}
    return BridgedModel(new, old, br, ToyHead(16, ["calm", "stress"]), new_position="layer2",
                        old_position="blocks.1", info=info)


def test_predict_prints_held_out_numbers_and_the_warning(tmp_path, capsys, monkeypatch):
    import bioxbridge_core.runs.bundle as bundle

    monkeypatch.setattr(bundle, "load_bundle", lambda *a, **k: _toy_bundle())
    report, history = _report(0.50, test_bacc=0.81)
    report["verdicts"] = run_verdicts(report, alignment=_alignment(0.5, 0.04), history=history)
    (tmp_path / "report.json").write_text(json.dumps(report))
    code = cli_main(["predict", "--run", str(tmp_path), str(CASES / "C06" / "pleth_ecg.edf"), "--channels", "Pleth"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)  # stdout stays one JSON line
    assert result["held_out"]["bridge_balanced_accuracy"] == pytest.approx(0.81)
    assert "held-out" in out.err and "0.810" in out.err and "on 200 test windows" in out.err
    warn = [ln for ln in out.err.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "bridge verdict is STOP" in warn[0] and "temperature hit its bound" in warn[0]
    assert result["warning"] == warn[0][len("warning: "):]
