"""Linear CKA: feature-space forms against the explicit Gram definitions."""

from __future__ import annotations

import numpy as np
import pytest

from bioxbridge_core.alignment.cka import (CKAValue, cka_maps, cka_matrix, gram_cka, linear_cka,
                                           shuffled_baseline)
from bioxbridge_core.errors import ConfigError


def kornblith_gram_cka(X, Y, debiased):
    """Second, independent Gram reference: the published unbiased-centring construction."""
    def centre(g, unbiased):
        g = g.copy()
        n = g.shape[0]
        if unbiased:
            np.fill_diagonal(g, 0)
            means = g.sum(0) / (n - 2)
            means -= means.sum() / (2 * (n - 1))
            g -= means[:, None]
            g -= means[None, :]
            np.fill_diagonal(g, 0)
        else:
            means = g.mean(0)
            means -= means.mean() / 2
            g -= means[:, None]
            g -= means[None, :]
        return g
    K, L = centre(X @ X.T, debiased), centre(Y @ Y.T, debiased)
    return float((K * L).sum() / (np.linalg.norm(K) * np.linalg.norm(L)))


def related(rng, n, p, q, noise=1.0, offset=3.0):
    X = rng.standard_normal((n, p)) + offset * rng.standard_normal(p)
    Y = X[:, : min(p, q)] @ rng.standard_normal((min(p, q), q)) + noise * rng.standard_normal((n, q)) + offset
    return X, Y


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n,p,q", [(6, 3, 4), (40, 25, 10), (150, 60, 90)])
def test_equals_gram_definition(rng, n, p, q, debiased):
    X, Y = related(rng, n, p, q)
    fast = linear_cka(X, Y, debiased=debiased)
    assert fast == pytest.approx(gram_cka(X, Y, debiased=debiased), abs=1e-6)
    assert fast == pytest.approx(kornblith_gram_cka(X, Y, debiased), abs=1e-6)


def test_result_carries_n(rng):
    X, Y = related(rng, 30, 5, 5)
    v = linear_cka(X, Y, debiased=True)
    assert isinstance(v, CKAValue) and v.n == 30 and v.debiased
    assert cka_matrix([X], [Y]).n == 30
    assert shuffled_baseline([X], [Y], n_perm=2).n == 30


@pytest.mark.parametrize("debiased", [False, True])
def test_invariances(rng, debiased):
    X, Y = related(rng, 80, 20, 15)
    base = linear_cka(X, Y, debiased=debiased)
    q, _ = np.linalg.qr(rng.standard_normal((20, 20)))
    assert linear_cka(X @ q, Y, debiased=debiased) == pytest.approx(base, abs=1e-9)
    assert linear_cka(7.5 * X, 0.01 * Y, debiased=debiased) == pytest.approx(base, abs=1e-9)
    assert linear_cka(X + 100.0, Y - 5.0, debiased=debiased) == pytest.approx(base, abs=1e-8)
    # not invariant to an anisotropic scaling: guards against a trivially constant function
    assert abs(linear_cka(X * np.linspace(0.01, 10, 20), Y, debiased=debiased) - base) > 1e-3


def test_self_is_one(rng):
    X = rng.standard_normal((50, 30)) + 2
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X, X, debiased=True) == pytest.approx(1.0, abs=1e-12)


def test_debiased_near_zero_for_independent_at_small_n(rng):
    biased, deb = [], []
    for _ in range(10):
        X, Y = rng.standard_normal((50, 768)), rng.standard_normal((50, 768))
        biased.append(linear_cka(X, Y))
        deb.append(linear_cka(X, Y, debiased=True))
    assert min(biased) > 0.85  # the biased estimator is badly inflated here (METHOD: about 0.94)
    assert max(np.abs(deb)) < 0.15  # one draw: sd about 0.03 at this n
    assert abs(np.mean(deb)) < 0.03  # unbiased: centred on 0


def test_cka_maps_match_pairwise_float64_and_float32(rng):
    A = [related(rng, 70, w, 5)[0] for w in (12, 30, 7)]
    B = [A[0] @ rng.standard_normal((12, 9)) + rng.standard_normal((70, 9)), rng.standard_normal((70, 20))]
    ref_d = np.array([[gram_cka(a, b, debiased=True) for b in B] for a in A])
    ref_b = np.array([[gram_cka(a, b) for b in B] for a in A])
    ref_self = np.array([[gram_cka(a, b, debiased=True) for b in A] for a in A])
    m64 = cka_maps(A, B, dtype=np.float64)
    np.testing.assert_allclose(m64.cross_debiased, ref_d, atol=1e-9)
    np.testing.assert_allclose(m64.cross_biased, ref_b, atol=1e-9)
    np.testing.assert_allclose(m64.self_a_debiased, ref_self, atol=1e-9)
    m32 = cka_maps([a.astype(np.float32) for a in A], [b.astype(np.float32) for b in B])
    np.testing.assert_allclose(m32.cross_debiased, ref_d, atol=1e-5)
    np.testing.assert_allclose(m32.cross_biased, ref_b, atol=1e-5)
    assert m64.self_b_debiased.shape == (2, 2) and m64.n == 70
    np.testing.assert_allclose(cka_matrix(A, B, debiased=False).values, ref_b, atol=1e-5)
    np.testing.assert_allclose(cka_matrix(A).values, ref_self, atol=1e-5)


def test_shuffled_baseline_near_zero_debiased(rng):
    X, Y = related(rng, 200, 30, 30, noise=0.5)
    assert linear_cka(X, Y, debiased=True) > 0.3
    null = shuffled_baseline([X], [Y], n_perm=10, seed=1)
    assert abs(null.mean[0, 0]) < 0.05 and null.n_perm == 10
    null_b = shuffled_baseline([X], [Y], n_perm=10, seed=1, debiased=False)
    assert null_b.mean[0, 0] > null.mean[0, 0] + 0.05  # the biased null sits well above 0
    again = shuffled_baseline([X], [Y], n_perm=10, seed=1)
    np.testing.assert_array_equal(again.mean, null.mean)


def test_constant_features_give_a_defined_zero_with_a_warning(rng):
    X = rng.standard_normal((20, 4))
    with pytest.warns(RuntimeWarning, match=r"feats_a\[1\] are constant"):
        m = cka_maps([X, np.ones((20, 3))], [X])
    assert m.cross_debiased[1, 0] == 0.0 and m.cross_biased[1, 0] == 0.0  # defined, never NaN
    assert np.isfinite(m.self_a_debiased).all() and m.self_a_debiased[1, 1] == 0.0
    assert m.cross_debiased[0, 0] == pytest.approx(1.0, abs=1e-5)
    # constant up to float64 rounding (1e6 + 1 ulp noise) is constant too, at any scale
    Z = 1e6 + np.spacing(1e6) * rng.integers(0, 2, size=(20, 3))
    with pytest.warns(RuntimeWarning, match="constant"):
        assert linear_cka(X, Z, debiased=True) == 0.0
    with pytest.warns(RuntimeWarning, match="constant"):
        assert shuffled_baseline([X], [np.zeros((20, 2))], n_perm=2).mean[0, 0] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-20, 1e-8, 1e6, 1e12])
def test_same_answer_at_any_scale(rng, scale, dtype):
    X, Y = related(rng, 120, 40, 30)
    ref_b, ref_d = gram_cka(X, Y), gram_cka(X, Y, debiased=True)
    a, b = (X * scale).astype(dtype), (Y * scale).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-9
    assert linear_cka(a, b) == pytest.approx(ref_b, abs=tol)
    assert linear_cka(a, b, debiased=True) == pytest.approx(ref_d, abs=tol)
    m = cka_maps([a, (X / scale).astype(dtype)], [b])  # the two sets at wildly different scales
    np.testing.assert_allclose(m.cross_biased[:, 0], ref_b, atol=1e-5)
    np.testing.assert_allclose(m.cross_debiased[:, 0], ref_d, atol=1e-5)
    assert np.isfinite(m.self_a_debiased).all()


def test_bad_inputs(rng):
    X = rng.standard_normal((10, 3))
    with pytest.raises(ConfigError, match="same number of windows"):
        cka_maps([X], [X[:5]])
    with pytest.raises(ConfigError, match="at least 4"):
        linear_cka(X[:3], X[:3], debiased=True)
    with pytest.raises(ConfigError, match="NaN"):
        cka_maps([np.full((10, 3), np.nan)], [X])
    with pytest.raises(ConfigError, match="list"):
        cka_maps(X, [X])
    with pytest.raises(ConfigError, match="n_perm"):
        shuffled_baseline([X], [X], n_perm=0)
