"""papagei:PATH -- PaPaGei-S's DDP state dict (``module.`` keys) loads strictly and runs as stages."""

from __future__ import annotations

import pytest
import torch

from _fm_checkpoints import TINY, n_float, papagei_shapes, write_papagei
from bioxbridge_core.errors import EncoderError
from bioxbridge_core.models.adapters import papagei
from bioxbridge_core.models.registry import encoder_spec, load_encoder


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("papagei") / "papagei_s.pt"
    return path, write_papagei(path)


def _x(seconds=10, seed=0):
    return torch.randn(3, 1, int(125 * seconds), generator=torch.Generator().manual_seed(seed))


def test_published_layout_loads_strictly(ckpt):
    path, sd = ckpt
    m = load_encoder(f"papagei:{path}", device="cpu")
    n_block = TINY["papagei"]["n_block"]
    assert m.position_names() == (["first_block_conv"] + [f"basicblock_list.{i}" for i in range(n_block)]
                                  + ["final_bn", "dense"])
    # blocks 1 and 3 halve the length, block 4 doubles the filters (8 -> 16)
    shapes = {p.name: p.out_shape for p in m.positions}
    assert shapes["basicblock_list.0"] == (8, 1250) and shapes["basicblock_list.1"] == (8, 625)
    assert shapes["basicblock_list.4"] == (16, 313) and shapes["dense"] == (313, TINY["papagei"]["n_classes"])
    assert m.n_params() == n_float(papagei_shapes(**TINY["papagei"]))
    assert torch.equal(m.basicblock_list[2].bn2.running_var, sd["basicblock_list.2.bn2.running_var"])
    assert (m.spec.modality, m.spec.sfreq, m.spec.window_s, m.spec.normalisation) == ("PPG", 125.0, 10.0,
                                                                                     "zscore-window")


def test_chain_and_pooled_embedding(ckpt):
    m = load_encoder(f"papagei:{ckpt[0]}", device="cpu")
    x = _x()
    with torch.no_grad():
        full = m(x)
        for i in range(1, len(m.positions)):
            assert torch.allclose(m.forward_from(m.forward_until(x, i - 1), i), full, atol=1e-5)
        # their embedding: dense(mean over time of the final BN+ReLU features) == mean of our dense tokens
        feats = m.forward_until(x, "final_bn")
        assert torch.allclose(m.dense(feats.mean(-1)), full.mean(1), atol=1e-5)


def test_identity_path_pads_channels_and_pools(ckpt):
    m = load_encoder(f"papagei:{ckpt[0]}", device="cpu")
    blk = m.basicblock_list[4]  # widening block 8 -> 16 filters, no downsampling
    h = torch.randn(1, 8, 50)
    with torch.no_grad():
        for conv in (blk.conv1.conv, blk.conv2.conv):
            conv.weight.zero_()
            conv.bias.zero_()
        out = blk(h)
    assert torch.equal(out[:, 4:12], h) and out[:, :4].abs().sum() == 0 and out[:, 12:].abs().sum() == 0


def test_wrong_files_and_contract(tmp_path, ckpt):
    path, sd = ckpt
    torch.save({f"module.{k}": v for k, v in sd.items() if not k.startswith("gating_network_2")},
               tmp_path / "no_gate.pt")
    with pytest.raises(EncoderError, match="missing key.*gating_network_2.0.weight"):
        load_encoder(f"papagei:{tmp_path / 'no_gate.pt'}", device="cpu")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(EncoderError, match="not a state dict"):
        load_encoder(f"papagei:{tmp_path / 'list.pt'}", device="cpu")
    with pytest.raises(EncoderError, match="one PPG channel"):
        load_encoder(f"papagei:{path}", device="cpu", ch_names=["PPG", "PPG2"])
    with pytest.raises(EncoderError, match="folder"):
        load_encoder(f"papagei:{tmp_path}", device="cpu")
    assert encoder_spec(f"papagei:{path}").window_range == (2.0, 60.0)


def test_published_size():
    model = papagei.PaPaGeiAdapter()
    assert model.n_params() == papagei.PUBLISHED_PARAMS == n_float(papagei_shapes())
    assert model.positions[-1].out_shape == (3, 512)  # 10 s at 125 Hz -> 3 steps of the 512-d embedding
