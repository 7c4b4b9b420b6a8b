import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _bridge_toys import Boom, ToyHead, channels_encoder, paired_data, tokens_encoder  # noqa: E402

from bioxbridge_core.bridge import Bridge, BridgeConfig, BridgedModel  # noqa: E402
from bioxbridge_core.inference import predict_recording, predict_windows  # noqa: E402


def _model(monkeypatch):
    new, old = channels_encoder(), tokens_encoder()
    br = Bridge.from_positions(new.position("layer2"), old.position("blocks.1"), BridgeConfig(rank=2, n_prototypes=4))
    with torch.no_grad():
        br.B.normal_()

    def boom(*a, **k):
        raise Boom("old modality touched")

    monkeypatch.setattr(old, "prepare", boom)
    monkeypatch.setattr(old.stage_modules[0], "forward", boom)
    info = {"window_s": 2.0, "step_s": 2.0, "new_ch_names": ["PPG"],
            "preprocessing": {"bandpass": True, "normalisation": "zscore-window", "source": "x", "seed": 0}}
    return BridgedModel(new, old, br, ToyHead(16, ["calm", "stress"]), new_position="layer2",
                        old_position="blocks.1", info=info)


def test_predict_windows(monkeypatch):
    model = _model(monkeypatch)
    _, x_new, _, _ = paired_data(9)
    p = predict_windows(model, x_new, batch_size=4)
    assert p.shape == (9, 2)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)


def test_predict_recording_table(monkeypatch):
    pytest.importorskip("bioxbridge_core.data.pairing")
    from bioxbridge_core.data.recording import Recording

    model = _model(monkeypatch)
    sfreq, dur = 100.0, 30.0
    t = np.arange(int(sfreq * dur)) / sfreq
    rng = np.random.default_rng(0)
    ppg = np.sin(2 * np.pi * 1.2 * t) + 0.1 * rng.standard_normal(t.size)
    ppg[int(20 * sfreq):int(24 * sfreq)] = 0.0  # flat line: those windows must be dropped and reported
    rec = Recording(np.vstack([ppg, rng.standard_normal(t.size)]).astype(np.float32), sfreq, ["PPG", "ACC"],
                    ch_types=["PPG", "other"], source="synthetic.csv")
    df = predict_recording(model, rec, step_s=1.0)
    assert list(df.columns[:3]) == ["start_s", "end_s", "label"]
    assert [c for c in df.columns if c.startswith("p_")] == ["p_calm", "p_stress"]
    np.testing.assert_allclose(df["end_s"] - df["start_s"], 2.0)
    np.testing.assert_allclose(df[["p_calm", "p_stress"]].sum(axis=1), 1.0, rtol=1e-5)
    assert set(df["label"]) <= {"calm", "stress"}
    assert sum(df.attrs["dropped"].values()) > 0
    assert set(df.attrs["dropped"]) == {"flat_new"}  # the names ``windows`` uses (data.pairing.DROP_REASONS)
    assert len(df) + sum(df.attrs["dropped"].values()) == 29
    assert not ((df["start_s"] > 18.5) & (df["start_s"] < 24.0)).any()
    assert df.attrs["channels"] == ["PPG"]


def test_bundle_temperature_is_applied_and_keeps_the_class(monkeypatch):
    from bioxbridge_core.calibration import apply_temperature
    from bioxbridge_core.inference import calibration_of, predict_logits

    model = _model(monkeypatch)
    _, x_new, _, _ = paired_data(9)
    raw = predict_windows(model, x_new)
    logits = predict_logits(model, x_new, batch_size=4)
    np.testing.assert_allclose(apply_temperature(logits, 1.0), raw, rtol=1e-4, atol=1e-6)
    assert calibration_of(model) is None
    model.info["confidence_calibration"] = {"temperature": 5.0, "n": 10}
    cal = predict_windows(model, x_new)
    assert (cal.argmax(1) == raw.argmax(1)).all()
    assert cal.max(1).mean() < raw.max(1).mean()
    np.testing.assert_allclose(predict_windows(model, x_new, calibrated=False), raw, rtol=1e-5)
