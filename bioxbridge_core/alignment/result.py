"""AlignmentResult: everything layer selection measured, and what it picked.

Saved as ``alignment.json`` (scores, positions, selection, n) plus
``features.npz`` (the pooled pair features, ``new_<i>`` / ``old_<j>`` with i, j
indexing ``new_positions`` / ``old_positions``; one row per pair window, same
order on both sides) so the app can redraw maps and the bridge trainer can
reuse the features.

Field meanings:

- ``new_positions`` (M): new-model read positions (pooled stage OUTPUT);
  ``old_positions`` (L): old-model write positions (pooled stage INPUT).
- ``probe_f1`` / ``probe_f1_std`` (M): CV macro-F1 of a linear probe against
  the pseudo labels, grouped by subject when ``probe_cv == "grouped"``.
- ``cka`` (M×L): debiased linear CKA; ``cka_biased`` (M×L): the biased one.
- ``null_cka`` (M×L): mean debiased CKA over ``n_perm`` random shufflings of
  the pair rows (pairs broken) -- what "no relation" scores at this n;
  ``null_cka_std`` its spread.
- ``self_new`` (M×M) / ``self_old`` (L×L): debiased CKA within each model.
- ``selected``: ``{"new_position", "old_position"}`` = argmax probe F1, then
  argmax debiased CKA on that row (``overridden`` true when a user changed it;
  ``auto`` keeps the automatic pick).
- ``ranked``: for every new position, best first by probe F1, its best old
  position with the scores.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .._check import suggest
from .._io import atomic_save_npz, atomic_write_json, read_json
from ..errors import LayerNotFoundError, RunError

ALIGNMENT_JSON = "alignment.json"
FEATURES_NPZ = "features.npz"
FORMAT_VERSION = 1

_MATRICES = ("cka", "cka_biased", "null_cka", "null_cka_std", "self_new", "self_old")
_VECTORS = ("probe_f1", "probe_f1_std")


def _clean(obj: Any) -> Any:
    """JSON-ready: arrays to lists, NaN/inf to None."""
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _array(v: Any) -> np.ndarray:
    return np.array([[np.nan if c is None else c for c in row] for row in v] if v and isinstance(v[0], list)
                    else [np.nan if c is None else c for c in v], dtype=np.float64)


@dataclass
class AlignmentResult:
    """Scores of every candidate position pair and the selected one (see module docstring)."""

    new_positions: list[str]
    old_positions: list[str]
    probe_f1: np.ndarray
    probe_f1_std: np.ndarray
    cka: np.ndarray
    cka_biased: np.ndarray
    null_cka: np.ndarray
    null_cka_std: np.ndarray
    self_new: np.ndarray
    self_old: np.ndarray
    selected: dict
    ranked: list[dict]
    n_pairs: int
    probe_cv: str
    new_encoder: str = ""
    old_encoder: str = ""
    n_perm: int = 0
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    features_new: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)
    features_old: dict[str, np.ndarray] | None = field(default=None, repr=False, compare=False)

    # -- convenience -----------------------------------------------------------------
    @property
    def new_position(self) -> str:
        return self.selected["new_position"]

    @property
    def old_position(self) -> str:
        return self.selected["old_position"]

    def score(self, new_position: str, old_position: str) -> dict:
        """Probe F1 and CKA values for one (new, old) pair."""
        i, j = self._index(new_position, self.new_positions, "new"), self._index(old_position, self.old_positions, "old")
        return {"new_position": new_position, "old_position": old_position,
                "probe_f1": float(self.probe_f1[i]), "cka": float(self.cka[i, j]),
                "cka_biased": float(self.cka_biased[i, j]), "null_cka": float(self.null_cka[i, j])}

    @staticmethod
    def _index(name: str, names: list[str], side: str) -> int:
        if name not in names:
            raise LayerNotFoundError(f"'{name}' is not a {side}-model position of this alignment."
                                     f"{suggest(name, names)} Positions: {', '.join(names)}.")
        return names.index(name)

    def with_override(self, *, new_position: str | None = None, old_position: str | None = None) -> "AlignmentResult":
        """A copy whose selection is set by the user (either side, or both)."""
        new = copy.copy(self)
        sel = dict(self.selected)
        sel.setdefault("auto", {"new_position": self.new_position, "old_position": self.old_position})
        if new_position is not None:
            self._index(new_position, self.new_positions, "new")
            sel["new_position"] = new_position
        if old_position is not None:
            self._index(old_position, self.old_positions, "old")
            sel["old_position"] = old_position
        auto = sel["auto"]
        sel["overridden"] = (sel["new_position"], sel["old_position"]) != (auto["new_position"], auto["old_position"])
        new.selected = sel
        return new

    # -- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready dict (features excluded; NaN stored as null)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("features_new", "features_old")}
        d["format_version"] = FORMAT_VERSION
        return _clean(d)

    @classmethod
    def from_dict(cls, d: dict) -> "AlignmentResult":
        d = dict(d)
        d.pop("format_version", None)
        try:
            kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
            for k in _MATRICES + _VECTORS:
                kw[k] = _array(kw[k]) if kw.get(k) is not None and len(kw[k]) else np.zeros((0,))
            for k in _MATRICES:
                if kw[k].ndim == 1 and kw[k].size == 0:
                    kw[k] = kw[k].reshape(0, 0)
            return cls(**kw)
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(f"alignment data is incomplete or from another version: {exc}") from exc

    def save(self, folder: str | Path) -> Path:
        """Write ``alignment.json`` and (when features are held) ``features.npz`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.features_new is not None and self.features_old is not None:
            arrays = {f"new_{i}": self.features_new[p] for i, p in enumerate(self.new_positions)
                      if p in self.features_new}
            arrays.update({f"old_{j}": self.features_old[p] for j, p in enumerate(self.old_positions)
                           if p in self.features_old})
            atomic_save_npz(folder / FEATURES_NPZ, **arrays)
        atomic_write_json(folder / ALIGNMENT_JSON, self.to_dict())
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, features: bool = True) -> "AlignmentResult":
        """Read a folder written by ``save`` (features too when present and asked for)."""
        folder = Path(folder)
        path = folder / ALIGNMENT_JSON
        if not path.is_file():
            raise RunError(f"{path}: no alignment saved here.")
        res = cls.from_dict(read_json(path))
        npz = folder / FEATURES_NPZ
        if features and npz.is_file():
            with np.load(npz, allow_pickle=False) as z:
                res.features_new = {p: z[f"new_{i}"] for i, p in enumerate(res.new_positions) if f"new_{i}" in z.files}
                res.features_old = {p: z[f"old_{j}"] for j, p in enumerate(res.old_positions) if f"old_{j}" in z.files}
        return res
