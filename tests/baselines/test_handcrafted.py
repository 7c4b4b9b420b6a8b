import numpy as np
import pytest

from bioxbridge_core.baselines.handcrafted import eda_features, handcrafted_features
from bioxbridge_core.errors import ConfigError


def test_eda_features_see_tonic_level_and_responses():
    sfreq, t = 4.0, np.arange(0, 60, 0.25)
    flat = 2.0 + 0.001 * t
    scr = flat + sum(0.3 * np.exp(-(t - t0) / 3.0) * (t >= t0) for t0 in (10, 25, 40))
    f_flat, f_scr = eda_features(flat, sfreq), eda_features(scr, sfreq)
    assert f_flat[0] == pytest.approx(2.03, abs=0.05)
    assert f_scr[2] > f_flat[2]  # more phasic peaks per minute
    assert f_scr[3] > f_flat[3]


def test_dispatch_by_modality_and_refusal():
    x = np.random.default_rng(0).normal(size=(3, 2, 200)).astype(np.float32)
    assert handcrafted_features(x, modality="EEG", sfreq=100.0).shape == (3, 8)
    with pytest.raises(ConfigError, match="EMG"):
        handcrafted_features(x, modality="EMG", sfreq=100.0)
