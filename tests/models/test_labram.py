"""labram:PATH -- LaBraM's pre-training checkpoint layout loads strictly and runs as stages."""

from __future__ import annotations

import fractions

import pytest
import torch

from _fm_checkpoints import LABRAM_HEADS, TINY, labram_shapes, n_float, write_labram
from bioxbridge_core.errors import EncoderError
from bioxbridge_core.models.adapters import labram
from bioxbridge_core.models.registry import encoder_spec, load_encoder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("labram") / "labram-base.pth"
    return path, write_labram(path)


def _x(n_chans=19, seconds=10, seed=0):
    return 30.0 * torch.randn(2, n_chans, int(200 * seconds), generator=torch.Generator().manual_seed(seed))


def test_published_layout_loads_strictly(ckpt):
    path, sd = ckpt
    m = load_encoder(f"labram:{path}", device="cpu")
    assert m.encoder_name == f"labram:{path}"
    assert m.position_names() == ["patch_embed"] + [f"blocks.{i}" for i in range(4)] + ["norm"]
    dim = TINY["labram"]["dim"]
    assert m.positions[0].in_shape == (19, 2000) and m.positions[0].out_shape == (1 + 19 * 10, dim)
    assert m.n_params() == n_float(labram_shapes(**TINY["labram"]), skip=LABRAM_HEADS)
    assert torch.equal(m.state_dict()["blocks.2.attn.qkv.weight"], sd["student.blocks.2.attn.qkv.weight"])
    assert torch.equal(m.pos_embed, sd["student.pos_embed"])
    spec = m.spec
    assert (spec.modality, spec.sfreq, spec.window_s, spec.units, spec.normalisation) == ("EEG", 200.0, 10.0, "uV",
                                                                                         "none")
    assert spec.window_range == (1.0, 16.0) and spec.ch_names[:3] == ("FP1", "FP2", "F3")


def test_chain_reproduces_forward(ckpt):
    m = load_encoder(f"labram:{ckpt[0]}", device="cpu")
    x = _x()
    with torch.no_grad():
        full = m(x)
        for i in range(1, len(m.positions)):
            assert torch.allclose(m.forward_from(m.forward_until(x, i - 1), i), full, atol=1e-5)


def test_inputs_are_divided_by_100_and_time_embedding_is_sliced(ckpt):
    path, sd = ckpt
    m = load_encoder(f"labram:{path}", device="cpu", ch_names=["C3", "C4"])
    x = _x(2, 3)
    with torch.no_grad():
        emb = m.forward_until(x, "patch_embed")  # (2, 1 + 2 * 3, dim)
        patches = m.patch_embed((x / 100).reshape(2, 6, 200))
    rows = [labram.STANDARD_1020.index(c) + 1 for c in ("C3", "C4")]
    pos, tim = sd["student.pos_embed"][0], sd["student.time_embed"][0]
    # token of channel C4 (second), patch 2 (third): its pos_embed row + time_embed row 2
    assert torch.allclose(emb[:, 1 + 3 + 2], patches[:, 3 + 2] + pos[rows[1]] + tim[2], atol=1e-5)
    assert torch.allclose(emb[:, 0], (sd["student.cls_token"][0, 0] + pos[0]).expand(2, -1), atol=1e-6)


def test_channel_names_are_looked_up_and_checked(ckpt):
    path, _ = ckpt
    a = load_encoder(f"labram:{path}", device="cpu", ch_names=["EEG Fp1-REF", "EEG Cz-REF"])
    b = load_encoder(f"labram:{path}", device="cpu", ch_names=["FP1", "CZ"])
    c = load_encoder(f"labram:{path}", device="cpu", ch_names=["CZ", "FP1"])
    x = _x(2, 2)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert not torch.allclose(b(x), c(x))  # the position embedding follows the names
    with pytest.raises(EncoderError, match="XYZ.*electrode table"):
        load_encoder(f"labram:{path}", device="cpu", ch_names=["FP1", "XYZ"])


def test_windows_must_be_whole_seconds_within_the_time_table(ckpt):
    path, _ = ckpt
    m = labram.load_labram(path, window_s=16.0)
    assert m.positions[0].out_shape[0] == 1 + 19 * 16
    for bad, msg in ((2.5, "whole multiples"), (17.0, "1-16 s")):
        with pytest.raises(EncoderError, match=msg):
            labram.load_labram(path, window_s=bad)
    with torch.no_grad(), pytest.raises(EncoderError, match="not a whole number of patches"):
        m(torch.zeros(1, 19, 2100))


def test_wrong_keys_are_listed(tmp_path, ckpt):
    _, sd = ckpt
    bad = dict(sd)
    bad["student.blocks.1.attn.qkv_renamed.weight"] = bad.pop("student.blocks.1.attn.qkv.weight")
    bad["student.extra_table"] = torch.zeros(3)
    torch.save({"model": bad}, tmp_path / "bad.pth")
    with pytest.raises(EncoderError) as err:
        load_encoder(f"labram:{tmp_path / 'bad.pth'}", device="cpu")
    text = str(err.value)
    assert "missing key(s): blocks.1.attn.qkv.weight" in text
    assert "blocks.1.attn.qkv_renamed.weight" in text and "extra_table" in text
    torch.save({"model": {**sd, "other_head.weight": torch.zeros(2)}}, tmp_path / "outer.pth")
    with pytest.raises(EncoderError, match="unexpected key.*other_head.weight"):
        load_encoder(f"labram:{tmp_path / 'outer.pth'}", device="cpu")
    with pytest.raises(EncoderError, match="not found"):
        load_encoder(f"labram:{tmp_path / 'nope.pth'}", device="cpu")


def test_only_plain_data_is_unpickled(tmp_path, ckpt):
    _, sd = ckpt
    torch.save({"model": sd, "extra": fractions.Fraction(1, 3)}, tmp_path / "obj.pth")
    with pytest.raises(EncoderError, match="fractions.Fraction.*weights_only=True.*safetensors"):
        load_encoder(f"labram:{tmp_path / 'obj.pth'}", device="cpu")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "labram.safetensors"))
    m = load_encoder(f"labram:{tmp_path / 'labram.safetensors'}", device="cpu")
    assert torch.equal(m.cls_token, sd["student.cls_token"])


def test_spec_without_loading_and_published_size(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"not read")
    spec = encoder_spec(f"labram:{tmp_path / 'w.pth'}", ch_names=["O1", "O2"])
    assert spec.n_chans == 2 and spec.sfreq == 200.0
    model = labram.LaBraMAdapter()  # the LaBraM-base configuration, random weights
    assert model.n_params() == labram.PUBLISHED_PARAMS == n_float(labram_shapes(), skip=LABRAM_HEADS)
    assert round(model.n_params() / 1e6, 1) == 5.8  # LaBraM-Base is given as 5.8M parameters (Jiang et al. 2024)
