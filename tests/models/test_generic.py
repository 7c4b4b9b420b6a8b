"""GenericAdapter modes and the hook helpers."""

from __future__ import annotations

import pytest
import torch

from _adapters import ChainNet, GluedNet
from bioxbridge_core.errors import EncoderError, LayerNotFoundError
from bioxbridge_core.models.adapters.generic import GenericAdapter
from bioxbridge_core.models.hooks import capture_outputs, replace_input
from bioxbridge_core.spec import SignalSpec

SPEC = SignalSpec("ECG", 100.0, 2.0, n_chans=1)
BLOCKS = [f"blocks.{i}" for i in range(5)]
LAYOUTS = {"stem": ("channels", "tokens"), **{b: ("tokens", "tokens") for b in BLOCKS}}


def test_auto_mode_picks_sequential_for_a_chain_and_hooks_otherwise():
    assert GenericAdapter(ChainNet(), BLOCKS, spec=SPEC, embed="embed").mode == "sequential"
    assert GenericAdapter(GluedNet(), BLOCKS, spec=SPEC, embed="stem", layouts=LAYOUTS).mode == "hooks"


def test_hook_mode_equals_sequential_on_a_chain():
    torch.manual_seed(0)
    net = ChainNet().eval()
    seq = GenericAdapter(net, BLOCKS, spec=SPEC, embed="embed", mode="sequential").freeze()
    hook = GenericAdapter(net, BLOCKS, spec=SPEC, embed="embed", mode="hooks").freeze()
    x = torch.randn(2, 1, 200)
    with torch.no_grad():
        assert torch.allclose(seq(x), hook(x), atol=1e-6)
        for k in range(1, 6):
            assert torch.allclose(seq.forward_until(x, k), hook.forward_until(x, k), atol=1e-6)
        h = torch.randn(2, 20, 16)
        assert torch.allclose(seq.forward_from(h, 3), hook.forward_from(h, 3), atol=1e-6)
    assert [p.out_shape for p in seq.positions] == [p.out_shape for p in hook.positions]


def test_hook_mode_reads_the_glued_value():
    """Stage j's output in hook mode is what block j+1 receives (after the GELU glue)."""
    torch.manual_seed(0)
    net = GluedNet().eval()
    ad = GenericAdapter(net, BLOCKS, spec=SPEC, embed="stem", layouts=LAYOUTS).freeze()
    x = torch.randn(2, 1, 200)
    with torch.no_grad():
        h = net.stem(x).transpose(1, 2)
        h = torch.nn.functional.gelu(net.blocks[0](h, 0.5))
        assert torch.allclose(ad.forward_until(x, "blocks.0"), h, atol=1e-6)


def test_unknown_block_name_suggests():
    with pytest.raises(LayerNotFoundError, match="Did you mean 'embed.conv'"):
        GenericAdapter(ChainNet(), ["embed.cnv"], spec=SPEC)


def test_bad_layouts_and_empty_blocks():
    with pytest.raises(EncoderError):
        GenericAdapter(ChainNet(), [], spec=SPEC)
    with pytest.raises(EncoderError, match="layouts"):
        GenericAdapter(ChainNet(), BLOCKS, spec=SPEC, layouts=[("tokens", "tokens")])


def test_capture_and_replace_remove_their_hooks_even_on_error():
    net = ChainNet()
    x = torch.randn(1, 1, 200)
    with pytest.raises(RuntimeError):
        with capture_outputs(net, ["blocks.0"]) as got, replace_input(net, "blocks.1", torch.zeros(3)):
            net(x)
    assert "blocks.0" in got  # captured before the failure
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    # pre-hooks run in registration order: the replacement registered first is what gets captured
    with replace_input(net, "blocks.2", torch.ones(1, 20, 16)), capture_outputs(net, ["blocks.2"], which="in") as got_in:
        net(x)
    assert torch.equal(got_in["blocks.2"], torch.ones(1, 20, 16))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_generic_never_evals_names():
    with pytest.raises(LayerNotFoundError):
        GenericAdapter(ChainNet(), ["__import__('os')"], spec=SPEC)
