"""Linear probes: how well each new-model position predicts the pseudo labels.

For each position: standardise, logistic regression, cross-validated macro-F1
against the old model's pseudo labels (METHOD step 1). Folds are grouped by
subject when there are at least ``n_splits`` subjects (windows of one subject
never sit on both sides of a fold), else stratified by class; the result says
which in its ``cv`` column and ``attrs["cv"]``.

Scale: each position's features are centred and divided by one number (their
overall RMS, in float64, after dividing by their largest magnitude) before the
per-feature ``StandardScaler``, so no step sees values near float limits and
features of 1e-20 or 1e12, float32 or float64, give the same scores (tested).
Columns whose spread is at the rounding level of float64 count as constant.
A position whose features are all
constant cannot be probed: its folds predict the training fold's majority
class (a defined, chance-level F1), with a note in ``note`` and a logged
warning -- never NaN.
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._check import check_range
from ..errors import ConfigError

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
COLUMNS = ("position", "f1_mean", "f1_std", "n", "cv", "n_splits", "note")


def _splits(y: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int) -> tuple[list, str, int]:
    """Fold indices, the kind of CV used and the number of folds actually used."""
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

    n = len(y)
    if groups is not None and len(np.unique(groups)) >= n_splits:
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # "least populated class has fewer members" -> fine here
            warnings.simplefilter("ignore", UserWarning)
            return list(cv.split(np.zeros(n), y, groups)), "grouped", n_splits
    min_class = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
    k = min(n_splits, n)
    if min_class >= 2:
        k = min(k, min_class)  # every fold gets at least one window of every class
        cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(cv.split(np.zeros(n), y)), "stratified", k
    cv = KFold(n_splits=k, shuffle=True, random_state=seed)  # a class with one window cannot be stratified
    return list(cv.split(np.zeros(n))), "kfold", k


def _rescale(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """Features centred and divided by their overall RMS (float64); True when they are all constant."""
    x = np.asarray(x, dtype=np.float64)
    amax = float(np.max(np.abs(x))) if x.size else 0.0
    if amax == 0.0:
        return np.zeros_like(x), True
    xs = x / amax
    xc = xs - xs.mean(axis=0)
    eps = 64 * float(np.finfo(np.float64).eps)
    col_ss, col_ref = np.einsum("ij,ij->j", xc, xc), np.einsum("ij,ij->j", xs, xs)
    keep = col_ss > eps ** 2 * col_ref  # spread at rounding level is no spread
    if not keep.any():
        return np.zeros_like(x), True
    xc[:, ~keep] = 0.0
    return xc / np.sqrt(col_ss[keep].sum() / xc.size), False


def _majority_f1(y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    vals, counts = np.unique(y[train], return_counts=True)
    pred = np.full(len(test), vals[np.argmax(counts)])
    return float(f1_score(y[test], pred, average="macro", zero_division=0))


def _fold_f1(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classes = np.unique(y[train])
    if len(classes) < 2:  # the training fold saw one class: predict it
        pred = np.full(len(test), classes[0])
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings on tiny folds
            model.fit(x[train], y[train])
        pred = model.predict(x[test])
    return float(f1_score(y[test], pred, average="macro", zero_division=0))


def probe_scores(features: Mapping[str, np.ndarray], y: np.ndarray, *, groups: Sequence | None = None,
                 n_splits: int = 5, seed: int = 0, on_progress: ProgressFn | None = None) -> pd.DataFrame:
    """Cross-validated macro-F1 of a linear probe at each position.

    Parameters
    ----------
    features : position name -> ndarray, shape (n_windows, width).
    y : ndarray of int, shape (n_windows,): pseudo labels.
    groups : subject per window (grouped folds when >= ``n_splits`` subjects).
    n_splits : number of folds.

    Returns
    -------
    DataFrame with columns ``position, f1_mean, f1_std, n, cv, n_splits, note``,
    one row per position in input order; ``attrs["cv"]`` is ``"grouped"``,
    ``"stratified"``, ``"kfold"`` or ``"none"`` (a single class: every score is 0).
    """
    check_range("n_splits", n_splits, low=2, integer=True, owner="probe_scores")
    if not features:
        raise ConfigError("probe_scores got no features.")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ConfigError(f"y must be 1-D (one pseudo label per window); got shape {y.shape}.")
    n = len(y)
    for name, x in features.items():
        if np.ndim(x) != 2 or len(x) != n:
            raise ConfigError(f"features['{name}'] has shape {np.shape(x)}; expected ({n}, width) like y.")
    g = None if groups is None else np.asarray(groups).astype(str)
    if g is not None and len(g) != n:
        raise ConfigError(f"groups has {len(g)} entries but y has {n}.")

    names = list(features)
    n_classes = len(np.unique(y))
    if n_classes < 2 or n < 4:
        note = (f"only one pseudo-label class ({y[0] if n else 'none'}) among {n} windows: nothing to probe"
                if n_classes < 2 else f"only {n} windows: too few to cross-validate")
        log.warning("probe_scores: %s; scores set to 0", note)
        df = pd.DataFrame([{"position": p, "f1_mean": 0.0, "f1_std": 0.0, "n": n, "cv": "none",
                            "n_splits": 0, "note": note} for p in names], columns=list(COLUMNS))
        df.attrs.update(cv="none", note=note, n=n)
        return df

    folds, cv_kind, k = _splits(y, g, int(n_splits), int(seed))
    note = "" if cv_kind == "grouped" else (
        f"fewer than {n_splits} subjects: folds are not grouped by subject" if g is not None
        else "no subjects given: folds are not grouped")
    rows = []
    for i, name in enumerate(names):
        raw = np.asarray(features[name])
        if not np.issubdtype(raw.dtype, np.number) or not np.isfinite(raw).all():
            raise ConfigError(f"features['{name}'] contain NaN, infinite or non-numeric values.")
        x, constant = _rescale(raw)
        row_note = note
        if constant:
            row_note = "; ".join(filter(None, [note, "constant features: nothing to learn, each fold predicts its "
                                                     "training majority class"]))
            log.warning("probe_scores: features of position '%s' are constant; its F1 is that of predicting "
                        "the majority class.", name)
            scores = [_majority_f1(y, tr, te) for tr, te in folds]
        else:
            scores = [_fold_f1(x, y, tr, te, int(seed)) for tr, te in folds]
        rows.append({"position": name, "f1_mean": float(np.mean(scores)), "f1_std": float(np.std(scores)),
                     "n": n, "cv": cv_kind, "n_splits": k, "note": row_note})
        if on_progress is not None:
            on_progress(i + 1, len(names), f"probe {name}: F1 {rows[-1]['f1_mean']:.3f}")
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df.attrs.update(cv=cv_kind, note=note, n=n)
    return df
