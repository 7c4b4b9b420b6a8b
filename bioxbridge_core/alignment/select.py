"""Pick where the bridge reads (new model) and writes (old model): METHOD steps 1-2.

1. New side: pooled OUTPUT of every read position; a linear probe per
   position against the pseudo labels; the best CV macro-F1 wins.
2. Old side: pooled INPUT of every write position (the tensor the bridge
   would replace); debiased linear CKA with the chosen new features; the
   highest wins. Biased CKA, a shuffled-pairs baseline and the self-similarity
   maps are kept for display.

Only forward passes are needed: cost is linear in the number of positions.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from .._check import check_range
from ..errors import ConfigError
from ..models.base import EncoderAdapter
from .cka import cka_maps, shuffled_baseline
from .features import collect_features
from .probe import probe_scores
from .result import AlignmentResult

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]


def _argmax(values: np.ndarray) -> int:
    """Index of the largest finite value (first one on ties); 0 when none is finite."""
    v = np.where(np.isfinite(values), values, -np.inf)
    return int(np.argmax(v))


def _given(feats: Mapping[str, np.ndarray], names: list[str], side: str, progress) -> dict[str, np.ndarray]:
    missing = [p for p in names if p not in feats]
    if missing:
        raise ConfigError(f"the precomputed {side}-model features lack positions {missing}; extract every position.")
    if progress is not None:
        progress(1, 1, "precomputed")
    return {p: feats[p] for p in names}


def select_positions(new_positions: list[str], old_positions: list[str], probe_f1: np.ndarray,
                     cka: np.ndarray) -> tuple[dict, list[dict]]:
    """Selection rule: argmax probe F1, then argmax CKA on that row; plus the ranking."""
    i = _argmax(probe_f1)
    j = _argmax(cka[i])
    selected = {"new_position": new_positions[i], "old_position": old_positions[j]}
    order = sorted(range(len(new_positions)),
                   key=lambda k: (-np.nan_to_num(probe_f1[k], nan=-1.0), k))
    ranked = []
    for k in order:
        jj = _argmax(cka[k])
        ranked.append({"new_position": new_positions[k], "old_position": old_positions[jj],
                       "probe_f1": float(probe_f1[k]), "cka": float(cka[k, jj])})
    return selected, ranked


def align(old_encoder: EncoderAdapter, new_encoder: EncoderAdapter, x_old: np.ndarray | None,
          x_new: np.ndarray | None, pseudo_labels: np.ndarray, *, groups: Sequence | None = None, seed: int = 0,
          batch_size: int = 64, device: str | torch.device | None = None, cache: bool = True, n_perm: int = 5,
          n_splits: int = 5, on_progress: ProgressFn | None = None,
          features_new: Mapping[str, np.ndarray] | None = None,
          features_old: Mapping[str, np.ndarray] | None = None) -> AlignmentResult:
    """Score every (new read position, old write position) pair on paired windows and select one.

    Parameters
    ----------
    old_encoder, new_encoder : frozen adapters.
    x_old : ndarray, shape (n_pairs, n_chans_old, n_times_old); x_new : (n_pairs, n_chans_new, n_times_new);
        row i of both is the same moment.
    pseudo_labels : ndarray of int, shape (n_pairs,): old model's predictions on ``x_old``.
    groups : subject per pair window (grouped probe folds).
    n_perm : shuffles for the null CKA baseline.
    features_new, features_old : precomputed pooled features ``{position: (n_pairs, width)}`` (e.g. the
        union of ``features`` shards) for every read / write position; the windows are then not needed.
    """
    y = np.asarray(pseudo_labels)
    n = len(y)
    if (features_new is None and x_new is None) or (features_old is None and x_old is None):
        raise ConfigError("align needs the windows or their precomputed features for both models.")
    lens = [len(a) for a in (x_old, x_new) if a is not None]
    lens += [len(next(iter(f.values()))) for f in (features_new, features_old) if f]
    if any(k != n for k in lens):
        raise ConfigError(f"x_old ({len(x_old)} windows), x_new ({len(x_new)}) and pseudo_labels ({n}) "
                          "must have one row per pair window.")
    if n < 4:
        raise ConfigError(f"Alignment needs at least 4 pair windows; got {n}.")
    check_range("n_perm", n_perm, low=1, integer=True, owner="align")
    total, done = 5, 0

    def stage(msg: str) -> ProgressFn | None:
        nonlocal done
        done += 1
        if on_progress is None:
            return None
        base = done - 1
        on_progress(base, total, msg)
        return lambda s, t, m: on_progress(base, total, f"{msg}: {m} ({s}/{t})")

    new_names = [p.name for p in new_encoder.read_positions]
    old_names = [p.name for p in old_encoder.write_positions]
    if not old_names:
        raise ConfigError(f"{old_encoder.encoder_name} has no write positions (it needs at least 2 stages).")

    feats_new = _given(features_new, new_names, "new", stage("new-model features")) if features_new is not None \
        else collect_features(new_encoder, x_new, positions=new_names, which="out", batch_size=batch_size,
                              device=device, cache=cache, on_progress=stage("new-model features"))
    feats_old = _given(features_old, old_names, "old", stage("old-model features")) if features_old is not None \
        else collect_features(old_encoder, x_old, positions=old_names, which="in", batch_size=batch_size,
                              device=device, cache=cache, on_progress=stage("old-model features"))
    probe = probe_scores(feats_new, y, groups=groups, n_splits=n_splits, seed=seed,
                         on_progress=stage("linear probes"))
    fn, fo = [feats_new[p] for p in new_names], [feats_old[p] for p in old_names]
    maps = cka_maps(fn, fo, self_maps=True, on_progress=stage("CKA maps"))
    null = shuffled_baseline(fn, fo, n_perm=int(n_perm), seed=seed, debiased=True)
    stage("shuffled baseline")

    probe_f1 = probe["f1_mean"].to_numpy(dtype=np.float64)
    selected, ranked = select_positions(new_names, old_names, probe_f1, maps.cross_debiased)
    for r in ranked:
        i, j = new_names.index(r["new_position"]), old_names.index(r["old_position"])
        r.update(cka_biased=float(maps.cross_biased[i, j]), null_cka=float(null.mean[i, j]))
    notes = [probe.attrs["note"]] if probe.attrs.get("note") else []
    if n < 100:
        notes.append(f"only {n} pair windows: scores are uncertain; compare CKA with the shuffled baseline")
    if on_progress is not None:
        on_progress(total, total, f"selected {selected['new_position']} -> {selected['old_position']}")
    log.info("alignment on %d pairs: new %s -> old %s", n, selected["new_position"], selected["old_position"])
    return AlignmentResult(
        new_positions=new_names, old_positions=old_names, probe_f1=probe_f1,
        probe_f1_std=probe["f1_std"].to_numpy(dtype=np.float64),
        cka=maps.cross_debiased, cka_biased=maps.cross_biased, null_cka=null.mean, null_cka_std=null.std,
        self_new=maps.self_a_debiased, self_old=maps.self_b_debiased, selected=selected, ranked=ranked,
        n_pairs=n, probe_cv=str(probe.attrs.get("cv", "")), new_encoder=new_encoder.encoder_name,
        old_encoder=old_encoder.encoder_name, n_perm=int(n_perm), seed=int(seed), notes=notes,
        features_new=feats_new, features_old=feats_old,
    )
