"""Architecture facts of the four built-in encoders (random init, tiny inputs)."""

from __future__ import annotations

import pytest
import torch

from bioxbridge_core.errors import ConfigError, EncoderError
from bioxbridge_core.models.builtin import BUILTIN_NAMES, build_builtin, builtin_spec
from bioxbridge_core.models.builtin.eeg import DEFAULT_MONTAGE


@pytest.fixture(scope="module")
def models():
    return {n: build_builtin(n).freeze() for n in BUILTIN_NAMES}


def test_four_builtins():
    assert set(BUILTIN_NAMES) == {"ecg", "ppg", "eeg", "eda"}


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_params_and_positions(models, name):
    m = models[name]
    assert 0.2e6 <= m.n_params() <= 3.5e6  # float32 weights stay far below 15 MB
    assert len(m.positions) >= 6
    assert m.positions[0].in_shape == (m.spec.n_chans, m.spec.n_times)


def test_contract_specs(models):
    ecg, ppg, eeg, eda = (models[n].spec for n in ("ecg", "ppg", "eeg", "eda"))
    assert (ecg.modality, ecg.sfreq, ecg.window_s, ecg.n_chans) == ("ECG", 100.0, 10.0, 1)
    assert (ppg.modality, ppg.sfreq, ppg.window_s, ppg.n_chans) == ("PPG", 50.0, 10.0, 1)
    assert (eeg.modality, eeg.sfreq, eeg.window_s) == ("EEG", 100.0, 10.0)
    assert (eda.modality, eda.sfreq, eda.n_chans) == ("EDA", 4.0, 1)
    assert all(s.normalisation == "zscore-window" for s in (ecg, ppg, eeg, eda))


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_declared_range_covers_2_to_60_s(models, name):
    spec = models[name].spec
    lo, hi = spec.window_range
    assert lo <= 2.0 and hi >= 60.0 and spec.flexible_length
    assert builtin_spec(name) == spec  # the registry's spec needs no model and agrees with it
    with pytest.raises(ConfigError, match=f"{lo:g}-{hi:g} s"):
        spec.check_window(hi + 1.0, encoder=f"builtin:{name}")


@pytest.mark.parametrize("name", BUILTIN_NAMES)
@pytest.mark.parametrize("window_s", [2.0, 7.0, 60.0])
def test_every_length_in_range_runs_and_dry_pass_follows_it(name, window_s):
    """The dry pass at the window in use gives positions whose token count follows the length."""
    m = build_builtin(name, ch_names=["Fz", "Cz", "Pz"] if name == "eeg" else None).freeze().set_window(window_s)
    pos = m.positions
    n_times = int(round(window_s * m.spec.sfreq))
    assert pos[0].in_shape == (m.spec.n_chans, n_times)
    x = torch.randn(2, m.spec.n_chans, n_times)
    with torch.no_grad():
        out = m.last_tokens(x)
    assert out.shape[0] == 2 and out.shape[1] == pos[-1].out_tokens and torch.isfinite(out).all()


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_tokens_grow_with_the_window(name):
    m = build_builtin(name).freeze()
    counts = []
    for window_s in (2.0, 30.0):
        x = torch.zeros(1, m.spec.n_chans, int(round(window_s * m.spec.sfreq)))
        with torch.no_grad():
            counts.append(m.last_tokens(x).shape[1])
    assert counts[1] > counts[0] >= 1


def test_token_rates(models):
    ecg = models["ecg"].positions
    assert ecg[0].name == "embed" and ecg[0].out_layout == "tokens" and ecg[0].out_tokens == 100  # 0.1 s tokens
    eda = models["eda"].positions
    assert eda[0].out_tokens == int(models["eda"].spec.window_s * 2)  # 0.5 s tokens at 4 Hz
    ppg = {p.name: p for p in models["ppg"].positions}
    assert [ppg[n].out_width for n in ("stem", "layer1.1", "layer2.1", "layer3.1", "layer4.1")] == [32, 32, 64, 128, 256]
    assert all(p.out_layout == "channels" for p in ppg.values())


def test_eda_runs_on_a_4hz_window_of_8_samples():
    m = build_builtin("eda").freeze()
    with torch.no_grad():
        out = m.last_tokens(torch.randn(3, 1, 8))  # 2 s at 4 Hz
    assert out.shape == (3, 4, m.config.width)


def test_eeg_time_table_covers_the_maximum_and_refuses_more():
    m = build_builtin("eeg", ch_names=["Cz"]).freeze()
    assert m.embed.time_embed.num_embeddings * m.config.patch_samples >= 60 * m.spec.sfreq
    with torch.no_grad():
        assert m.last_tokens(torch.zeros(1, 1, 6000)).shape[1] == 60
        with pytest.raises(RuntimeError, match="patches"):
            m.last_tokens(torch.zeros(1, 1, 6100))


def test_build_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_builtin("ecg", seed=0)
    after = torch.rand(1)
    b = build_builtin("ecg", seed=0)
    c = build_builtin("ecg", seed=1)
    assert torch.equal(before, after)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_eeg_montage_names_and_tokens():
    m = build_builtin("eeg", ch_names=["EEG Fp1", "EEG Cz", "EEG O2"]).freeze()
    assert m.spec.n_chans == 3 and m.spec.ch_names == ("FP1", "CZ", "O2")
    assert m.positions[0].out_tokens == 3 * 10
    assert len(m.positions[0].out_shape) == 2
    assert builtin_spec("eeg", ["EEG Fp1", "EEG Cz", "EEG O2"]) == m.spec


def test_eeg_unknown_and_duplicate_channels():
    with pytest.raises(EncoderError, match="XYZ"):
        build_builtin("eeg", ch_names=["Fp1", "XYZ"])
    with pytest.raises(EncoderError, match="same electrode"):
        build_builtin("eeg", ch_names=["T3", "T7"])


def test_eeg_weights_do_not_depend_on_montage():
    """The electrode embedding is indexed by name, so a subset montage shares weights and gives the
    same tokens for the same channel data (before attention mixes channels)."""
    full = build_builtin("eeg").freeze()
    sub = build_builtin("eeg", ch_names=["O1", "CZ"]).freeze()
    sub.load_state_dict(full.state_dict())
    x = torch.randn(1, len(DEFAULT_MONTAGE), 400)
    idx = [DEFAULT_MONTAGE.index("O1"), DEFAULT_MONTAGE.index("CZ")]
    with torch.no_grad():
        t_full = full.forward_until(x, "embed").reshape(1, len(DEFAULT_MONTAGE), 4, -1)[:, idx]
        t_sub = sub.forward_until(x[:, idx], "embed").reshape(1, 2, 4, -1)
    assert torch.allclose(t_full, t_sub, atol=1e-6)


def test_unknown_builtin():
    with pytest.raises(EncoderError, match="Did you mean 'ppg'"):
        build_builtin("pgg")
    with pytest.raises(EncoderError, match="Did you mean 'eda'"):
        builtin_spec("edaa")
