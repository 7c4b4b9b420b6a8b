"""Classification metrics shared by the head, the bridge, the baselines and the report.

``classification_metrics`` returns plain floats and a full confusion matrix
(all ``n_classes`` rows/columns even when a class is absent), and never
crashes on degenerate inputs such as a test set with a single class.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._check import check_option, check_random_state
from .errors import ConfigError


def _check_labels(y: object, n_classes: int, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D class indices, got shape {arr.shape}.")
    if arr.size == 0:
        raise ConfigError(f"{name} is empty: no windows to score.")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ConfigError(f"{name} must hold integer class indices, got dtype {arr.dtype}.")
        arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= n_classes)]
    if bad.size:
        raise ConfigError(f"{name} has class index {int(bad[0])} outside 0..{n_classes - 1}.")
    return arr.astype(np.int64)


def classification_metrics(y_true, y_pred, n_classes: int) -> dict:
    """Balanced accuracy, macro/weighted F1, Cohen's kappa, accuracy and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n,), class indices in ``0..n_classes-1``.
    n_classes : number of classes of the task (fixes the confusion matrix size).

    Returns a dict: ``balanced_accuracy``, ``f1_macro``, ``f1_weighted``,
    ``accuracy`` (in [0, 1]), ``cohen_kappa`` (in [-1, 1]), ``confusion``
    (list of lists, rows = true class, columns = predicted) and ``n``.
    F1 averages over the classes present in ``y_true`` or ``y_pred`` (scikit-learn's
    default), so a class absent from both does not count as a zero. Kappa is
    undefined when both label vectors are one constant class; we report 1.0
    when they agree everywhere and 0.0 otherwise.
    """
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, cohen_kappa_score, confusion_matrix,
                                 f1_score)

    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ConfigError(f"n_classes must be a positive integer, got {n_classes!r}.")
    yt = _check_labels(y_true, int(n_classes), "y_true")
    yp = _check_labels(y_pred, int(n_classes), "y_pred")
    if yt.shape != yp.shape:
        raise ConfigError(f"y_true has {yt.size} labels but y_pred has {yp.size}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bacc = float(balanced_accuracy_score(yt, yp))
        f1m = float(f1_score(yt, yp, average="macro", zero_division=0))
        f1w = float(f1_score(yt, yp, average="weighted", zero_division=0))
        kappa = float(cohen_kappa_score(yt, yp))
    if not np.isfinite(kappa):
        kappa = 1.0 if np.array_equal(yt, yp) else 0.0
    cm = confusion_matrix(yt, yp, labels=list(range(int(n_classes))))
    return {
        "balanced_accuracy": bacc,
        "f1_macro": f1m,
        "f1_weighted": f1w,
        "cohen_kappa": kappa,
        "accuracy": float(accuracy_score(yt, yp)),
        "confusion": cm.astype(int).tolist(),
        "n": int(yt.size),
    }


def chance_predictions(y_true, n_classes: int, *, strategy: str = "stratified",
                       seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Predictions of a classifier that ignores the signal.

    ``"stratified"`` (default): random labels drawn with the class frequencies
    of ``y_true`` (a guesser that knows the prior; expected balanced accuracy
    1/K). ``"majority"``: always the most frequent class of ``y_true`` (ties:
    lowest index; balanced accuracy exactly 1/K over the present classes).
    """
    check_option("strategy", strategy, ("stratified", "majority"), owner="chance_predictions")
    yt = _check_labels(y_true, int(n_classes), "y_true")
    counts = np.bincount(yt, minlength=int(n_classes)).astype(float)
    if strategy == "majority":
        return np.full(yt.shape, int(np.argmax(counts)), dtype=np.int64)
    rng = check_random_state(seed)
    return rng.choice(int(n_classes), size=yt.size, p=counts / counts.sum()).astype(np.int64)


def chance_metrics(y_true, n_classes: int, *, seed: int | np.random.Generator | None = 0,
                   strategy: str = "stratified") -> dict:
    """``classification_metrics`` of ``chance_predictions`` (see there for the strategies)."""
    yp = chance_predictions(y_true, n_classes, strategy=strategy, seed=seed)
    out = classification_metrics(y_true, yp, n_classes)
    out["strategy"] = strategy
    return out
