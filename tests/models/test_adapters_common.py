"""Checks every adapter kind must pass (built-ins, HuBERT-ECG, generic in both modes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _adapters import ADAPTER_KINDS, build
from bioxbridge_core.models.base import to_tokens


@pytest.fixture(scope="module", params=ADAPTER_KINDS)
def adapter(request, tmp_path_factory):
    return build(request.param, tmp_path_factory.mktemp(request.param.replace(":", "_")))


def _x(adapter, batch=3, seed=0, n_times=None):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, adapter.spec.n_chans, n_times or adapter.spec.n_times, generator=g)


def test_positions_chain_and_layouts(adapter):
    pos = adapter.positions
    assert len(pos) >= 6
    for a, b in zip(pos[:-1], pos[1:]):
        assert a.out_shape == b.in_shape, (a.name, b.name)
        assert a.out_layout == b.in_layout, (a.name, b.name)
    x = _x(adapter, batch=2)
    with torch.no_grad():
        for p in pos:
            h = adapter.forward_until(x, p.name)
            assert tuple(h.shape[1:]) == p.out_shape
            t = to_tokens(h, p.out_layout)
            assert t.shape[1:] == (p.out_tokens, p.out_width)


def test_stage_names_are_module_paths(adapter):
    modules = dict(adapter.named_modules())
    inner = dict(adapter.model.named_modules()) if hasattr(adapter, "model") else {}
    for name in adapter.position_names():
        assert name in modules or name in inner, name


def test_layout_width_axis_is_independent_of_length(adapter):
    """The declared token axis is the one that grows with a longer window; the width axis does not move."""
    if not adapter.spec.flexible_length:
        pytest.skip("fixed-length encoder")
    x2 = _x(adapter, batch=1, n_times=2 * adapter.spec.n_times)
    with torch.no_grad():
        for p in adapter.positions:
            t = to_tokens(adapter.forward_until(x2, p.name), p.out_layout)
            assert t.shape[2] == p.out_width, p.name
            assert t.shape[1] > p.out_tokens, p.name


def test_forward_from_until_consistency(adapter):
    x = _x(adapter)
    with torch.no_grad():
        full = adapter(x)
        n = len(adapter.positions)
        for k in range(n - 1):
            h = adapter.forward_until(x, k)
            out = adapter.forward_from(h, k + 1)
            assert torch.allclose(out, full, atol=1e-5, rtol=1e-4), k


def test_pooled_outputs_match_forward_until(adapter):
    x = _x(adapter, batch=2)
    with torch.no_grad():
        outs = adapter.pooled_outputs(x)
        ins = adapter.pooled_outputs(x, which="in")
        for p in adapter.positions:
            ref = to_tokens(adapter.forward_until(x, p.name), p.out_layout).mean(1)
            assert torch.allclose(outs[p.name], ref, atol=1e-5), p.name
            if p.index > 0:
                assert torch.allclose(ins[p.name], outs[adapter.positions[p.index - 1].name], atol=1e-5)


def test_frozen_outputs_identical_after_train(adapter):
    x = _x(adapter)
    adapter.train()
    assert not adapter.training
    assert not any(p.requires_grad for p in adapter.parameters())
    with torch.no_grad():
        a, b = adapter(x), adapter(x)
    assert torch.equal(a, b)


def test_last_tokens_shape(adapter):
    x = _x(adapter, batch=2)
    with torch.no_grad():
        t = adapter.last_tokens(x)
    last = adapter.positions[-1]
    assert t.shape == (2, last.out_tokens, last.out_width)
    assert np.isfinite(t.numpy()).all()


def test_wrong_channel_count_is_refused(adapter):
    from bioxbridge_core.errors import ConfigError

    bad = np.zeros((1, adapter.spec.n_chans + 1, adapter.spec.n_times), dtype=np.float32)
    with pytest.raises(ConfigError, match="channels"):
        adapter.check_input(bad)
