import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _bridge_toys import channels_encoder, tokens_encoder  # noqa: E402

from bioxbridge_core.bridge import Bridge, BridgeConfig  # noqa: E402
from bioxbridge_core.errors import ConfigError  # noqa: E402
from bioxbridge_core.models.base import from_tokens  # noqa: E402


@pytest.mark.parametrize("r,Np,d_new,N_old,d_old", [(8, 50, 12, 10, 16), (1, 1, 1, 1, 1), (4, 7, 33, 25, 8)])
def test_param_formula_equals_counted_parameters(r, Np, d_new, N_old, d_old):
    br = Bridge(d_new, N_old, d_old, rank=r, n_prototypes=Np)
    counted = sum(p.numel() for p in br.parameters())
    assert br.n_params() == counted == Bridge.param_count(r, Np, d_new, N_old, d_old)
    assert br.A.shape == (r, d_new) and br.B.shape == (Np * N_old, r) and br.P.shape == (d_old, Np)
    assert not any(n.endswith("bias") for n, _ in br.named_parameters())


@pytest.mark.parametrize("layout", ["tokens", "channels"])
def test_zero_output_at_initialisation(layout):
    br = Bridge(6, 5, 3, rank=2, n_prototypes=4, out_layout=layout)
    out = br(torch.randn(7, 6))
    assert torch.count_nonzero(out) == 0
    assert out.shape == ((7, 5, 3) if layout == "tokens" else (7, 3, 5))
    assert torch.count_nonzero(br.A) > 0  # only B is zero


def test_init_is_seeded():
    a, b, c = (Bridge(6, 5, 3, seed=s) for s in (1, 1, 2))
    assert torch.equal(a.A, b.A) and torch.equal(a.P, b.P)
    assert not torch.equal(a.A, c.A)


@pytest.mark.parametrize("layout", ["tokens", "channels"])
def test_output_layout_token_n_is_P_times_w(layout):
    torch.manual_seed(0)
    d_new, N, d, r, Np = 4, 5, 3, 2, 6
    br = Bridge(d_new, N, d, rank=r, n_prototypes=Np, out_layout=layout)
    with torch.no_grad():
        br.B.normal_()
        br.P.normal_()
    z = torch.randn(2, d_new)
    w = (br.B @ (br.A @ z.T)).T.reshape(2, Np, N)  # one weight per (prototype, token)
    out = br(z)
    for b in range(2):
        for n in range(N):
            expected = br.P @ w[b, :, n]  # (d_old,) token n
            got = out[b, n, :] if layout == "tokens" else out[b, :, n]
            assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("make,pos_name", [(tokens_encoder, "blocks.1"), (channels_encoder, "layer1")])
def test_fitted_bridge_recovers_a_known_old_layer_input(make, pos_name):
    """Old-layer input linearly determined by the features: a fitted bridge reproduces it in the layer's layout."""
    enc = make()
    pos = enc.position(pos_name)
    N, d, layout = pos.in_tokens, pos.in_width, pos.in_layout
    assert N != d  # a token/feature mix-up would show
    g = torch.Generator().manual_seed(0)
    r, d_new, n = 3, 20, 64
    u = torch.randn(n, r, generator=g)
    z = u @ torch.randn(r, d_new, generator=g)
    h_true = from_tokens(torch.einsum("nr,rtd->ntd", u, torch.randn(r, N, d, generator=g)), layout)
    assert tuple(h_true.shape[1:]) == pos.in_shape
    br = Bridge(d_new, N, d, rank=4, n_prototypes=d + 4, out_layout=layout)
    opt = torch.optim.Adam(br.parameters(), lr=2e-2)
    for _ in range(400):
        loss = ((br(z) - h_true) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        h_fit = br(z)
        rel = float((h_fit - h_true).norm() / h_true.norm())
        out_fit, out_true = enc.forward_from(h_fit, pos.index), enc.forward_from(h_true, pos.index)
        rel_out = float((out_fit - out_true).norm() / out_true.norm())
    assert rel < 0.05
    assert rel_out < 0.05


def test_from_positions_sizes_from_discovered_shapes():
    new, old = channels_encoder(), tokens_encoder()
    br = Bridge.from_positions(new.position("layer2"), old.position("blocks.1"), BridgeConfig(rank=3, n_prototypes=5))
    assert (br.d_new, br.n_tokens_old, br.d_old, br.out_layout) == (12, 10, 16, "tokens")
    br2 = Bridge.from_positions(old.position("blocks.2"), new.position("layer1"), BridgeConfig())
    assert (br2.d_new, br2.n_tokens_old, br2.d_old, br2.out_layout) == (16, 25, 8, "channels")
    assert br2(torch.randn(2, 16)).shape == (2, *new.position("layer1").in_shape)


def test_init_prototypes_uses_real_tokens_and_checks_width():
    br = Bridge(4, 3, 2, n_prototypes=3)
    tokens = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    br.init_prototypes(tokens, seed=1)
    cols = {tuple(c.tolist()) for c in br.P.T}
    assert cols <= {tuple(t.tolist()) for t in tokens} and len(cols) == 3
    with pytest.raises(ConfigError, match="shape"):
        br.init_prototypes(torch.zeros(10, 5))


def test_wrong_input_width_is_reported():
    with pytest.raises(ConfigError, match=r"\(batch, 4\)"):
        Bridge(4, 3, 2)(torch.zeros(2, 5))
