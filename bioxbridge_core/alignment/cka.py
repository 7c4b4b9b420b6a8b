"""Linear CKA between pooled feature sets, computed in feature space.

Linear CKA (Kornblith et al. 2019) of centred ``X`` (n, p) and ``Y`` (n, q)::

    CKA = ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F)

equals the Gram form ``<HKH, HLH> / (||HKH|| ||HLH||)`` with ``K = XXᵀ``,
``L = YYᵀ`` but costs O(n·p·q) and never builds n×n matrices.

The biased estimator is inflated at small n (two independent 50×768 sets
score about 0.9), so we also give the *debiased* form: the unbiased HSIC
estimator of Song et al. (2012) in place of the biased one::

    HSIC₁ = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1 / ((n-1)(n-2)) − 2/(n-2)·1ᵀK̃L̃1] / (n(n-3))

with ``K̃``, ``L̃`` the Gram matrices with zeroed diagonals. HSIC₁ is exactly
invariant to shifting the features, so we centre first (``Xᵀ1 = 0``). Then,
with ``d_X = diag(K)`` (squared row norms) and ``s_X = Σ d_X``:

- ``tr(K̃L̃) = tr(KL) − d_X·d_Y = ||XᵀY||²_F − d_X·d_Y``
- ``K̃1 = X(Xᵀ1) − d_X = −d_X``, so ``1ᵀK̃1 = −s_X`` and ``1ᵀK̃L̃1 = d_X·d_Y``

which gives, all from (n, p) arrays::

    n(n-3)·HSIC₁ = ||XᵀY||²_F + s_X s_Y / ((n-1)(n-2)) − n/(n-2) · d_X·d_Y

Debiased CKA = HSIC₁(X, Y) / sqrt(HSIC₁(X, X) HSIC₁(Y, Y)); it can be
slightly negative.

Scale: both estimators are invariant to scaling each set by a constant, so
each centred set is divided by its own Frobenius norm (computed in float64
after dividing by its largest magnitude) before any product. The answer is then
the same for features of 1e-20 or 1e12, float32 or float64 -- without this,
float32 products underflow to 0 or overflow to inf at such scales.

Constant features: a set with no variance (every column constant, up to the
rounding of its input dtype) shares no structure with anything; its CKA is
defined as **0.0** -- with a ``RuntimeWarning`` (also logged) naming the set --
never NaN. A constant column inside a varying set simply contributes nothing.

``cka_maps`` computes every pair between two lists of feature sets (and the
self-similarity maps) with one float32 BLAS product per map on the stacked,
centred features; per-set quantities are computed once.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .._check import check_random_state
from ..errors import ConfigError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]


class CKAValue(float):
    """A CKA score that remembers how many windows (``n``) it was computed on."""

    n: int
    debiased: bool

    def __new__(cls, value: float, n: int, debiased: bool) -> "CKAValue":
        obj = super().__new__(cls, value)
        obj.n = int(n)
        obj.debiased = bool(debiased)
        return obj

    def __repr__(self) -> str:
        kind = "debiased" if self.debiased else "biased"
        return f"CKAValue({float(self):.4f}, n={self.n}, {kind})"


@dataclass
class CKAMatrix:
    """A map of CKA scores, ``values[i, j]`` = CKA(feats_a[i], feats_b[j]), on ``n`` windows."""

    values: np.ndarray
    n: int
    debiased: bool

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape


@dataclass
class CKAMaps:
    """Cross map A×B and (optionally) self maps A×A, B×B, both estimators, on ``n`` windows."""

    cross_biased: np.ndarray
    cross_debiased: np.ndarray
    n: int
    self_a_biased: np.ndarray | None = None
    self_a_debiased: np.ndarray | None = None
    self_b_biased: np.ndarray | None = None
    self_b_debiased: np.ndarray | None = None


@dataclass
class NullCKA:
    """CKA with the rows of one side shuffled: what "no relation" scores at this ``n``.

    ``mean``/``std`` are over ``n_perm`` permutations, per cell.
    """

    mean: np.ndarray
    std: np.ndarray
    n: int
    n_perm: int
    debiased: bool

    def __array__(self, dtype=None, copy=None):
        return self.mean if dtype is None else self.mean.astype(dtype)


# -- input checks -----------------------------------------------------------------
def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ConfigError(f"{name} must be a 2-D (n_windows, n_features) array; got shape {arr.shape}.")
    if arr.shape[1] == 0:
        raise ConfigError(f"{name} has no features (shape {arr.shape}).")
    if not np.issubdtype(arr.dtype, np.number):
        raise ConfigError(f"{name} must be numeric, got dtype {arr.dtype}.")
    return arr


def _check_sets(sets: Sequence[np.ndarray], label: str) -> list[np.ndarray]:
    if isinstance(sets, np.ndarray):
        raise ConfigError(f"{label} must be a list of (n, p) arrays, not a single array.")
    out = [_as_2d(x, f"{label}[{i}]") for i, x in enumerate(sets)]
    if not out:
        raise ConfigError(f"{label} is empty; give at least one (n, p) feature array.")
    return out


def _check_n(arrays: Sequence[np.ndarray], *, debiased: bool) -> int:
    ns = {a.shape[0] for a in arrays}
    if len(ns) != 1:
        raise ConfigError(f"All feature sets must have the same number of windows (rows); got {sorted(ns)}.")
    n = ns.pop()
    need = 4 if debiased else 2
    if n < need:
        raise ConfigError(f"CKA needs at least {need} windows{' (debiased)' if debiased else ''}; got {n}.")
    return n


# -- per-set preparation --------------------------------------------------------------
@dataclass
class _Side:
    """Stacked centred, norm-scaled features of several sets plus their per-set statistics."""

    z: np.ndarray  # (n, sum p) centred and divided by each set's Frobenius norm, in the working dtype
    offsets: np.ndarray  # start column of each set
    d: np.ndarray  # (n, k) float64 squared row norms of each scaled set
    s: np.ndarray  # (k,) float64 sums of d (1 for a set with variance, 0 for a constant one)
    constant: np.ndarray  # (k,) bool: the set has no variance

    @property
    def n(self) -> int:
        return self.z.shape[0]

    def permuted(self, perm: np.ndarray) -> "_Side":
        # Centring commutes with a row permutation, so no re-centring is needed.
        return _Side(self.z[perm], self.offsets, self.d[perm], self.s, self.constant)


def _rounding(dtype: np.dtype) -> float:
    """Relative size below which a centred value is rounding noise of the input dtype."""
    eps = np.finfo(dtype).eps if np.issubdtype(dtype, np.floating) else np.finfo(np.float64).eps
    return 64 * float(eps)


def _prepare(sets: Sequence[np.ndarray], dtype: np.dtype, chunk_rows: int = 4096) -> _Side:
    n = sets[0].shape[0]
    widths = [x.shape[1] for x in sets]
    offsets = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    z = np.zeros((n, int(sum(widths))), dtype=dtype)
    d = np.zeros((n, len(sets)), dtype=np.float64)
    constant = np.zeros(len(sets), dtype=bool)
    for k, x in enumerate(sets):
        o, w = offsets[k], widths[k]
        amax = float(np.max(np.abs(x))) if x.size else 0.0
        if not np.isfinite(amax):
            raise ConfigError(f"feature set(s) [{k}] contain NaN or infinite values.")
        if amax == 0.0:
            constant[k] = True
            continue
        # Everything in float64 on x / max|x| (so 1e-20 or 1e12 inputs neither underflow nor overflow).
        mu = np.zeros(w)
        for r in range(0, n, chunk_rows):
            mu += np.sum(x[r:r + chunk_rows] / amax, axis=0, dtype=np.float64)
        mu /= n
        col_ss, col_ref = np.zeros(w), np.zeros(w)
        for r in range(0, n, chunk_rows):
            xs = x[r:r + chunk_rows].astype(np.float64) / amax
            col_ss += np.einsum("ij,ij->j", xs - mu, xs - mu)
            col_ref += np.einsum("ij,ij->j", xs, xs)
        # a column whose spread is rounding noise of the input dtype is constant: drop its noise
        keep = col_ss > (_rounding(x.dtype) ** 2) * col_ref
        total = float(col_ss[keep].sum())
        if not keep.any() or total <= 0:
            constant[k] = True
            continue
        scale = np.sqrt(total)
        for r in range(0, n, chunk_rows):
            xc = (x[r:r + chunk_rows].astype(np.float64) / amax - mu) / scale
            xc[:, ~keep] = 0.0
            d[r:r + chunk_rows, k] = np.einsum("ij,ij->i", xc, xc)
            z[r:r + chunk_rows, o:o + w] = xc
    return _Side(z, offsets, d, d.sum(axis=0), constant)


def _define_constant(values: np.ndarray, const_a: np.ndarray, const_b: np.ndarray, label_a: str,
                     label_b: str, *, warn: bool = True) -> np.ndarray:
    """CKA is 0.0 (not NaN) for any pair with a constant set; warn (once per call) naming the sets."""
    mask = np.logical_or.outer(const_a, const_b)
    if mask.any():
        values = np.where(mask, 0.0, values)
    if mask.any() and warn:
        names = [f"{label_a}[{i}]" for i in np.flatnonzero(const_a)] + \
                [f"{label_b}[{j}]" for j in np.flatnonzero(const_b) if label_b != label_a or not const_a[j]]
        msg = (f"CKA: feature set(s) {', '.join(dict.fromkeys(names))} are constant (no variance across windows); "
               "their CKA is set to 0.0 (they share no structure with anything).")
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return values


def _block_sq_norms(g: np.ndarray, offs_a: np.ndarray, offs_b: np.ndarray) -> np.ndarray:
    """``out[i, j]`` = squared Frobenius norm of block (i, j) of ``g``, in float64."""
    np.square(g, out=g)  # g is a scratch product: square in place
    # Block sums as two products with 0/1 indicator matrices (BLAS, not a slow strided reduce);
    # the inner one sums at most one block width of positive terms, the outer one runs in float64.
    ind_b = _indicator(offs_b, g.shape[1], g.dtype)
    rows = (g @ ind_b).astype(np.float64)
    return _indicator(offs_a, g.shape[0], np.float64).T @ rows


def _indicator(offsets: np.ndarray, total: int, dtype) -> np.ndarray:
    """(total, k) matrix with 1 where a column belongs to block k."""
    ind = np.zeros((total, len(offsets)), dtype=dtype)
    ends = np.append(offsets[1:], total)
    for k, (o, e) in enumerate(zip(offsets, ends)):
        ind[o:e, k] = 1
    return ind


def _cross_sq(a: _Side, b: _Side | None) -> np.ndarray:
    """||X_iᵀ Y_j||²_F for all pairs (``b=None``: within ``a``; uses a symmetric product)."""
    if b is None:
        g = a.z.T @ a.z  # numpy dispatches Aᵀ·A to BLAS syrk (half the work)
        return _block_sq_norms(g, a.offsets, a.offsets)
    g = a.z.T @ b.z
    return _block_sq_norms(g, a.offsets, b.offsets)


def _diag_sq(a: _Side) -> np.ndarray:
    """||X_iᵀ X_i||²_F per set (diagonal blocks only)."""
    ends = np.append(a.offsets[1:], a.z.shape[1])
    out = np.empty(len(a.offsets))
    for k, (o, e) in enumerate(zip(a.offsets, ends)):
        blk = np.ascontiguousarray(a.z[:, o:e])
        g = blk.T @ blk
        out[k] = float(np.square(g, dtype=np.float64).sum())
    return out


def _hsic_unbiased_scaled(t: np.ndarray, s_a: np.ndarray, s_b: np.ndarray, dd: np.ndarray, n: int) -> np.ndarray:
    """n(n-3)·HSIC₁ from ||XᵀY||² (t), row-norm sums (s) and d_X·d_Y (dd); broadcasts."""
    return t + np.multiply.outer(s_a, s_b) / ((n - 1) * (n - 2)) - dd * (n / (n - 2))


def _hsic_self_scaled(t_self: np.ndarray, side: _Side) -> np.ndarray:
    """n(n-3)·HSIC₁(X_k, X_k) per set of ``side`` (``t_self`` = ||X_kᵀX_k||²)."""
    n = side.n
    return t_self + side.s ** 2 / ((n - 1) * (n - 2)) - np.einsum("ik,ik->k", side.d, side.d) * (n / (n - 2))


def _ratio(num: np.ndarray, den_a: np.ndarray, den_b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt(np.multiply.outer(den_a, den_b))
        out = num / den
    bad = ~(np.multiply.outer(den_a > 0, den_b > 0)) | ~np.isfinite(out)
    out = np.where(bad, np.nan, out)
    return out


def _maps(a: _Side, b: _Side, *, t_ab: np.ndarray, ta: np.ndarray, tb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = a.n
    biased = _ratio(t_ab, ta, tb)
    h_ab = _hsic_unbiased_scaled(t_ab, a.s, b.s, a.d.T @ b.d, n)
    h_a = _hsic_self_scaled(ta, a)
    h_b = _hsic_self_scaled(tb, b)
    debiased = _ratio(h_ab, h_a, h_b)
    return biased, debiased


# -- public API -----------------------------------------------------------------------
def _resolve_dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ConfigError(f"dtype must be float32 or float64, got {dt}.")
    return dt


def cka_maps(feats_a: Sequence[np.ndarray], feats_b: Sequence[np.ndarray], *, self_maps: bool = True,
             dtype=np.float32, on_progress: ProgressFn | None = None) -> CKAMaps:
    """Biased and debiased linear CKA for every pair (a_i, b_j), plus self maps.

    Parameters
    ----------
    feats_a, feats_b : lists of ndarray, each shape (n, p_k); same n (same windows, same order).
    self_maps : also compute A×A and B×B maps.
    dtype : working precision of the matrix products. float32 (default) is about
        twice as fast and accurate to ~1e-5; float64 for reference-grade values.
        Per-set statistics (means, row norms, sums of squares) are always float64.
    """
    dt = _resolve_dtype(dtype)
    a_sets, b_sets = _check_sets(feats_a, "feats_a"), _check_sets(feats_b, "feats_b")
    n = _check_n(a_sets + b_sets, debiased=True)
    total = 3 + (2 if self_maps else 0)
    step = 0

    def tick(msg: str) -> None:
        nonlocal step
        step += 1
        if on_progress is not None:
            on_progress(step, total, msg)

    a, b = _prepare(a_sets, dt), _prepare(b_sets, dt)
    tick("centred features")
    if self_maps:
        t_aa = _cross_sq(a, None)
        tick("self-similarity A")
        t_bb = _cross_sq(b, None)
        tick("self-similarity B")
        ta, tb = np.diag(t_aa).copy(), np.diag(t_bb).copy()
    else:
        ta, tb = _diag_sq(a), _diag_sq(b)
    t_ab = _cross_sq(a, b)
    tick("cross products")
    cross_b, cross_d = _maps(a, b, t_ab=t_ab, ta=ta, tb=tb)
    cross_b = _define_constant(cross_b, a.constant, b.constant, "feats_a", "feats_b", warn=False)
    cross_d = _define_constant(cross_d, a.constant, b.constant, "feats_a", "feats_b")  # the one warning
    out = CKAMaps(cross_biased=cross_b, cross_debiased=cross_d, n=n)
    if self_maps:
        maps = []
        for side, t_self, diag, label in ((a, t_aa, ta, "feats_a"), (b, t_bb, tb, "feats_b")):
            for m in _maps(side, side, t_ab=t_self, ta=diag, tb=diag):
                m[np.diag_indices_from(m)] = 1.0  # exactly 1 up to rounding
                maps.append(_define_constant(m, side.constant, side.constant, label, label, warn=False))
        out.self_a_biased, out.self_a_debiased, out.self_b_biased, out.self_b_debiased = maps
    tick("CKA maps")
    return out


def cka_matrix(feats_a: Sequence[np.ndarray], feats_b: Sequence[np.ndarray] | None = None, *,
               debiased: bool = True, dtype=np.float32) -> CKAMatrix:
    """CKA for all pairs between two lists of feature sets (``feats_b=None``: within ``feats_a``)."""
    if feats_b is None:
        maps = cka_maps(feats_a, feats_a[:1], self_maps=True, dtype=dtype)
        vals = maps.self_a_debiased if debiased else maps.self_a_biased
    else:
        maps = cka_maps(feats_a, feats_b, self_maps=False, dtype=dtype)
        vals = maps.cross_debiased if debiased else maps.cross_biased
    return CKAMatrix(values=vals, n=maps.n, debiased=debiased)


def linear_cka(X: np.ndarray, Y: np.ndarray, *, debiased: bool = False) -> CKAValue:
    """Linear CKA of one pair of feature sets, in float64, feature space (never n×n).

    X : ndarray, shape (n, p); Y : ndarray, shape (n, q); rows are the same windows.
    Returns a float carrying ``.n`` and ``.debiased``.
    """
    X, Y = _as_2d(X, "X"), _as_2d(Y, "Y")
    n = _check_n([X, Y], debiased=debiased)
    a, b = _prepare([X], np.float64), _prepare([Y], np.float64)
    t_ab = _cross_sq(a, b)
    ta, tb = _diag_sq(a), _diag_sq(b)
    biased, deb = _maps(a, b, t_ab=t_ab, ta=ta, tb=tb)
    value = _define_constant(deb if debiased else biased, a.constant, b.constant, "X", "Y")
    return CKAValue(float(value[0, 0]), n, debiased)


def gram_cka(X: np.ndarray, Y: np.ndarray, *, debiased: bool = False) -> float:
    """Reference implementation with explicit n×n Gram matrices (tests and benchmark only).

    Biased: ``<HKH, HLH> / (||HKH|| ||HLH||)``. Debiased: Song et al. (2012)
    unbiased HSIC on the raw (uncentred) linear kernels.
    """
    X = _as_2d(X, "X").astype(np.float64)
    Y = _as_2d(Y, "Y").astype(np.float64)
    n = _check_n([X, Y], debiased=debiased)
    X, Y = X / max(np.abs(X).max(), 1e-300), Y / max(np.abs(Y).max(), 1e-300)  # scale-free (CKA is)
    K, L = X @ X.T, Y @ Y.T

    if not debiased:
        def centre(G: np.ndarray) -> np.ndarray:
            return G - G.mean(axis=0, keepdims=True) - G.mean(axis=1, keepdims=True) + G.mean()

        Kc, Lc = centre(K), centre(L)
        return float(np.sum(Kc * Lc) / (np.linalg.norm(Kc) * np.linalg.norm(Lc)))

    def hsic1(A: np.ndarray, B: np.ndarray) -> float:
        A, B = A.copy(), B.copy()
        np.fill_diagonal(A, 0.0)
        np.fill_diagonal(B, 0.0)
        one_a, one_b = A.sum(axis=1), B.sum(axis=1)
        val = (np.sum(A * B) + one_a.sum() * one_b.sum() / ((n - 1) * (n - 2))
               - 2.0 / (n - 2) * float(one_a @ one_b))
        return val / (n * (n - 3))

    return float(hsic1(K, L) / np.sqrt(hsic1(K, K) * hsic1(L, L)))


def shuffled_baseline(feats_a: Sequence[np.ndarray], feats_b: Sequence[np.ndarray], *, n_perm: int = 5,
                      seed: int | np.random.Generator | None = 0, debiased: bool = True,
                      dtype=np.float32) -> NullCKA:
    """CKA map with the rows of ``feats_b`` randomly permuted (pairs broken), ``n_perm`` times.

    What "no relation" scores at this n: about 0 for the debiased estimator, and
    well above 0 for the biased one at small n.
    """
    if not isinstance(n_perm, (int, np.integer)) or isinstance(n_perm, bool) or n_perm < 1:
        raise ConfigError(f"n_perm must be an integer >= 1, got {n_perm!r}.")
    dt = _resolve_dtype(dtype)
    a_sets, b_sets = _check_sets(feats_a, "feats_a"), _check_sets(feats_b, "feats_b")
    n = _check_n(a_sets + b_sets, debiased=debiased)
    rng = check_random_state(seed)
    a, b = _prepare(a_sets, dt), _prepare(b_sets, dt)
    ta, tb = _diag_sq(a), _diag_sq(b)
    draws = []
    for _ in range(int(n_perm)):
        bp = b.permuted(rng.permutation(n))
        biased, deb = _maps(a, bp, t_ab=_cross_sq(a, bp), ta=ta, tb=tb)
        draws.append(_define_constant(deb if debiased else biased, a.constant, b.constant, "feats_a", "feats_b",
                                      warn=not draws))
    stack = np.stack(draws)
    return NullCKA(mean=stack.mean(axis=0), std=stack.std(axis=0), n=n, n_perm=int(n_perm), debiased=debiased)
