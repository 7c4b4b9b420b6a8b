"""biot:PATH -- BIOTEncoder checkpoints (16 or 18 bipolar channels) load strictly and run as stages."""

from __future__ import annotations

import pytest
import torch

from _fm_checkpoints import TINY, biot_shapes, materialise, n_float, write_biot
from bioxbridge_core.errors import EncoderError
from bioxbridge_core.models.adapters import biot
from bioxbridge_core.models.registry import encoder_spec, load_encoder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("biot") / "EEG-PREST-16-channels.ckpt"
    return path, write_biot(path)


def _x(n_chans=16, seconds=10, seed=0):
    return 50.0 * torch.randn(2, n_chans, int(200 * seconds), generator=torch.Generator().manual_seed(seed))


def test_published_layout_loads_strictly(ckpt):
    path, sd = ckpt
    m = load_encoder(f"biot:{path}", device="cpu")
    assert m.position_names() == ["patch_embedding"] + [f"transformer.layers.layers.{i}" for i in range(5)]
    frames = (2000 - 200) // 100 + 1
    assert m.positions[0].out_shape == (16 * frames, TINY["biot"]["emb"])
    assert m.spec.ch_names == biot.BIOT_16 and m.spec.window_range == (1.0, 30.0)
    assert m.n_params() == n_float(biot_shapes(**TINY["biot"]))
    assert torch.equal(m.state_dict()["transformer.layers.layers.4.1.fn.fn.w2.weight"],
                       sd["transformer.layers.layers.4.1.fn.fn.w2.weight"])


def test_chain_reproduces_forward_and_amplitude_does_not_matter(ckpt):
    m = load_encoder(f"biot:{ckpt[0]}", device="cpu")
    x = _x()
    with torch.no_grad():
        full = m(x)
        for i in range(1, len(m.positions)):
            assert torch.allclose(m.forward_from(m.forward_until(x, i - 1), i), full, atol=1e-5)
        # each channel is divided by its 95th percentile of |x| (+1e-8): units and gain drop out
        assert torch.allclose(m(x * 0.01), full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("n", [1, 2, 7, 2000])
def test_scaling_quantile_matches_numpy(n):
    import numpy as np

    x = torch.randn(3, 2, n, dtype=torch.float64)
    ref = np.quantile(np.abs(x.numpy()), q=0.95, method="linear", axis=-1, keepdims=True)
    assert np.allclose(biot.abs_quantile(x, 0.95).numpy(), ref, rtol=1e-12)


def test_linear_attention_matches_its_definition(ckpt):
    """One attention block written out: softmax(q) over features, softmax(k) over tokens, q (k^T v)."""
    m = load_encoder(f"biot:{ckpt[0]}", device="cpu")
    attn = m.transformer.layers.layers[0][0].fn
    h = torch.randn(2, 7, TINY["biot"]["emb"])
    heads, dh = 8, TINY["biot"]["emb"] // 8
    q, k, v = (lin(h).reshape(2, 7, heads, dh).transpose(1, 2) for lin in (attn.to_q, attn.to_k, attn.to_v))
    q = q.softmax(-1) * dh ** -0.5
    k = k.softmax(-2)
    ref = torch.cat([q[:, :, i:i + 1] @ (k.transpose(-1, -2) @ v) for i in range(7)], dim=2)
    with torch.no_grad():
        assert torch.allclose(attn(h), attn.to_out(ref.transpose(1, 2).reshape(2, 7, -1)), atol=1e-5)


def test_montage_follows_the_checkpoint_and_subsets_keep_their_tokens(tmp_path, ckpt):
    path18 = tmp_path / "EEG-six-datasets-18-channels.ckpt"
    write_biot(path18, n_channels=18)
    assert encoder_spec(f"biot:{path18}").ch_names == biot.BIOT_18
    assert encoder_spec(f"biot:{ckpt[0]}").n_chans == 16
    full = load_encoder(f"biot:{ckpt[0]}", device="cpu")
    sub = load_encoder(f"biot:{ckpt[0]}", device="cpu", ch_names=["EEG Fp2-F4", "T3-T5"])  # aliases: T3=T7, T5=P7
    assert sub.spec.n_chans == 2
    x = _x()
    with torch.no_grad():
        e_full = full.forward_until(x, "patch_embedding").reshape(2, 16, 19, -1)
        e_sub = sub.forward_until(x[:, [12, 2]], "patch_embedding").reshape(2, 2, 19, -1)
    # the embedding of a channel does not depend on the others; FP2-F4 is token 12, T7-P7 token 2
    assert torch.allclose(e_sub[:, 0], e_full[:, 12], atol=1e-5)
    assert torch.allclose(e_sub[:, 1], e_full[:, 2], atol=1e-5)
    with pytest.raises(EncoderError, match="C3-A2.*not one of"):
        load_encoder(f"biot:{ckpt[0]}", device="cpu", ch_names=["C3-A2"])  # only in the 18-channel montage


def test_stored_index_is_honoured(tmp_path):
    sd = materialise(biot_shapes(**TINY["biot"]))
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    shuffled = dict(sd, index=perm)
    torch.save(shuffled, tmp_path / "a.ckpt")
    # same model with identity index and the token table rearranged so that row p = old row perm[p]
    torch.save(dict(sd, **{"channel_tokens.weight": sd["channel_tokens.weight"][perm]}), tmp_path / "b.ckpt")
    a = load_encoder(f"biot:{tmp_path / 'a.ckpt'}", device="cpu")
    b = load_encoder(f"biot:{tmp_path / 'b.ckpt'}", device="cpu")
    x = _x()
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=1e-6)


def test_wrapped_and_wrong_files(tmp_path, ckpt):
    _, sd = ckpt
    torch.save({"state_dict": {f"model.biot.{k}": v for k, v in sd.items()}, "epoch": 3}, tmp_path / "lit.ckpt")
    m = load_encoder(f"biot:{tmp_path / 'lit.ckpt'}", device="cpu")
    assert torch.equal(m.channel_tokens.weight, sd["channel_tokens.weight"])
    bad = {k: v for k, v in sd.items() if k != "positional_encoding.pe"}
    bad["classifier.clshead.1.weight"] = torch.zeros(5, 32)
    torch.save(bad, tmp_path / "bad.ckpt")
    with pytest.raises(EncoderError) as err:
        load_encoder(f"biot:{tmp_path / 'bad.ckpt'}", device="cpu")
    assert "missing key(s): positional_encoding.pe" in str(err.value)
    assert "unexpected key(s): classifier.clshead.1.weight" in str(err.value)
    with pytest.raises(EncoderError, match="1-30 s"):
        biot.load_biot(ckpt[0], window_s=0.5)


def test_published_size():
    model = biot.BIOTAdapter()
    assert model.n_params() == biot.PUBLISHED_PARAMS == n_float(biot_shapes())
    # BIOT's paper gives 3.2M parameters; their 18-entry ``index`` is a buffer here, not a parameter
    assert round((model.n_params() + 18) / 1e6, 1) == 3.2
