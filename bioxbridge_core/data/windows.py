"""PairedWindows: time-synchronised windows of both modalities with their origin.

Each row of ``meta`` says where a window came from (subject, recording,
split, start time) and its label (a class name, or missing for unlabelled
pair windows). Splits are always by subject; see ``data.splits``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .._io import atomic_save_npz
from ..errors import WindowingError

META_COLUMNS = ("subject", "recording", "split", "start_s", "label")
SPLITS = ("train", "pair", "val", "test")


@dataclass(eq=False)
class PairedWindows:
    """Windows of the old and new modality, row-aligned.

    Parameters
    ----------
    x_old : ndarray, shape (n_windows, n_chans_old, n_times_old), float32, or None.
    x_new : ndarray, shape (n_windows, n_chans_new, n_times_new), float32, or None.
    meta : DataFrame with ``META_COLUMNS``; ``label`` is a class name or missing.
    old_channels, new_channels : channel names picked on each side.
    sfreq_old, sfreq_new : sampling rates (Hz) after resampling to each encoder.
    window_s, step_s : window length and step in seconds.
    label_names : sorted class names across all splits.
    dropped : reason -> number of windows dropped (gap, NaN, flat line...).
    dropped_windows : the same per split and class: dicts ``{split, label, reason, n}`` (label None
        for unlabelled stretches).
    dropped_spans : labelled spans that gave no window: dicts ``{recording, subject, split, label,
        start_s, end_s, origin, reason}`` (reasons in ``data.pairing.ALL_DROP_REASONS``).
    recordings : per recording, how its two sides were aligned: ``offset_s`` (new start minus old
        start), ``common_start_s``/``common_end_s``/``overlap_s`` (old file's time base),
        durations, ``aligned_on``, gap counts, windows kept.
    preprocessing : what filtering/normalisation was applied (for the run store).
    """

    x_old: np.ndarray | None
    x_new: np.ndarray | None
    meta: pd.DataFrame
    old_channels: list[str] = field(default_factory=list)
    new_channels: list[str] = field(default_factory=list)
    sfreq_old: float = 0.0
    sfreq_new: float = 0.0
    window_s: float = 0.0
    step_s: float = 0.0
    label_names: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    dropped_windows: list[dict] = field(default_factory=list)
    dropped_spans: list[dict] = field(default_factory=list)
    recordings: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = [c for c in META_COLUMNS if c not in self.meta.columns]
        if missing:
            raise WindowingError(f"PairedWindows.meta lacks columns {missing}.")
        n = len(self.meta)
        for name in ("x_old", "x_new"):
            x = getattr(self, name)
            if x is not None and (x.ndim != 3 or x.shape[0] != n):
                raise WindowingError(f"{name} has shape {x.shape}; expected ({n}, n_chans, n_times).")
        self.meta = self.meta.reset_index(drop=True)
        if not self.label_names:
            labs = self.meta["label"].dropna().astype(str).unique().tolist()
            self.label_names = sorted(labs)

    def __len__(self) -> int:
        return len(self.meta)

    def __repr__(self) -> str:
        parts = [f"{len(self)} windows of {self.window_s:g} s"]
        if self.x_old is not None:
            parts.append(f"old {len(self.old_channels)} ch @ {self.sfreq_old:g} Hz")
        if self.x_new is not None:
            parts.append(f"new {len(self.new_channels)} ch @ {self.sfreq_new:g} Hz")
        parts.append(f"classes {self.label_names}")
        return "<PairedWindows | " + " | ".join(parts) + ">"

    # -- selection ------------------------------------------------------------
    def subset(self, rows: Sequence[int] | np.ndarray) -> "PairedWindows":
        """Windows at ``rows`` (indices or boolean mask), keeping label_names."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return PairedWindows(
            x_old=None if self.x_old is None else self.x_old[rows],
            x_new=None if self.x_new is None else self.x_new[rows],
            meta=self.meta.iloc[rows].reset_index(drop=True),
            old_channels=list(self.old_channels), new_channels=list(self.new_channels),
            sfreq_old=self.sfreq_old, sfreq_new=self.sfreq_new, window_s=self.window_s, step_s=self.step_s,
            label_names=list(self.label_names), dropped=dict(self.dropped), preprocessing=dict(self.preprocessing),
            dropped_windows=[dict(d) for d in self.dropped_windows],
            dropped_spans=[dict(d) for d in self.dropped_spans], recordings=[dict(d) for d in self.recordings],
        )

    def split(self, *names: str) -> "PairedWindows":
        """Windows whose ``split`` is one of ``names``."""
        bad = [n for n in names if n not in SPLITS]
        if bad:
            raise WindowingError(f"Unknown split(s) {bad}; splits are {SPLITS}.")
        return self.subset(self.meta["split"].isin(names).to_numpy())

    def labels(self) -> np.ndarray:
        """Integer class per window (index into ``label_names``), -1 where unlabelled."""
        lookup = {n: i for i, n in enumerate(self.label_names)}
        return np.array([lookup.get(str(v), -1) if pd.notna(v) else -1 for v in self.meta["label"]], dtype=np.int64)

    def labelled(self) -> "PairedWindows":
        return self.subset(self.labels() >= 0)

    @property
    def subjects(self) -> np.ndarray:
        return self.meta["subject"].astype(str).to_numpy()

    def counts(self) -> pd.DataFrame:
        """Windows per split and class (``unlabelled`` for missing labels)."""
        lab = self.meta["label"].astype(object).where(self.meta["label"].notna(), "unlabelled")
        return pd.crosstab(self.meta["split"], lab.astype(str))

    def drop_table(self) -> pd.DataFrame:
        """Dropped windows and labelled spans per split, class and reason.

        Columns ``split, label, kind`` (``"window"`` or ``"span"``), ``reason``, ``n``; ``label`` is
        ``"unlabelled"`` for windows of unlabelled stretches.
        """
        rows = [{"split": d["split"], "label": "unlabelled" if d["label"] is None else str(d["label"]),
                 "kind": "window", "reason": d["reason"], "n": int(d["n"])} for d in self.dropped_windows]
        spans: dict[tuple, int] = {}
        for d in self.dropped_spans:
            key = (d["split"], str(d["label"]), d["reason"])
            spans[key] = spans.get(key, 0) + 1
        rows += [{"split": s, "label": lab, "kind": "span", "reason": r, "n": n} for (s, lab, r), n in spans.items()]
        df = pd.DataFrame(rows, columns=["split", "label", "kind", "reason", "n"])
        if len(df):
            df = df.groupby(["split", "label", "kind", "reason"], as_index=False)["n"].sum()
        return df

    def summary(self) -> dict:
        """JSON-ready summary for the CLI and the Data page.

        Keys: ``n_windows``, ``window_s``, ``step_s``, ``label_names``; ``per_split`` (split -> class
        or ``unlabelled`` -> windows kept); ``labelled``/``unlabelled`` (split -> windows);
        ``subjects_per_split``; ``dropped`` (reason -> windows); ``dropped_per_split`` (split -> class
        -> reason -> windows or spans, see ``drop_table``); ``dropped_spans`` (every labelled span
        that gave no window, with its reason); ``recordings`` (offset and overlap of each
        recording's two sides).
        """
        counts = self.counts()
        per_split = {s: {c: int(v) for c, v in row.items()} for s, row in counts.iterrows()}
        drops: dict[str, dict[str, dict[str, int]]] = {}
        for r in self.drop_table().itertuples(index=False):
            key = r.reason if r.kind == "window" else f"span:{r.reason}"
            drops.setdefault(r.split, {}).setdefault(r.label, {})[key] = int(r.n)
        return {
            "n_windows": len(self),
            "window_s": self.window_s,
            "step_s": self.step_s,
            "label_names": self.label_names,
            "per_split": per_split,
            "labelled": {s: sum(v for c, v in d.items() if c != "unlabelled") for s, d in per_split.items()},
            "unlabelled": {s: d.get("unlabelled", 0) for s, d in per_split.items()},
            "subjects_per_split": {
                s: sorted(map(str, g["subject"].unique())) for s, g in self.meta.groupby("split")
            },
            "dropped": dict(self.dropped),
            "dropped_per_split": drops,
            "dropped_spans": [dict(d) for d in self.dropped_spans],
            "recordings": [dict(d) for d in self.recordings],
        }

    # -- persistence ----------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write an .npz (plain arrays + JSON header; loadable without pickle)."""
        header = {
            "old_channels": self.old_channels, "new_channels": self.new_channels,
            "sfreq_old": self.sfreq_old, "sfreq_new": self.sfreq_new, "window_s": self.window_s,
            "step_s": self.step_s, "label_names": self.label_names, "dropped": self.dropped,
            "preprocessing": self.preprocessing, "dropped_windows": self.dropped_windows,
            "dropped_spans": self.dropped_spans, "recordings": self.recordings,
            "meta": json.loads(self.meta.to_json(orient="records")),
        }
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        if self.x_old is not None:
            arrays["x_old"] = self.x_old
        if self.x_new is not None:
            arrays["x_new"] = self.x_new
        return atomic_save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "PairedWindows":
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            x_old = z["x_old"] if "x_old" in z.files else None
            x_new = z["x_new"] if "x_new" in z.files else None
        meta = pd.DataFrame(header.pop("meta"), columns=list(META_COLUMNS))
        return cls(x_old=x_old, x_new=x_new, meta=meta, **header)
