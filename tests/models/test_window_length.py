"""Any window length: specs, positions, the bridge's size and cached targets follow the window in use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bioxbridge_core.bridge import BridgeConfig
from bioxbridge_core.errors import ConfigError
from bioxbridge_core.models import registry
from bioxbridge_core.models.registry import encoder_spec, load_encoder
from bioxbridge_core.training import BridgeTrainer, compute_cache

MONTAGE = ["Fp1", "C3", "Cz", "O1"]
CH = {"builtin:ecg": None, "builtin:ppg": None, "builtin:eeg": MONTAGE, "builtin:eda": None}


def _params(names, windows):
    return [pytest.param(n, w) for n in names for w in windows]


def _walk(enc, x):
    """Shapes per stage (batch excluded) from really running ``x`` through every stage."""
    shapes, h = [], enc.prepare(x)
    with torch.no_grad():
        for st in enc.stages():
            inp = tuple(h.shape[1:])
            h = st.module(h)
            shapes.append((inp, tuple(h.shape[1:])))
    return shapes


@pytest.mark.parametrize("name, window", _params(["builtin:ecg", "builtin:ppg", "builtin:eeg", "builtin:eda"], [4.0, 16.0]))
def test_positions_are_found_at_the_window_in_use(name, window):
    enc = load_encoder(name, device="cpu", pretrained=False, ch_names=CH[name], window_s=window)
    assert enc.spec.window_s == window and enc.spec.n_times == int(round(window * enc.spec.sfreq))
    assert encoder_spec(name, ch_names=CH[name], window_s=window) == enc.spec
    x = torch.randn(2, enc.spec.n_chans, enc.spec.n_times)
    real = _walk(enc, x)
    assert [(p.in_shape, p.out_shape) for p in enc.positions] == real
    default = load_encoder(name, device="cpu", pretrained=False, ch_names=CH[name])
    assert default.spec.window_s == encoder_spec(name).window_s  # the cached default is untouched
    longer = window > default.spec.window_s
    assert (enc.positions[-1].out_tokens > default.positions[-1].out_tokens) == longer


@pytest.mark.parametrize("window", [4.0, 30.0])
def test_eeg_encoder_runs_at_4_and_30_seconds(window):
    enc = load_encoder("builtin:eeg", device="cpu", pretrained=False, ch_names=MONTAGE, window_s=window)
    x = torch.randn(3, len(MONTAGE), int(round(window * enc.spec.sfreq)))
    with torch.no_grad():
        out = enc.last_tokens(x)
    assert out.shape[0] == 3 and torch.isfinite(out).all()
    assert enc.positions[-1].out_tokens == out.shape[1]


def test_window_outside_the_range_is_refused_before_weights_are_read(monkeypatch):
    monkeypatch.setattr(registry, "_load_builtin_weights", lambda *a: pytest.fail("weights were read"))
    registry.clear_cache()
    lo, hi = encoder_spec("builtin:ecg").window_range
    for bad in (lo / 2, hi * 2):
        with pytest.raises(ConfigError, match=rf"encoder 'builtin:ecg' accepts windows of {lo:g}-{hi:g} s; "
                                              rf"{bad:g} s was asked for"):
            load_encoder("builtin:ecg", device="cpu", window_s=bad)
        with pytest.raises(ConfigError, match=rf"{lo:g}-{hi:g} s"):
            encoder_spec("builtin:ecg", window_s=bad)
    registry.clear_cache()


PAIRS = [("builtin:ecg", "builtin:ppg"), ("builtin:ppg", "builtin:ecg"), ("builtin:eeg", "builtin:ecg"),
         ("builtin:ecg", "builtin:eeg")]


def _pair_params():
    out = []
    for old, new in PAIRS:
        for w in (4.0, 16.0):
            out.append(pytest.param(old, new, w, id=f"{old[8:]}->{new[8:]}@{w:g}s"))
    return out


def _windows(enc, n, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, enc.spec.n_chans, enc.spec.n_times)).astype(np.float32)


@pytest.mark.parametrize("old_name, new_name, window", _pair_params())
def test_bridge_size_and_cached_targets_follow_the_window(old_name, new_name, window):
    old = load_encoder(old_name, device="cpu", pretrained=False, ch_names=CH[old_name], window_s=window)
    new = load_encoder(new_name, device="cpu", pretrained=False, ch_names=CH[new_name], window_s=window)
    x_old, x_new = _windows(old, 8, 0), _windows(new, 8, 1)
    l_pos, m_pos = old.write_positions[len(old.write_positions) // 2], new.read_positions[-1]
    cache = compute_cache(old, new, x_old, x_new, new_position=m_pos.name, old_position=l_pos.name, batch_size=4)
    with torch.no_grad():
        real_last = old.forward(torch.from_numpy(x_old[:1]))
    assert tuple(cache.target.shape) == (8, *real_last.shape[1:]) == (8, *old.positions[-1].out_shape)
    tr = BridgeTrainer(BridgeConfig(epochs=1, batch_size=4, rank=2, n_prototypes=4, val_fraction=0.25)).fit(
        old, new, x_old, x_new, new_position=m_pos.name, old_position=l_pos.name,
        groups=np.repeat(["a", "b", "c", "d"], 2))
    real_in = _walk(old, torch.from_numpy(x_old[:1]))[l_pos.index][0]
    assert tr.bridge_.n_tokens_old == l_pos.in_tokens == real_in[0 if l_pos.in_layout == "tokens" else 1]
    assert np.isfinite(tr.history_[0]["train_loss"])


def test_encoders_loaded_at_their_default_train_on_16_s_windows():
    """ECG -> PPG, 16 s windows: the bridge used to be sized at 10 s ("tensor a (12800) must match (20480)")."""
    old = load_encoder("builtin:ecg", device="cpu", pretrained=False)
    new = load_encoder("builtin:ppg", device="cpu", pretrained=False)
    x_old = np.random.default_rng(0).standard_normal((8, 1, 1600)).astype(np.float32)
    x_new = np.random.default_rng(1).standard_normal((8, 1, 800)).astype(np.float32)
    tr = BridgeTrainer(BridgeConfig(epochs=1, batch_size=4, rank=2, n_prototypes=4)).fit(
        old, new, x_old, x_new, new_position="layer4.1", old_position="norm", groups=np.repeat(list("abcd"), 2))
    assert old.spec.window_s == 16.0 and new.spec.window_s == 16.0
    assert tr.bridge_.n_tokens_old == 160 and np.isfinite(tr.history_[0]["train_loss"])
    with pytest.raises(ConfigError, match="accepts windows of 2-60 s; 0.5 s"):
        BridgeTrainer(BridgeConfig(epochs=1)).fit(old, new, x_old[..., :50], x_new, new_position="layer4.1",
                                                  old_position="norm")


def test_listed_encoders_show_their_window_range():
    rows = {d["name"]: d for d in registry.list_encoders()}
    for name in ("builtin:ecg", "builtin:ppg", "builtin:eeg"):
        assert rows[name]["window_range"] == list(encoder_spec(name).window_range)


def test_adapters_built_for_one_window_get_it_from_load_encoder(tmp_path):
    """A patch model (cbramod, 1 s patches, 1-30 s) is built at the asked window; its own checks apply."""
    from _fm_checkpoints import write
    from bioxbridge_core.errors import EncoderError

    path = write("cbramod", tmp_path)
    chans = ["C3", "CZ", "C4"]
    m = load_encoder(f"cbramod:{path}", device="cpu", ch_names=chans, window_s=4.0)
    assert m.spec.window_s == 4.0 and encoder_spec(f"cbramod:{path}", ch_names=chans, window_s=4.0) == m.spec
    x = torch.randn(1, 3, m.spec.n_times)
    assert [(p.in_shape, p.out_shape) for p in m.positions] == _walk(m, x)
    lo, hi = encoder_spec(f"cbramod:{path}").window_range
    with pytest.raises(ConfigError, match=rf"accepts windows of {lo:g}-{hi:g} s; {hi + 10:g} s"):
        load_encoder(f"cbramod:{path}", device="cpu", ch_names=chans, window_s=hi + 10)
    with pytest.raises(EncoderError, match="whole"):
        load_encoder(f"cbramod:{path}", device="cpu", ch_names=chans, window_s=4.5)
