"""The held-out pair-validation split, by subject (never by window when subjects are known)."""

from __future__ import annotations

import logging
import math
import warnings
from typing import Sequence

import numpy as np

from ..errors import ConfigError

logger = logging.getLogger(__name__)


def pair_val_split(n: int, groups: Sequence | np.ndarray | None, val_fraction: float, *,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted ``(train_idx, val_idx)`` over ``range(n)``.

    With two or more groups (subjects), about ``val_fraction`` of the groups go to
    validation (at least one, never all). With one group or none, windows are split
    at random and a warning says so (overlapping windows then leak between the two).
    ``val_fraction == 0`` gives an empty validation set.
    """
    if n < 1:
        raise ConfigError("no pairs to train on.")
    idx = np.arange(n)
    if val_fraction <= 0:
        return idx, idx[:0]
    rng = np.random.default_rng(seed)
    if groups is not None:
        g = np.asarray(groups).astype(str)
        if g.shape != (n,):
            raise ConfigError(f"groups has {g.shape[0] if g.ndim else 0} entries but there are {n} pairs.")
        uniq = np.unique(g)
        if uniq.size >= 2:
            k = min(uniq.size - 1, max(1, int(round(val_fraction * uniq.size))))
            val_groups = rng.choice(uniq, size=k, replace=False)
            mask = np.isin(g, val_groups)
            logger.info("pair-val split by subject: %d of %d subjects (%d windows) held out", k, uniq.size, mask.sum())
            return idx[~mask], idx[mask]
    if n < 2:
        warnings.warn("Only one pair: no validation split; the last epoch is kept.", stacklevel=3)
        return idx, idx[:0]
    warnings.warn("Pairs come from a single subject (or subjects are unknown): the pair-validation split is by "
                  "window, so overlapping windows may leak between training and validation.", stacklevel=3)
    k = min(n - 1, max(1, int(math.ceil(val_fraction * n))))
    val = np.sort(rng.choice(n, size=k, replace=False))
    return np.setdiff1d(idx, val), val
