"""Pre-training loop, probe features and shipped weights of the built-in encoders (fast)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from bioxbridge_core.models.builtin import build_builtin
from bioxbridge_core.zoo.data import PREPS, grid_starts, window_ok, windows_from_signal, simulated_windows
from bioxbridge_core.zoo.pretrain import MaskedPretrainer, PretrainConfig, save_pretrained, span_mask, patch_mask
from bioxbridge_core.baselines.handcrafted import ecg_hrv_features, eeg_bandpower_features, ppg_pulse_features
from bioxbridge_core.zoo.probe_eval import cv_logreg, load_builtin_weights, make_folds

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "encoders"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _sim(kind: str, seconds: float, sfreq: int, hr: float, seed: int = 0) -> np.ndarray:
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ecg":
            return nk.ecg_simulate(duration=seconds, sampling_rate=sfreq, heart_rate=hr, method="simple",
                                   random_state=seed, noise=0.01)
        return nk.ppg_simulate(duration=seconds, sampling_rate=sfreq, heart_rate=hr, random_state=seed,
                               motion_amplitude=0.0, powerline_amplitude=0.0, burst_number=0, drift=0.0)


# -- data --------------------------------------------------------------------------
def test_windows_are_zscored_and_bad_windows_dropped():
    sfreq = 250.0
    sig = _sim("ecg", 40, int(sfreq), 70)[None].astype(np.float64)
    sig[0, int(12 * sfreq):int(13 * sfreq)] = np.nan          # NaN inside window 10-20 s
    sig[0, int(31 * sfreq):int(33 * sfreq)] = 0.25             # 2 s flat line inside 30-40 s
    x, kept = windows_from_signal(sig, sfreq, PREPS["ecg"], starts_s=grid_starts(40, 10, 10))
    assert kept.tolist() == [0.0, 20.0]
    assert x.shape == (2, 1, PREPS["ecg"].n_times)
    np.testing.assert_allclose(x.mean(-1), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(-1), 1, atol=1e-3)
    assert not window_ok(np.zeros((1, 500)), 50.0)


def test_simulated_windows_shapes():
    ws = simulated_windows("PPG", n_signals=2, duration_s=20, step_s=10, seed=3, cache=False)
    assert ws.x.shape == (4, 1, 500) and np.isfinite(ws.x).all()
    assert set(ws.subject) == {"sim0", "sim1"}


# -- pre-training ------------------------------------------------------------------------
def test_masks_cover_about_the_asked_ratio():
    rng = np.random.default_rng(0)
    m = span_mask(rng, 1, 1000, ratio=0.5, span=(30, 150))
    assert 0.45 <= m.mean() <= 0.7
    p = patch_mask(rng, 4, 1000, ratio=0.5, patch=100)
    assert p.shape == (4, 1000) and p.any()
    assert (p.reshape(4, 10, 100).all(-1) == p.reshape(4, 10, 100).any(-1)).all()  # whole patches


def test_pretraining_lowers_the_loss_and_is_deterministic(tmp_path):
    x = simulated_windows("PPG", n_signals=3, duration_s=40, step_s=5, seed=1, cache=False).x
    cfg = PretrainConfig(encoder="ppg", steps=24, batch_size=8, lr=1e-3, eval_every=6, seed=0)
    res = MaskedPretrainer(build_builtin("ppg", seed=0), cfg).fit(x)
    losses = [h["train_loss"] for h in res.history]
    assert res.steps == 24 and len(losses) >= 4
    assert np.mean(losses[-2:]) < losses[0]
    assert not any(p.requires_grad for p in res.encoder.parameters())  # returned frozen
    again = MaskedPretrainer(build_builtin("ppg", seed=0), cfg).fit(x)
    a, b = res.encoder.state_dict(), again.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    path = save_pretrained(res, cfg, tmp_path, data_used={"sim": len(x)})
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    assert meta["steps"] == "24" and meta["seed"] == "0" and "masked" in meta["objective"]
    curve = json.loads((tmp_path / "pretrain_ppg.json").read_text())
    assert curve["history"][-1]["step"] == 24
    loaded = load_builtin_weights("ppg", path)
    assert torch.equal(loaded.state_dict()["stem.0.weight"], a["stem.0.weight"])

    from bioxbridge_core.zoo.card import render_card

    card = render_card("ppg", tmp_path).read_text()
    assert "builtin:ppg" in card and "--steps 24" in card and "(not run)" in card


def test_eeg_pretraining_with_channel_subsets_keeps_weights_montage_free(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 19, 1000)).astype(np.float32)
    enc = build_builtin("eeg", seed=0)
    before = enc.embed.electrodes.clone()
    cfg = PretrainConfig(encoder="eeg", steps=3, batch_size=4, eval_every=1)
    res = MaskedPretrainer(enc, cfg).fit(x)
    assert torch.equal(res.encoder.embed.electrodes, before)
    assert np.isfinite([h["train_loss"] for h in res.history]).all()
    path = save_pretrained(res, cfg, tmp_path, data_used={"noise": 12})
    small = load_builtin_weights("eeg", path, ch_names=["EEG O1", "EEG Cz", "EEG Fp2"])
    assert torch.equal(small.embed.electrode_embed.weight, res.encoder.embed.electrode_embed.weight)
    assert small.last_tokens(torch.zeros(2, 3, 1000)).shape[0] == 2


# -- probe features ------------------------------------------------------------------------
def test_ecg_features_find_the_simulated_heart_rate():
    f = ecg_hrv_features(_sim("ecg", 10, 100, 72), 100.0)
    assert f.shape == (5,)
    assert 62 <= f[0] <= 82


def test_ppg_features_find_the_simulated_pulse_rate():
    sig = _sim("ppg", 10, 50, 90)
    f = ppg_pulse_features((sig - sig.mean()) / sig.std(), 50.0)
    assert f.shape == (5,)
    assert 80 <= f[0] <= 100
    assert np.isfinite(f[3])


def test_eeg_bandpower_puts_a_10hz_rhythm_in_alpha():
    t = np.arange(1000) / 100.0
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal((3, 1000))
    x[1] += np.sin(2 * np.pi * 10 * t)
    f = eeg_bandpower_features(x, 100.0).reshape(3, 4)
    assert np.argmax(f[1]) == 2  # alpha
    assert f[1, 2] > f[0, 2] + 2


def test_grouped_folds_never_split_a_subject_and_probe_scores_separable_data():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(12), 10)
    y = np.tile([0] * 7 + [1] * 3, 12)
    feats = rng.standard_normal((120, 5)) + 3 * y[:, None]
    folds = make_folds(y, groups, 4, seed=0)
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
    res = cv_logreg(feats, y, folds)
    assert res["balanced_accuracy_mean"] > 0.9 and len(res["folds"]) == 4
    noise = cv_logreg(rng.standard_normal((120, 5)), y, folds)
    assert noise["balanced_accuracy_mean"] < res["balanced_accuracy_mean"]


# -- shipped weights ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ecg", "ppg", "eeg"])
def test_shipped_weights_load_with_matching_keys(name):
    path = ASSETS / f"{name}.safetensors"
    if not path.exists():
        pytest.skip(f"{path} not shipped")
    from safetensors.torch import load_file

    state = load_file(str(path))
    ref = build_builtin(name).state_dict()
    assert set(state) == set(ref)
    assert all(state[k].shape == ref[k].shape for k in ref)
    from bioxbridge_core.models.registry import load_encoder

    ch = ["EEG Fp1", "EEG C3", "EEG Pz", "EEG O2"] if name == "eeg" else None  # any montage, same file
    enc = load_encoder(f"builtin:{name}", ch_names=ch, device="cpu")
    assert torch.equal(enc.state_dict()[next(iter(ref))].cpu(), state[next(iter(ref))])
    if name == "eeg":
        assert enc.spec.n_chans == 4
    total = sum(p.stat().st_size for p in ASSETS.glob("*.safetensors"))
    assert total <= 40 * 1024 * 1024
