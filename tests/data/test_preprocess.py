"""Filtering, quality masks and normalisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bioxbridge_core.errors import ConfigError
from bioxbridge_core.data.preprocess import (
    DEFAULT_BANDS, Preprocessing, bad_in_windows, filter_signal, flat_mask, nan_mask, normalise_windows,
    zscore_windows,
)


def _amp(x, sfreq, f):
    """Amplitude of the f Hz component (least squares on sine and cosine)."""
    t = np.arange(x.shape[-1]) / sfreq
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], 1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    return float(np.hypot(*coef)), coef


def test_band_defaults_and_nyquist_clipping():
    p = Preprocessing()
    assert p.band_for("ECG", 500) == DEFAULT_BANDS["ECG"] == (0.5, 40.0)
    assert p.band_for("PPG", 250) == (0.5, 8.0)
    assert p.band_for("EEG", 500) == (0.5, 45.0)
    assert p.band_for("EMG", 1000) == (20.0, 450.0)
    assert p.band_for("ECG", 50) == (0.5, 22.5)  # clipped to 0.45 x sfreq
    assert p.band_for("other", 250) is None
    assert Preprocessing(bandpass=False).band_for("ECG", 250) is None
    assert Preprocessing(bands={"ECG": (1.0, 30.0)}).band_for("ECG", 250) == (1.0, 30.0)


def test_bandpass_keeps_passband_removes_drift_and_mains_zero_phase():
    sfreq = 250.0
    t = np.arange(int(20 * sfreq)) / sfreq
    x = np.sin(2 * np.pi * 0.05 * t) * 3 + np.sin(2 * np.pi * 10 * t) + 0.8 * np.sin(2 * np.pi * 60 * t)
    y = filter_signal(x[None], sfreq, "ECG", Preprocessing())[0]
    core = slice(int(2 * sfreq), int(18 * sfreq))  # away from the edges
    a10, c_in = _amp(x[core], sfreq, 10)
    b10, c_out = _amp(y[core], sfreq, 10)
    assert abs(b10 - a10) < 0.05
    assert np.allclose(c_out, c_in, atol=0.05)  # zero phase: same sine/cosine mix
    assert _amp(y[core], sfreq, 60)[0] < 0.02
    assert abs(y[core].mean()) < 0.05


def test_notch_removes_mains():
    sfreq = 500.0
    t = np.arange(int(10 * sfreq)) / sfreq
    x = np.sin(2 * np.pi * 8 * t) + np.sin(2 * np.pi * 50 * t)
    y = filter_signal(x[None], sfreq, "EEG", Preprocessing(notch_hz=50.0))[0]
    core = slice(1000, 4000)
    assert _amp(y[core], sfreq, 50)[0] < 0.05
    assert _amp(y[core], sfreq, 8)[0] > 0.9


def test_nan_does_not_spread_through_filter():
    x = np.random.default_rng(0).standard_normal((2, 2500))
    x[1, 1000:1100] = np.nan
    y = filter_signal(x, 250.0, "ECG", Preprocessing())
    assert np.isfinite(y).all()
    m = nan_mask(x)
    assert m.sum() == 100 and m[1000] and not m[999]


def test_flat_mask_marks_long_constant_runs_only():
    sfreq = 100.0
    x = np.random.default_rng(1).standard_normal((2, 1000))
    x[0, 100:221] = 3.0      # 1.21 s constant -> flat
    x[1, 500:550] = -1.0     # 0.5 s constant -> fine
    m = flat_mask(x, sfreq, flat_s=1.0)
    assert m[100:221].all() and m.sum() == 121
    assert not m[500:550].any()
    assert not flat_mask(x, sfreq, flat_s=0).any()


def test_bad_in_windows():
    mask = np.zeros(1000, dtype=bool)
    mask[250] = True  # 2.5 s at 100 Hz
    bad = bad_in_windows(mask, 100.0, np.array([0.0, 2.0, 2.6, 5.0]), 1.0)
    assert bad.tolist() == [False, True, False, False]


def test_zscore_window_removes_gain_keeps_shape():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 2, 300)) + 4
    z = zscore_windows(x)
    assert z.dtype == np.float32
    assert np.allclose(z.mean(-1), 0, atol=1e-5) and np.allclose(z.std(-1), 1, atol=1e-4)
    assert np.allclose(zscore_windows(1000 * x + 7), z, atol=1e-4)
    assert np.all(zscore_windows(np.ones((1, 1, 10))) == 0)


def test_zscore_subject_uses_one_scale_per_subject():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal((4, 1, 100)), 5 * rng.standard_normal((4, 1, 100)) + 2])
    x[1] *= 3  # a louder window within subject a
    groups = np.array(["a"] * 4 + ["b"] * 4)
    z = normalise_windows(x, "zscore-subject", groups)
    for g in "ab":
        zs = z[groups == g]
        assert abs(zs.mean()) < 1e-5 and abs(zs.std() - 1) < 1e-4
    assert z[1].std() > 1.5 * z[0].std()  # within-subject amplitude difference kept
    assert np.array_equal(normalise_windows(x, "none"), x.astype(np.float32))


def test_config_round_trip_and_validation():
    p = Preprocessing(notch_hz=60.0, normalisation="zscore-subject", bands={"PPG": (0.3, 10)})
    d = json.loads(json.dumps(p.to_dict()))
    assert d["normalisation"] == "zscore-subject" and d["default_bands"]["ECG"] == [0.5, 40.0]
    assert Preprocessing.from_dict(d) == p
    with pytest.raises(ConfigError, match="normalisation"):
        Preprocessing(normalisation="zscore")
    with pytest.raises(ConfigError, match="flat_s"):
        Preprocessing(flat_s=-1)
    with pytest.raises(ConfigError, match="bands"):
        Preprocessing(bands={"ECG": (40, 1)})
