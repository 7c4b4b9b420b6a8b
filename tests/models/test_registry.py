"""load_encoder, encoder_spec, list_encoders and register_adapter."""

from __future__ import annotations

import pytest
import torch

from bioxbridge_core.errors import EncoderError
from bioxbridge_core.models import registry
from bioxbridge_core.models.builtin import build_builtin


@pytest.fixture
def empty_assets(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "ENCODER_DIR", tmp_path / "encoders")
    registry.clear_cache()
    yield tmp_path / "encoders"
    registry.clear_cache()


def test_missing_weights_warns_and_still_works(empty_assets):
    with pytest.warns(UserWarning, match="No pre-trained weights"):
        m = registry.load_encoder("builtin:ppg", device="cpu")
    assert m.encoder_name == "builtin:ppg"
    assert not any(p.requires_grad for p in m.parameters())
    with torch.no_grad():
        assert m(torch.randn(2, 1, 500)).shape == (2, 256, 32)


def test_weights_file_is_loaded(empty_assets):
    from bioxbridge_core._io import atomic_save_safetensors

    trained = build_builtin("ecg", seed=7)
    atomic_save_safetensors(empty_assets / "ecg.safetensors", trained.state_dict())
    m = registry.load_encoder("builtin:ecg", device="cpu")
    ref = trained.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in m.state_dict().items())
    assert [d for d in registry.list_encoders() if d["name"] == "builtin:ecg"][0]["available"] is True


def test_mismatched_weights_file_is_an_error(empty_assets):
    from bioxbridge_core._io import atomic_save_safetensors

    atomic_save_safetensors(empty_assets / "ecg.safetensors", {"foo": torch.zeros(2)})
    with pytest.raises(EncoderError, match="does not match"):
        registry.load_encoder("builtin:ecg", device="cpu")


def test_cache_returns_independent_copies(empty_assets):
    a = registry.load_encoder("builtin:ppg", device="cpu", pretrained=False)
    b = registry.load_encoder("builtin:ppg", device="cpu", pretrained=False)
    assert a is not b
    with torch.no_grad():
        next(a.parameters()).add_(1.0)
    assert not torch.equal(next(a.parameters()), next(b.parameters()))


def test_eeg_montage_through_registry():
    m = registry.load_encoder("builtin:eeg", device="cpu", pretrained=False, ch_names=["Fz", "Pz"])
    assert m.spec.n_chans == 2
    spec = registry.encoder_spec("builtin:eeg", ch_names=["Fz", "Pz"])
    assert spec == m.spec
    with pytest.raises(EncoderError, match="Q9"):
        registry.encoder_spec("builtin:eeg", ch_names=["Q9"])


@pytest.mark.parametrize("name", ["builtin:ecg", "builtin:ppg", "builtin:eeg"])
def test_encoder_spec_matches_built_model(name):
    assert registry.encoder_spec(name) == build_builtin(name).spec


@pytest.mark.parametrize("name, hint", [("builtin:ppgx", "builtin:ppg"), ("hubert-ekg:/x", "hubert-ecg"),
                                        ("ecg", "builtin:ecg")])
def test_unknown_names_suggest(name, hint):
    with pytest.raises(EncoderError, match=f"Did you mean '{hint}'"):
        registry.load_encoder(name, device="cpu")


def test_adapter_needs_a_path():
    with pytest.raises(EncoderError, match="checkpoint path"):
        registry.load_encoder("hubert-ecg:", device="cpu")


def test_list_encoders_fields():
    rows = registry.list_encoders()
    names = [r["name"] for r in rows]
    assert {"builtin:ecg", "builtin:ppg", "builtin:eeg", "hubert-ecg:<path>"} <= set(names)
    for r in rows:
        assert {"name", "modality", "sampling_rate", "window_s", "params", "positions", "available",
                "description"} <= set(r)
    ecg = rows[names.index("builtin:ecg")]
    assert ecg["positions"][0] == "embed" and len(ecg["positions"]) >= 6 and ecg["params"] > 0


def test_register_adapter_and_overwrite_warning():
    from _adapters import ChainNet
    from bioxbridge_core.models.adapters.generic import GenericAdapter
    from bioxbridge_core.spec import SignalSpec

    def factory(path, *, ch_names=None):
        return GenericAdapter(ChainNet(), [f"blocks.{i}" for i in range(5)], embed="embed",
                              spec=SignalSpec("other", 100.0, 2.0))

    try:
        registry.register_adapter("toy-test", modality="other")(factory)
        with pytest.warns(UserWarning, match="already registered"):
            registry.register_adapter("toy-test", modality="other")(factory)
        m = registry.load_encoder("toy-test:anything", device="cpu")
        assert m.encoder_name == "toy-test:anything" and len(m.positions) == 6
        assert registry.encoder_spec("toy-test:x").modality == "other"
    finally:
        registry._ADAPTERS.pop("toy-test", None)
    with pytest.raises(EncoderError):
        registry.register_adapter("builtin")
