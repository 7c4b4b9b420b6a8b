"""cbramod:PATH -- CBraMod's pretrained_weights.pth layout loads strictly and runs as stages."""

from __future__ import annotations

import pytest
import torch

from _fm_checkpoints import TINY, cbramod_shapes, n_float, write_cbramod
from bioxbridge_core.errors import EncoderError
from bioxbridge_core.models.adapters import cbramod
from bioxbridge_core.models.registry import encoder_spec, load_encoder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("cbramod") / "pretrained_weights.pth"
    return path, write_cbramod(path)


def _x(n_chans=19, seconds=10, seed=0):
    return 30.0 * torch.randn(2, n_chans, int(200 * seconds), generator=torch.Generator().manual_seed(seed))


def test_published_layout_loads_strictly(ckpt):
    path, sd = ckpt
    m = load_encoder(f"cbramod:{path}", device="cpu")
    assert m.position_names() == ["patch_embedding"] + [f"encoder.layers.{i}" for i in range(5)]
    assert m.positions[0].out_shape == (19 * 10, 200) and m.positions[-1].out_shape == (190, 200)
    assert m.n_params() == n_float(cbramod_shapes(**TINY["cbramod"]))
    assert torch.equal(m.state_dict()["encoder.layers.3.self_attn_t.in_proj_weight"],
                       sd["encoder.layers.3.self_attn_t.in_proj_weight"])
    assert "proj_out" not in " ".join(m.position_names())  # the reconstruction head is loaded, never run
    assert (m.spec.units, m.spec.normalisation, m.spec.window_range) == ("uV", "none", (1.0, 30.0))


def test_chain_reproduces_forward(ckpt):
    m = load_encoder(f"cbramod:{ckpt[0]}", device="cpu")
    x = _x()
    with torch.no_grad():
        full = m(x)
        for i in range(1, len(m.positions)):
            assert torch.allclose(m.forward_from(m.forward_until(x, i - 1), i), full, atol=1e-5)


def test_criss_cross_layer_attends_along_channels_and_patches(ckpt):
    """Spatial half: changing one channel moves other channels at the same patch only through attention;
    temporal half: a patch of another channel at another time cannot reach the output in one layer."""
    m = load_encoder(f"cbramod:{ckpt[0]}", device="cpu", ch_names=["C3", "CZ", "C4"])
    layer = m.encoder.layers[0]
    h = torch.randn(1, 3, 4, 200)
    h2 = h.clone()
    h2[0, 0, 0] += 1.0  # channel 0, patch 0
    with torch.no_grad():
        d = (layer(h2) - layer(h)).abs().sum(-1)[0]  # (channels, patches)
    assert d[1, 0] > 0 and d[0, 3] > 0  # same patch other channel; same channel other patch
    assert d[1, 3] == 0 and d[2, 1] == 0  # neither: unreachable in one criss-cross layer


def test_units_channels_and_windows(ckpt):
    path, _ = ckpt
    m = load_encoder(f"cbramod:{path}", device="cpu", ch_names=["F3", "F4", "P3", "P4"])
    x = _x(4, 3)
    with torch.no_grad():
        direct = m.patch_embedding((x / 100).reshape(2, 4, 3, 200)).flatten(1, 2)
        assert torch.allclose(m.forward_until(x, 0), direct, atol=1e-6)  # µV in, 100 µV units inside
        with pytest.raises(EncoderError, match="not a whole number of patches"):
            m(torch.zeros(1, 4, 650))
    with pytest.raises(EncoderError, match="whole multiples"):
        cbramod.load_cbramod(path, window_s=4.5)
    assert encoder_spec(f"cbramod:{path}").ch_names == cbramod.TUEG_19


def test_wrong_keys_are_listed(tmp_path, ckpt):
    _, sd = ckpt
    bad = {k: v for k, v in sd.items() if not k.startswith("patch_embedding.spectral_proj")}
    bad["encoder.layers.0.linear1.weight"] = torch.zeros(64, 100)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(EncoderError) as err:
        load_encoder(f"cbramod:{tmp_path / 'bad.pth'}", device="cpu")
    text = str(err.value)
    assert "2 missing key(s): patch_embedding.spectral_proj.0.weight, patch_embedding.spectral_proj.0.bias" in text
    assert "shape mismatch" in text and "encoder.layers.0.linear1.weight (64, 100) vs (64, 200)" in text
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "ddp.pth")  # saved from DataParallel
    assert load_encoder(f"cbramod:{tmp_path / 'ddp.pth'}", device="cpu").n_params() > 0


def test_published_size():
    model = cbramod.CBraModAdapter()
    assert model.n_params() == cbramod.PUBLISHED_PARAMS == n_float(cbramod_shapes())
    assert round(model.n_params() / 1e6, 1) == 4.9
