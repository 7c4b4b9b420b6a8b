"""Calibrated confidence for bridged predictions: temperature scaling, fitted without labels.

A bridged model's softmax is often far too sure of itself (mean confidence 1.00 on windows it
gets wrong). Temperature scaling (Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern
Neural Networks", ICML 2017) divides the logits by one scalar ``T > 0`` chosen to minimise the
negative log-likelihood on held-out data; it never changes which class wins.

Here the held-out data are the bridge's **pair-validation** windows (the subjects held out
for checkpoint selection) and the targets are the **old model's own predictions** on the
real old signal of those pairs, so no label is needed. The calibrated confidence therefore
estimates *how likely the old model, given the old signal, would have said the same*; it
does not include the old model's own errors (see its held-out score for those).

The targets are smoothed by ``eps = 1 / (n + 2)`` (Laplace's rule of succession: after n agreements in
n windows, the chance that the next one agrees is (n + 1) / (n + 2)). Without it, a bridge that agrees
with the old model on every calibration window drives T towards 0 and every prediction, wrong ones
included, to a confidence of 1.00 -- the opposite of calibrated.

Why our own fit: scikit-learn offers temperature scaling only through
``CalibratedClassifierCV`` around a scikit-learn estimator (its ``_TemperatureScaling`` is
private); we hold logits of a PyTorch model, so the one-parameter fit is done with
``scipy.optimize.minimize_scalar`` on ``log T`` below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .errors import ConfigError

#: search range of the temperature (searched on log T); the top end turns any logits nearly uniform
T_BOUNDS = (0.01, 1e4)
METHOD = "temperature scaling (Guo et al. 2017)"
TARGET = "the old model's predictions on the pair-validation windows (label-free)"


def _check(logits: Any, targets: Any | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ConfigError(f"logits must have shape (n_windows, n_classes >= 2), got {z.shape}.")
    if not np.isfinite(z).all():
        raise ConfigError("logits contain NaN or infinite values; cannot calibrate.")
    if targets is None:
        return z, None
    y = np.asarray(targets)
    if y.shape != (z.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"targets must be {z.shape[0]} integer class indices, got dtype {y.dtype} shape {y.shape}.")
    if len(y) and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ConfigError(f"targets hold class indices outside 0..{z.shape[1] - 1}.")
    return z, y.astype(np.int64)


def apply_temperature(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities ``softmax(logits / T)``, shape (n_windows, n_classes), float64.

    Raises ``ConfigError`` for a non-positive temperature or malformed logits.
    """
    if not np.isfinite(temperature) or temperature <= 0:
        raise ConfigError(f"temperature must be a positive number, got {temperature!r}.")
    z, _ = _check(logits)
    from scipy.special import softmax

    return softmax(z / float(temperature), axis=1)


def _nll(z: np.ndarray, y: np.ndarray, temperature: float, eps: float = 0.0) -> float:
    """Mean cross-entropy of ``softmax(z / T)`` against one-hot ``y`` smoothed by ``eps``."""
    from scipy.special import log_softmax

    logp = log_softmax(z / temperature, axis=1)
    own = logp[np.arange(len(y)), y]
    if eps <= 0:
        return float(-own.mean())
    k = z.shape[1]
    others = (logp.sum(axis=1) - own) / (k - 1)
    return float(-((1.0 - eps) * own + eps * others).mean())


def smoothing(n: int) -> float:
    """Target smoothing for ``n`` calibration windows: ``1 / (n + 2)`` (rule of succession)."""
    return 1.0 / (n + 2)


def fit_temperature(logits: Any, targets: Any, *, bounds: tuple[float, float] = T_BOUNDS,
                    eps: float | None = None) -> float:
    """The temperature minimising the mean cross-entropy against ``targets`` (smoothed by ``eps``).

    Parameters
    ----------
    logits : array, shape (n_windows, n_classes).
    targets : int array, shape (n_windows,): the class each window should get.
    bounds : search range of T (the optimum is clipped to it).
    eps : target smoothing (default ``smoothing(n)``; 0 gives the plain NLL fit of Guo et al.).
    """
    z, y = _check(logits, targets)
    if len(y) == 0:
        raise ConfigError("no windows to fit a temperature on.")
    from scipy.optimize import minimize_scalar

    e = smoothing(len(y)) if eps is None else float(eps)
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    res = minimize_scalar(lambda t: _nll(z, y, float(np.exp(t)), e), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


def expected_calibration_error(proba: Any, targets: Any, *, n_bins: int = 10) -> float:
    """ECE: mean |confidence - accuracy| over equal-width confidence bins, weighted by bin size."""
    p, y = _check(proba, targets)
    if len(y) == 0:
        return float("nan")
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    correct = (pred == y).astype(float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(conf[sel].mean() - correct[sel].mean())
    return float(ece)


@dataclass
class Calibration:
    """A fitted temperature and how it changed the fit on the calibration windows.

    ``agreement`` is the share of windows where the bridged prediction equals the old model's;
    ``mean_confidence_*`` the mean top-class probability before/after scaling.
    """

    temperature: float = 1.0
    n: int = 0
    agreement: float | None = None
    nll_before: float | None = None
    nll_after: float | None = None
    ece_before: float | None = None
    ece_after: float | None = None
    mean_confidence_before: float | None = None
    mean_confidence_after: float | None = None
    method: str = METHOD
    target: str = TARGET
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Calibration":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in dict(d or {}).items() if k in known})


def calibrate(logits: Any, targets: Any) -> Calibration:
    """Fit a temperature on ``logits`` against ``targets`` and report before/after numbers.

    With no windows the result is ``T = 1`` (uncalibrated) and says so in ``notes``.
    """
    z, y = _check(logits, targets)
    if len(y) == 0:
        return Calibration(notes=["no pair-validation windows: probabilities are not calibrated"])
    t = fit_temperature(z, y)
    before, after = apply_temperature(z, 1.0), apply_temperature(z, t)
    notes = []
    if len(np.unique(y)) < 2:
        notes.append("the old model gave one class to every calibration window: the temperature only "
                     "reflects agreement on that class")
    return Calibration(
        temperature=t, n=int(len(y)), agreement=float((z.argmax(axis=1) == y).mean()),
        nll_before=_nll(z, y, 1.0), nll_after=_nll(z, y, t),
        ece_before=expected_calibration_error(before, y), ece_after=expected_calibration_error(after, y),
        mean_confidence_before=float(before.max(axis=1).mean()),
        mean_confidence_after=float(after.max(axis=1).mean()), notes=notes)


def calibrate_bridge(model: Any, old_encoder: Any, head: Any, x_old: np.ndarray, x_new: np.ndarray, *,
                     targets: np.ndarray | None = None, subjects: Any = None, batch_size: int = 64) -> Calibration:
    """Temperature for a ``BridgedModel`` from paired held-out windows (no labels).

    Parameters
    ----------
    model : the bridged model (new encoder -> bridge -> old layers -> head).
    old_encoder, head : the old model, whose predictions on ``x_old`` are the targets.
    x_old, x_new : paired pair-validation windows, shapes (n, C_old, T_old) and (n, C_new, T_new).
    targets : the old model's predicted class per window, when already computed (skips that pass).
    subjects : subject id per window, for a model that normalises per subject (passed to its logits).
    """
    from .inference.predict import predict_logits

    if len(x_old) != len(x_new):
        raise ConfigError(f"x_old has {len(x_old)} windows but x_new has {len(x_new)}; pairs must be row-aligned.")
    if len(x_new) == 0:
        return calibrate(np.zeros((0, max(2, int(getattr(head, "n_classes", 2))))), np.zeros(0, dtype=np.int64))
    if targets is None:
        kw = {"subjects": subjects} if subjects is not None else {}
        targets = head.predict(old_encoder, x_old, batch_size=batch_size, **kw)
    targets = np.asarray(targets, dtype=np.int64)
    return calibrate(predict_logits(model, x_new, subjects=subjects, batch_size=batch_size), targets)
