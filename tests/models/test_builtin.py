"""Architecture facts of the three built-in encoders."""

from __future__ import annotations

import pytest
import torch

from bioxbridge_core.errors import EncoderError
from bioxbridge_core.models.builtin import BUILTIN_NAMES, build_builtin
from bioxbridge_core.models.builtin.eeg import DEFAULT_MONTAGE


@pytest.fixture(scope="module")
def models():
    return {n: build_builtin(n).freeze() for n in BUILTIN_NAMES}


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_params_and_positions(models, name):
    m = models[name]
    assert 0.5e6 <= m.n_params() <= 5e6
    assert len(m.positions) >= 6
    assert m.positions[0].in_shape == (m.spec.n_chans, m.spec.n_times)


def test_contract_specs(models):
    ecg, ppg, eeg = models["ecg"].spec, models["ppg"].spec, models["eeg"].spec
    assert (ecg.modality, ecg.sfreq, ecg.window_s, ecg.n_chans) == ("ECG", 100.0, 10.0, 1)
    assert (ppg.modality, ppg.sfreq, ppg.window_s, ppg.n_chans) == ("PPG", 50.0, 10.0, 1)
    assert (eeg.modality, eeg.sfreq, eeg.window_s) == ("EEG", 100.0, 10.0)
    assert all(s.normalisation == "zscore-window" for s in (ecg, ppg, eeg))


def test_ecg_tokens_and_ppg_widths(models):
    ecg = models["ecg"].positions
    assert ecg[0].name == "embed" and ecg[0].out_layout == "tokens" and ecg[0].out_tokens == 100
    ppg = {p.name: p for p in models["ppg"].positions}
    assert [ppg[n].out_width for n in ("stem", "layer1.1", "layer2.1", "layer3.1", "layer4.1")] == [32, 32, 64, 128, 256]
    assert all(p.out_layout == "channels" for p in ppg.values())


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
    x = torch.randn(1, len(DEFAULT_MONTAGE), 1000)
    idx = [DEFAULT_MONTAGE.index("O1"), DEFAULT_MONTAGE.index("CZ")]
    with torch.no_grad():
        t_full = full.forward_until(x, "embed").reshape(1, len(DEFAULT_MONTAGE), 10, -1)[:, idx]
        t_sub = sub.forward_until(x[:, idx], "embed").reshape(1, 2, 10, -1)
    assert torch.allclose(t_full, t_sub, atol=1e-6)


def test_unknown_builtin():
    with pytest.raises(EncoderError, match="Did you mean 'ppg'"):
        build_builtin("pgg")
