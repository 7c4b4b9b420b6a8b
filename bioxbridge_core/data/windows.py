"""PairedWindows: time-synchronised windows of both modalities with their origin.

Each row of ``meta`` says where a window came from (subject, recording,
split, start time) and its label (a class name, or missing for unlabelled
pair windows). Splits are always by subject; see ``data.splits``.

Storage: ``save("x.npz")`` writes one compressed-free ``.npz`` (arrays held in memory);
``save(folder)`` writes ``x_old.npy``, ``x_new.npy`` and ``windows.json`` into a folder
and ``load(folder)`` maps the arrays read-only from disk (``numpy.memmap``), so a cohort
of any size costs address space, not memory. ``PairedWindowsWriter`` builds such a
folder one recording at a time (what pairing calls), so memory never holds the cohort.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import _npy
from .._io import atomic_save_npz, atomic_write_json
from ..errors import WindowingError

META_COLUMNS = ("subject", "recording", "split", "start_s", "label")
SPLITS = ("train", "pair", "val", "test")
#: files of a windows folder (``save(folder)`` / ``PairedWindowsWriter``)
WINDOWS_JSON, X_OLD_NPY, X_NEW_NPY = "windows.json", "x_old.npy", "x_new.npy"
FOLDER_FORMAT = "bioxbridge-windows/1"
#: a subset of memory-mapped windows larger than this is written to disk beside its source
SUBSET_IN_MEMORY_BYTES = 32 * 2**20


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
    #: folder whose ``.npy`` files ``x_old``/``x_new`` map (None for arrays in memory)
    folder: Path | None = field(default=None, repr=False)

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
        """Windows at ``rows`` (indices or boolean mask), keeping label_names.

        For memory-mapped windows a contiguous run of rows is a view; other subsets larger
        than ``SUBSET_IN_MEMORY_BYTES`` are copied, in chunks, into memory-mapped files under
        ``<folder>/subsets/`` (reused when asked again), so memory stays flat.
        """
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64, copy=False)
        common = dict(meta=self.meta.iloc[rows].reset_index(drop=True),
                      old_channels=list(self.old_channels), new_channels=list(self.new_channels),
                      sfreq_old=self.sfreq_old, sfreq_new=self.sfreq_new, window_s=self.window_s,
                      step_s=self.step_s, label_names=list(self.label_names), dropped=dict(self.dropped),
                      preprocessing=dict(self.preprocessing),
                      dropped_windows=[dict(d) for d in self.dropped_windows],
                      dropped_spans=[dict(d) for d in self.dropped_spans],
                      recordings=[dict(d) for d in self.recordings])
        if self.folder is not None:
            if rows.size and np.array_equal(rows, np.arange(rows[0], rows[0] + rows.size)):
                sl = slice(int(rows[0]), int(rows[0]) + rows.size)
                return PairedWindows(x_old=None if self.x_old is None else self.x_old[sl],
                                     x_new=None if self.x_new is None else self.x_new[sl], folder=self.folder,
                                     **common)
            if self._row_bytes() * rows.size > SUBSET_IN_MEMORY_BYTES:
                return self._subset_on_disk(rows, common)
        return PairedWindows(x_old=None if self.x_old is None else _npy.take_rows(self.x_old, rows),
                             x_new=None if self.x_new is None else _npy.take_rows(self.x_new, rows), **common)

    def _row_bytes(self) -> int:
        return sum(int(np.prod(x.shape[1:])) * x.dtype.itemsize for x in (self.x_old, self.x_new) if x is not None)

    def _subset_on_disk(self, rows: np.ndarray, common: dict) -> "PairedWindows":
        h = hashlib.blake2b(rows.tobytes(), digest_size=12).hexdigest()
        target = Path(self.folder) / "subsets" / h
        if not (target / WINDOWS_JSON).is_file():
            with PairedWindowsWriter(target) as w:
                step = max(1, _npy.rows_per_chunk(self.x_old if self.x_old is not None else self.x_new))
                for s in range(0, rows.size, step):
                    r = rows[s: s + step]
                    w.add(None if self.x_old is None else _npy.take_rows(self.x_old, r),
                          None if self.x_new is None else _npy.take_rows(self.x_new, r), common["meta"].iloc[s: s + step])
                w.finish(**{k: v for k, v in common.items() if k != "meta"})
        out = PairedWindows.load(target)
        return out

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
    def _header(self) -> dict:
        return {
            "old_channels": self.old_channels, "new_channels": self.new_channels,
            "sfreq_old": self.sfreq_old, "sfreq_new": self.sfreq_new, "window_s": self.window_s,
            "step_s": self.step_s, "label_names": self.label_names, "dropped": self.dropped,
            "preprocessing": self.preprocessing, "dropped_windows": self.dropped_windows,
            "dropped_spans": self.dropped_spans, "recordings": self.recordings,
            "meta": json.loads(self.meta.to_json(orient="records")),
        }

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` when ``path`` ends in ``.npz`` (plain arrays + JSON header; loadable
        without pickle), otherwise a windows folder (``x_old.npy``, ``x_new.npy``, ``windows.json``)
        written in chunks, which ``load`` memory-maps."""
        if Path(path).suffix.lower() == ".npz":
            arrays = {"header": np.frombuffer(json.dumps(self._header()).encode(), dtype=np.uint8)}
            if self.x_old is not None:
                arrays["x_old"] = np.asarray(self.x_old)
            if self.x_new is not None:
                arrays["x_new"] = np.asarray(self.x_new)
            return atomic_save_npz(path, **arrays)
        with PairedWindowsWriter(path, overwrite=True) as w:
            ref = self.x_old if self.x_old is not None else self.x_new
            step = _npy.rows_per_chunk(ref) if ref is not None else max(1, len(self))
            for sl in _npy.row_chunks(len(self), step):
                w.add(None if self.x_old is None else np.asarray(self.x_old[sl]),
                      None if self.x_new is None else np.asarray(self.x_new[sl]), self.meta.iloc[sl])
                _npy.release(self.x_old, self.x_new)
            w.finish(**{k: v for k, v in self._header().items() if k != "meta"})
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "PairedWindows":
        """Read an ``.npz`` written by ``save`` (into memory) or a windows folder (memory-mapped)."""
        path = Path(path)
        if path.is_dir():
            try:
                header = json.loads((path / WINDOWS_JSON).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise WindowingError(f"{path}: not a complete windows folder ({exc}).") from None
            if header.pop("format", None) != FOLDER_FORMAT:
                raise WindowingError(f"{path / WINDOWS_JSON}: unknown windows folder format.")
            arrays = {}
            for key, name in (("x_old", X_OLD_NPY), ("x_new", X_NEW_NPY)):
                arrays[key] = _npy.open_npy(path / name) if header.pop(f"has_{key}") else None
            records = header.pop("meta")
            extra = [c for c in (records[0] if records else {}) if c not in META_COLUMNS]
            meta = pd.DataFrame(records, columns=list(META_COLUMNS) + extra)
            return cls(**arrays, meta=meta, folder=path, **header)
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            x_old = z["x_old"] if "x_old" in z.files else None
            x_new = z["x_new"] if "x_new" in z.files else None
        meta = pd.DataFrame(header.pop("meta"), columns=list(META_COLUMNS))
        return cls(x_old=x_old, x_new=x_new, meta=meta, **header)


class PairedWindowsWriter:
    """Build a memory-mapped windows folder one block (e.g. one recording) at a time.

    ``add(x_old, x_new, meta)`` appends rows to ``x_old.npy``/``x_new.npy`` on disk (only
    the block is in memory); ``finish(**header)`` writes ``windows.json`` and publishes the
    folder atomically (built in a temporary folder beside it, then renamed), returning the
    memory-mapped ``PairedWindows``. Used as a context manager, an exception discards
    everything. The sides named in ``subject_zscore`` are stored raw and z-scored per subject
    and channel (``"zscore-subject"`` of ``data.preprocess``) in one chunked pass at ``finish``,
    from statistics accumulated in float64 while adding; per-window normalisation is the
    caller's (``data.preprocess.normalise_windows`` on each block).

    Parameters
    ----------
    folder : the windows folder to create.
    overwrite : replace an existing folder (otherwise a folder finished first by another
        process is kept and this one discarded).
    subject_zscore : ``"x_old"`` and/or ``"x_new"``: sides to z-score per subject at ``finish``.
    """

    def __init__(self, folder: str | Path, *, overwrite: bool = False, subject_zscore: Sequence[str] = ()) -> None:
        bad = [s for s in subject_zscore if s not in ("x_old", "x_new")]
        if bad:
            raise WindowingError(f"PairedWindowsWriter: subject_zscore takes 'x_old'/'x_new', not {bad}.")
        self.folder = Path(folder)
        self.overwrite, self.subject_zscore = overwrite, tuple(subject_zscore)
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.folder.name}.", suffix=".tmp", dir=self.folder.parent))
        self._out: dict[str, _npy.NpyAppender | None] = {}
        self._metas: list[pd.DataFrame] = []
        self._stats: dict[str, dict[str, np.ndarray]] = {"x_old": {}, "x_new": {}}
        self.n_rows = 0

    def add(self, x_old: np.ndarray | None, x_new: np.ndarray | None, meta: pd.DataFrame) -> None:
        """Append ``len(meta)`` windows: ``x_old`` (k, C_old, T_old), ``x_new`` (k, C_new, T_new) float32."""
        k = len(meta)
        for key, name, x in (("x_old", X_OLD_NPY, x_old), ("x_new", X_NEW_NPY, x_new)):
            if key not in self._out:
                self._out[key] = None if x is None else _npy.NpyAppender(self._tmp / name, np.shape(x)[1:])
            out = self._out[key]
            if (out is None) != (x is None):
                raise WindowingError(f"PairedWindowsWriter: {key} given for some blocks but not others.")
            if out is None:
                continue
            x = np.asarray(x, dtype=np.float32)
            if x.ndim != 3 or x.shape[0] != k:
                raise WindowingError(f"{key} has shape {x.shape}; expected ({k}, n_chans, n_times).")
            if key in self.subject_zscore:
                self._accumulate(key, x, meta["subject"].astype(str).to_numpy())
            out.append(x)
        self._metas.append(meta.reset_index(drop=True))
        self.n_rows += k

    def _accumulate(self, key: str, x: np.ndarray, subjects: np.ndarray) -> None:
        for s in np.unique(subjects):
            xs = x[subjects == s].astype(np.float64)
            acc = self._stats[key].setdefault(s, np.zeros((3, x.shape[1])))
            acc[0] += xs.shape[0] * xs.shape[2]
            acc[1] += xs.sum(axis=(0, 2))
            acc[2] += np.square(xs).sum(axis=(0, 2))

    def _normalise_in_place(self, path: Path, key: str, subjects: np.ndarray) -> None:
        from .preprocess import _EPS

        stats = {}
        for s, (cnt, s1, s2) in self._stats[key].items():
            mu = s1 / cnt
            stats[s] = (mu, np.maximum(np.sqrt(np.maximum(s2 / cnt - mu**2, 0.0)), _EPS))
        arr = np.load(path, mmap_mode="r+", allow_pickle=False)
        for sl in _npy.row_chunks(arr.shape[0], _npy.rows_per_chunk(arr)):
            block = arr[sl].astype(np.float64)
            for s in np.unique(subjects[sl]):
                sel = subjects[sl] == s
                mu, sd = stats[s]
                block[sel] = (block[sel] - mu[None, :, None]) / sd[None, :, None]
            arr[sl] = block.astype(np.float32)
            arr.flush()
            _npy.release(arr)
        del arr

    def finish(self, **header) -> PairedWindows:
        """Publish the folder with ``header`` (PairedWindows fields except arrays and meta)."""
        meta = pd.concat(self._metas, ignore_index=True) if self._metas else pd.DataFrame(columns=list(META_COLUMNS))
        for key, out in self._out.items():
            if out is not None:
                out.close()
        subjects = meta["subject"].astype(str).to_numpy()
        for key, name in (("x_old", X_OLD_NPY), ("x_new", X_NEW_NPY)):
            if key in self.subject_zscore and self._out.get(key) is not None:
                self._normalise_in_place(self._tmp / name, key, subjects)
        header = dict(header)
        header.pop("folder", None)
        if not header.get("label_names"):
            header["label_names"] = sorted(meta["label"].dropna().astype(str).unique().tolist())
        doc = {"format": FOLDER_FORMAT, "has_x_old": self._out.get("x_old") is not None,
               "has_x_new": self._out.get("x_new") is not None, **header,
               "meta": json.loads(meta.to_json(orient="records"))}
        atomic_write_json(self._tmp / WINDOWS_JSON, doc)
        if not _npy.publish_folder(self._tmp, self.folder, overwrite=self.overwrite):
            return PairedWindows.load(self.folder)  # another process finished it first
        arrays = {k: _npy.open_npy(self.folder / n) if self._out.get(k) is not None else None
                  for k, n in (("x_old", X_OLD_NPY), ("x_new", X_NEW_NPY))}
        return PairedWindows(**arrays, meta=meta, folder=self.folder, **header)

    def abort(self) -> None:
        """Discard everything written so far."""
        for out in self._out.values():
            if out is not None:
                out.abort()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "PairedWindowsWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self.abort()
        elif self._tmp.exists():  # finish() was never called
            self.abort()
