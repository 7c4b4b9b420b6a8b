"""Deterministic subject splits and grouped folds.

Splits are always by subject (or recording), never by window: overlapping
windows of one recording in two splits would leak. Given the same subjects
and seed, the assignment is identical on every machine: the sorted subject
list is permuted by ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import logging
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .._check import check_random_state
from ..errors import ConfigError
from .windows import SPLITS

logger = logging.getLogger(__name__)

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.3, "pair": 0.4, "test": 0.3}
_MAX_CLASS_TRIES = 200  # permutations tried to put every class in train and test


def check_fractions(fractions: Mapping[str, float] | None) -> dict[str, float]:
    """Validate split fractions (keys from ``SPLITS``, non-negative) and normalise them to sum 1."""
    fr = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    bad = [k for k in fr if k not in SPLITS]
    if bad:
        raise ConfigError(f"Unknown split name(s) {bad} in fractions; allowed: {SPLITS}.")
    for k, v in fr.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v) or v < 0:
            raise ConfigError(f"Split fraction for '{k}' must be a number >= 0, got {v!r}.")
    total = float(sum(fr.values()))
    if total <= 0:
        raise ConfigError(f"Split fractions must not all be zero, got {fr}.")
    return {k: float(v) / total for k, v in fr.items() if v > 0}


def _split_sizes(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Subjects per split: largest-remainder rounding, and >= 1 each when n allows it."""
    names = [s for s in SPLITS if s in fractions]
    raw = np.array([fractions[s] * n for s in names])
    sizes = np.floor(raw).astype(int)
    order = np.argsort(-(raw - sizes), kind="stable")
    for i in order[: n - int(sizes.sum())]:
        sizes[i] += 1
    if n >= len(names):  # every split gets a subject: take from the largest
        for i in range(len(names)):
            while sizes[i] == 0:
                j = int(np.argmax(sizes))
                sizes[j] -= 1
                sizes[i] += 1
    return dict(zip(names, sizes.tolist()))


def assign_splits(subjects: Iterable, *, seed: int = 0, fractions: Mapping[str, float] | None = None,
                  classes: Mapping[str, Iterable[str]] | None = None) -> dict[str, str]:
    """Map each subject to a split, deterministically from ``seed``.

    Parameters
    ----------
    subjects : subject identifiers (repeats are fine; compared as strings).
    seed : seed of the permutation of the sorted subject list.
    fractions : split -> fraction of subjects (default train 0.3 / pair 0.4 / test 0.3).
    classes : optional subject -> class names it has. Up to 200 seeded permutations are
        tried so that every class has a subject in ``train`` and in ``test``; the first
        permutation is kept (with a warning) when none manages it.

    Returns
    -------
    dict subject -> split name.
    """
    fr = check_fractions(fractions)
    subs = sorted({str(s) for s in subjects})
    if not subs:
        return {}
    sizes = _split_sizes(len(subs), fr)
    rng = check_random_state(seed)
    cls = {str(k): {str(c) for c in v} for k, v in (classes or {}).items()}
    all_classes = set().union(*cls.values()) if cls else set()
    need = [s for s in ("train", "test") if sizes.get(s, 0) > 0]

    def assign(perm: np.ndarray) -> dict[str, str]:
        out, i = {}, 0
        for name in (s for s in SPLITS if s in sizes):
            for j in perm[i: i + sizes[name]]:
                out[subs[j]] = name
            i += sizes[name]
        return out

    first = None
    for attempt in range(_MAX_CLASS_TRIES if all_classes else 1):
        mapping = assign(rng.permutation(len(subs)))
        first = first or mapping
        ok = all(
            all_classes <= set().union(*(cls.get(s, set()) for s, sp in mapping.items() if sp == split))
            for split in need
        )
        if ok:
            return mapping
    logger.warning("Could not place every class %s in both train and test with %d subjects; "
                   "kept the seed's first split.", sorted(all_classes), len(subs))
    return first


def split_by(meta: pd.DataFrame, column: str = "subject", *, seed: int = 0,
             fractions: Mapping[str, float] | None = None, label_column: str | None = "label") -> pd.Series:
    """Split name per row of ``meta``, grouping rows by ``column`` (subject by default).

    Classes found in ``label_column`` (when present) are used to try to put every
    class in train and test.
    """
    if column not in meta.columns:
        raise ConfigError(f"Cannot split by '{column}': columns are {list(meta.columns)}.")
    groups = meta[column].astype(str)
    classes = None
    if label_column and label_column in meta.columns:
        lab = meta[label_column]
        has = lab.notna() & (lab.astype(str) != "")
        classes = {g: set(v.astype(str)) for g, v in lab[has].groupby(groups[has])}
    mapping = assign_splits(groups, seed=seed, fractions=fractions, classes=classes)
    return groups.map(mapping).rename("split")


def grouped_folds(groups: Sequence, n_splits: int = 5, seed: int = 0, y: Sequence | None = None
                  ) -> tuple[list[tuple[np.ndarray, np.ndarray]], bool]:
    """Cross-validation folds that keep each group (subject) in one fold.

    Uses ``StratifiedGroupKFold`` when ``y`` is given, else ``GroupKFold``
    (group order shuffled by ``seed``). With fewer groups than ``n_splits`` it
    falls back to (stratified) folds over windows and says so.

    Returns
    -------
    folds : list of (train_index, test_index) integer arrays.
    grouped : True when folds respect groups, False for the window-level fallback.
    """
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

    groups = np.asarray([str(g) for g in groups])
    n = len(groups)
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ConfigError(f"n_splits must be an integer >= 2, got {n_splits!r}.")
    if n < 2:
        raise ConfigError(f"Need at least 2 samples for cross-validation, got {n}.")
    y_arr = None if y is None else np.asarray(y)
    if y_arr is not None and len(y_arr) != n:
        raise ConfigError(f"y has {len(y_arr)} entries but groups has {n}.")
    idx = np.arange(n)
    n_groups = len(np.unique(groups))
    if n_groups >= n_splits:
        if y_arr is not None:
            cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            folds = list(cv.split(idx, y_arr, groups))
        else:
            uniq = np.array(sorted(set(groups)))
            perm = np.random.default_rng(seed).permutation(len(uniq))
            fold_of = {g: i % n_splits for i, g in enumerate(uniq[perm])}
            f = np.array([fold_of[g] for g in groups])
            folds = [(idx[f != k], idx[f == k]) for k in range(n_splits)]
        return [(tr, te) for tr, te in folds if len(te) and len(tr)], True
    logger.warning("Only %d groups for %d folds: falling back to window-level folds (may leak between windows "
                   "of one subject).", n_groups, n_splits)
    if y_arr is not None:
        min_count = int(np.unique(y_arr, return_counts=True)[1].min())
        k = min(n_splits, min_count)
        if k >= 2:
            cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
            return list(cv.split(idx, y_arr)), False
    cv = KFold(n_splits=min(n_splits, n), shuffle=True, random_state=seed)
    return list(cv.split(idx)), False
