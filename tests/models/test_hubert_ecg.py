"""HuBERT-ECG adapter: built from a local save_pretrained folder, identical to HubertModel."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("transformers")

from _adapters import tiny_hubert_folder  # noqa: E402
from bioxbridge_core.errors import EncoderError  # noqa: E402
from bioxbridge_core.models.registry import encoder_spec, load_encoder  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_hubert_folder(tmp_path_factory.mktemp("hub"))


def test_matches_hubert_model(folder):
    from transformers import HubertModel

    ref = HubertModel.from_pretrained(folder, local_files_only=True).eval()
    ad = load_encoder(f"hubert-ecg:{folder}", device="cpu")
    assert ad.spec.n_chans == 12 and ad.spec.sfreq == 100.0 and ad.spec.window_s == 5.0
    names = ad.position_names()
    assert names[0] == "embed" and names[1:] == [f"encoder.layers.{i}" for i in range(5)]
    x = torch.randn(2, 12, 500)
    with torch.no_grad():
        expected = ref(x.reshape(2, -1)).last_hidden_state
        assert torch.allclose(ad(x), expected, atol=1e-5)
        # leads are concatenated one after another, as HuBERT-ECG was trained
        assert ad.positions[0].in_shape == (1, 6000)


def test_single_lead_and_spec_without_loading(folder):
    spec = encoder_spec(f"hubert-ecg:{folder}", ch_names=["II"])
    assert spec.n_chans == 1 and spec.ch_names == ("II",)
    ad = load_encoder(f"hubert-ecg:{folder}", device="cpu", ch_names=["II"])
    assert ad.positions[0].in_shape == (1, 500)


def test_missing_or_wrong_checkpoint(tmp_path, folder):
    with pytest.raises(EncoderError, match="not found"):
        load_encoder(f"hubert-ecg:{tmp_path / 'nope'}", device="cpu")
    (tmp_path / "cfg_only").mkdir()
    (tmp_path / "cfg_only" / "config.json").write_text(json.dumps({"hidden_size": 32}))
    with pytest.raises(EncoderError, match="model.safetensors"):
        load_encoder(f"hubert-ecg:{tmp_path / 'cfg_only'}", device="cpu")
    from safetensors.torch import save_file

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((folder / "config.json").read_text())
    save_file({"foo": torch.zeros(1)}, str(bad / "model.safetensors"))
    with pytest.raises(EncoderError, match="lacks"):
        load_encoder(f"hubert-ecg:{bad}", device="cpu")


def test_engine_imports_without_transformers():
    import subprocess
    import sys

    code = ("import sys; sys.modules['transformers'] = None; "
            "from bioxbridge_core.models.registry import list_encoders, load_encoder; "
            "rows = list_encoders(); m = load_encoder('builtin:ecg', device='cpu', pretrained=False); "
            "print('hubert-ecg:<path>' in [r['name'] for r in rows], len(m.positions))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "8"]
