"""Turn a manifest into time-synchronised, preprocessed windows of both modalities.

Per manifest row:

1. read each side's channels (one read when both live in the same file); when
   the encoder spec names its channels (EEG 10-20), the row's channels are
   matched to them by name or electrode position and put in the spec's order;
2. find the common time span. Two files that both carry a start time are
   aligned on it; when either lacks one, both are taken to start at 0 (the
   files are assumed to be synchronised at their first sample). Times in
   ``meta.start_s`` and the manifest's ``label_start``/``label_end`` are
   seconds from the start of the old-modality file;
3. mark NaN and flat-lined stretches on the raw signal, band-pass the
   continuous recording (``data.preprocess``), resample to each spec's
   ``sfreq``;
4. cut windows of ``window_s`` every ``step_s`` seconds in the common span; drop
   windows touching NaN or flat lines (counted per reason in ``dropped``); a
   window is labelled only when it lies entirely inside the row's labelled span;
5. normalise (z-score per window and channel by default).

Results are cached on disk (``paths.cache_dir("windows")``), keyed by the
manifest content, the files' sizes and modification times, both specs and the
settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import BioXError, RecordingError, WindowingError
from ..spec import SignalSpec
from .manifest import Manifest, read_manifest
from .preprocess import Preprocessing, bad_in_windows, filter_signal, flat_mask, nan_mask, normalise_windows
from .channels import match_channels  # noqa: F401  (moved to data.channels; kept importable here)
from .recording import Recording
from .windows import META_COLUMNS, PairedWindows

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
#: why windows are dropped (keys of ``PairedWindows.dropped``)
DROP_REASONS = {
    "nan_old": "NaN or missing samples in the old modality",
    "nan_new": "NaN or missing samples in the new modality",
    "flat_old": "flat line (constant samples) in the old modality",
    "flat_new": "flat line (constant samples) in the new modality",
}
ProgressFn = Callable[[int, int, str], None]
_TOL_S = 1e-6


@dataclass(eq=False)
class RecordingWindows:
    """Windows of one modality cut from one recording (for inference).

    x : ndarray, shape (n_windows, n_chans, n_times), float32 at the spec's rate, normalised.
    start_s : ndarray, shape (n_windows,), window start in seconds from the recording start.
    dropped : reason -> number of windows dropped.
    ch_names : channels used, in the order of ``x``.
    sfreq : sampling rate of ``x`` in Hz.
    """

    x: np.ndarray
    start_s: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)
    ch_names: list[str] = field(default_factory=list)
    sfreq: float = 0.0

    def __len__(self) -> int:
        return int(self.x.shape[0])


# -- one side of one recording -------------------------------------------------------------------
@dataclass
class _Side:
    data: np.ndarray  # (n_chans, n) at spec.sfreq, filtered
    sfreq: float
    raw_sfreq: float
    nan: np.ndarray  # bad-sample masks at the raw rate
    flat: np.ndarray
    duration_s: float
    start_time: object
    source: str


def _prepare(rec: Recording, spec: SignalSpec, prep: Preprocessing) -> _Side:
    """Quality masks on raw samples, filter at the file's rate, resample to ``spec.sfreq``."""
    raw = rec.data
    nan = nan_mask(raw)
    flat = flat_mask(raw, rec.sfreq, prep.flat_s, prep.flat_tol)
    modality = spec.modality
    filt = filter_signal(raw, rec.sfreq, modality, prep, max_hz=0.45 * spec.sfreq)
    tmp = Recording(data=filt.astype(np.float32), sfreq=rec.sfreq, ch_names=rec.ch_names,
                    ch_types=rec.ch_types, source=rec.source)
    res = tmp.resample(spec.sfreq)
    return _Side(data=res.data, sfreq=spec.sfreq, raw_sfreq=rec.sfreq, nan=nan, flat=flat,
                 duration_s=rec.duration_s, start_time=rec.start_time, source=rec.source)


def _cut(side: _Side, starts_s: np.ndarray, n_times: int) -> np.ndarray:
    """Windows starting at ``starts_s`` (seconds in the side's own time base)."""
    i0 = np.round(starts_s * side.sfreq).astype(np.int64)
    i0 = np.clip(i0, 0, max(side.data.shape[1] - n_times, 0))
    idx = i0[:, None] + np.arange(n_times)[None, :]
    return np.ascontiguousarray(side.data[:, idx].transpose(1, 0, 2), dtype=np.float32)


def _bad_reasons(side: _Side, starts_s: np.ndarray, window_s: float, tag: str) -> dict[str, np.ndarray]:
    return {
        f"nan_{tag}": bad_in_windows(side.nan, side.raw_sfreq, starts_s, window_s),
        f"flat_{tag}": bad_in_windows(side.flat, side.raw_sfreq, starts_s, window_s),
    }


def _window_starts(t0: float, t1: float, window_s: float, step_s: float) -> np.ndarray:
    n = int(np.floor((t1 - t0 - window_s) / step_s + _TOL_S)) + 1
    return t0 + step_s * np.arange(max(n, 0))


def _check_lengths(window_s: float | None, step_s: float | None, spec: SignalSpec) -> tuple[float, float]:
    from .._check import check_range

    window_s = float(spec.window_s if window_s is None else check_range("window_s", window_s, low=0,
                                                                        low_inclusive=False))
    step_s = float(window_s if step_s is None else check_range("step_s", step_s, low=0, low_inclusive=False))
    return window_s, step_s


def _read(path: str, channels: list[str]) -> Recording:
    from .readers import read_recording

    return read_recording(path, channels=channels)


def share_rate(path: str, channels: list[str]) -> bool:
    from .readers import channels_share_rate

    return channels_share_rate(path, channels)


# -- paired windows ------------------------------------------------------------------------------
def _cache_key(manifest: Manifest, old_spec: SignalSpec, new_spec: SignalSpec, window_s: float, step_s: float,
               prep: Preprocessing) -> str:
    files = []
    for f in manifest.files():
        try:
            st = f.stat()
            files.append([str(f), st.st_size, st.st_mtime_ns])
        except OSError:
            files.append([str(f), None, None])
    payload = {
        "version": CACHE_VERSION, "rows": manifest.content(), "files": files,
        "old_spec": old_spec.to_dict(), "new_spec": new_spec.to_dict(),
        "window_s": window_s, "step_s": step_s, "preprocessing": prep.to_dict(),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def make_paired_windows(manifest: Manifest | str | Path, *, old_spec: SignalSpec, new_spec: SignalSpec,
                        window_s: float | None = None, step_s: float | None = None,
                        preprocessing: Preprocessing | None = None, cache: bool = True,
                        on_progress: ProgressFn | None = None) -> PairedWindows:
    """Paired, preprocessed windows of both modalities for every manifest row (see module docstring).

    Parameters
    ----------
    manifest : a ``Manifest`` or the path of a manifest CSV (read with seed 0).
    old_spec, new_spec : input contracts of the old and new encoder (rate, channels).
    window_s : window length in seconds (default ``old_spec.window_s``), same on both sides.
    step_s : step between window starts in seconds (default ``window_s``: no overlap).
    preprocessing : filters and normalisation (default ``Preprocessing()``).
    cache : reuse/save the result under ``paths.cache_dir("windows")``.
    on_progress : ``on_progress(step, total, message)`` after each recording.

    Returns
    -------
    PairedWindows with ``x_old`` (n, C_old, window_s*old_spec.sfreq), ``x_new`` likewise, ``meta``
    (subject, recording, split, start_s, label), and ``dropped`` counts per reason
    (``nan_old``, ``nan_new``, ``flat_old``, ``flat_new``).
    """
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest)
    prep = preprocessing if preprocessing is not None else Preprocessing()
    window_s, step_s = _check_lengths(window_s, step_s, old_spec)
    for spec in (old_spec, new_spec):
        if not spec.flexible_length and abs(spec.window_s - window_s) > _TOL_S:
            logger.warning("window_s=%g s differs from the %s encoder's %g s windows.", window_s, spec.modality,
                           spec.window_s)
        if spec.normalisation != prep.normalisation:
            logger.warning("The %s encoder expects %r inputs but preprocessing uses %r.", spec.modality,
                           spec.normalisation, prep.normalisation)
    src = Path(manifest.source).name
    cache_path = None
    if cache:
        from ..paths import cache_dir

        cache_path = cache_dir("windows") / f"{_cache_key(manifest, old_spec, new_spec, window_s, step_s, prep)}.npz"
        if cache_path.is_file():
            try:
                pw = PairedWindows.load(cache_path)
                logger.info("Loaded %d cached windows from %s", len(pw), cache_path)
                if on_progress:
                    on_progress(len(manifest), len(manifest), "loaded windows from cache")
                return pw
            except (OSError, ValueError, KeyError, BioXError) as exc:
                logger.warning("Ignoring unreadable window cache %s (%s).", cache_path, exc)

    n_old_t, n_new_t = int(round(window_s * old_spec.sfreq)), int(round(window_s * new_spec.sfreq))
    xs_old, xs_new, metas = [], [], []
    dropped: dict[str, int] = {}
    counts: tuple[int, int] | None = None
    first_channels: tuple[list[str], list[str]] | None = None
    total = len(manifest.table)
    for k, row in enumerate(manifest.table.itertuples(index=False), start=1):
        where = f"{src}, row {row.row} ({row.old_file})"
        old_ch = match_channels(row.old_channels, old_spec, where=f"{where}, old side")
        new_ch = match_channels(row.new_channels, new_spec, where=f"{where}, new side")
        if counts is None:
            counts, first_channels = (len(old_ch), len(new_ch)), (old_ch, new_ch)
        elif counts != (len(old_ch), len(new_ch)):
            raise WindowingError(
                f"{where}: {len(old_ch)} old / {len(new_ch)} new channels, but earlier rows have "
                f"{counts[0]} old / {counts[1]} new; every row needs the same channel counts.")
        try:
            if row.old_path == row.new_path and share_rate(row.old_path, old_ch + new_ch):
                both = _read(row.old_path, list(dict.fromkeys(old_ch + new_ch)))
                rec_old, rec_new = both.pick(old_ch), both.pick(new_ch)
            else:  # each side with its own channels: one file whose sides differ in rate works
                rec_old, rec_new = _read(row.old_path, old_ch), _read(row.new_path, new_ch)
        except RecordingError as exc:
            raise RecordingError(f"{src}, row {row.row}: {exc}") from None
        old, new = _prepare(rec_old, old_spec, prep), _prepare(rec_new, new_spec, prep)

        # common span in the old file's time base; new time = old time - offset
        offset = 0.0
        if row.old_path != row.new_path and rec_old.start_time is not None and rec_new.start_time is not None:
            offset = rec_old.start_offset_s(rec_new)  # exact, also for one aware and one naive time
        elif row.old_path != row.new_path:
            logger.info("%s: no start time in both files; assuming both start at 0 s.", where)
        t0, t1 = max(0.0, offset), min(old.duration_s, offset + new.duration_s)
        names = f"{Path(row.old_path).name} and {Path(row.new_path).name}"
        if t1 <= t0:
            raise WindowingError(f"{where}: {names} do not overlap in time (new starts {offset:+.3f} s after old; "
                                 f"durations {old.duration_s:.1f} s and {new.duration_s:.1f} s).")
        if t1 - t0 + _TOL_S < window_s:
            raise WindowingError(f"{where}: only {t1 - t0:.2f} s of common recording in {names}, shorter than "
                                 f"one {window_s:g} s window.")
        starts = _window_starts(t0, t1, window_s, step_s)
        bad = {**_bad_reasons(old, starts, window_s, "old"), **_bad_reasons(new, starts - offset, window_s, "new")}
        keep = np.ones(len(starts), dtype=bool)
        for reason, mask in bad.items():
            hit = mask & keep
            if hit.any():
                dropped[reason] = dropped.get(reason, 0) + int(hit.sum())
            keep &= ~mask
        if not keep.all():
            logger.info("%s: dropped %d of %d windows (%s).", where, int((~keep).sum()), len(starts),
                        ", ".join(f"{r} {int(m.sum())}" for r, m in bad.items() if m.any()))
        starts = starts[keep]
        if len(starts):
            xs_old.append(_cut(old, starts, n_old_t))
            xs_new.append(_cut(new, starts - offset, n_new_t))
            labels = np.full(len(starts), None, dtype=object)
            if row.label is not None:
                if pd.isna(row.label_start):
                    labels[:] = row.label
                else:
                    inside = (starts >= row.label_start - _TOL_S) & (starts + window_s <= row.label_end + _TOL_S)
                    labels[inside] = row.label
            metas.append(pd.DataFrame({
                "subject": row.subject, "recording": row.old_file if row.old_path == row.new_path
                else f"{row.old_file}+{row.new_file}", "split": row.split, "start_s": starts, "label": labels,
            }))
        if on_progress:
            on_progress(k, total, f"windowed {row.old_file}")

    if not metas:
        why = ", ".join(f"{r}: {n}" for r, n in dropped.items()) or "recordings too short"
        raise WindowingError(f"{src}: no usable windows in any recording ({why}).")
    meta = pd.concat(metas, ignore_index=True)[list(META_COLUMNS)]
    x_old, x_new = np.concatenate(xs_old), np.concatenate(xs_new)
    _check_classes(meta, src)
    groups = meta["subject"].to_numpy()
    x_old = normalise_windows(x_old, prep.normalisation, groups)
    x_new = normalise_windows(x_new, prep.normalisation, groups)
    pw = PairedWindows(
        x_old=x_old, x_new=x_new, meta=meta, old_channels=list(first_channels[0]),
        new_channels=list(first_channels[1]), sfreq_old=float(old_spec.sfreq), sfreq_new=float(new_spec.sfreq),
        window_s=window_s, step_s=step_s, dropped=dropped,
        preprocessing={**prep.to_dict(), "source": str(manifest.source), "seed": manifest.seed},
    )
    if cache_path is not None:
        pw.save(cache_path)
    return pw


def _check_classes(meta: pd.DataFrame, src: str) -> None:
    """Every class must have windows in train and in test (when the manifest has labels)."""
    lab = meta["label"]
    classes = sorted(lab.dropna().astype(str).unique())
    if not classes:
        return
    for split in ("train", "test"):
        present = set(lab[meta["split"] == split].dropna().astype(str))
        missing = [c for c in classes if c not in present]
        if missing:
            subs = sorted(meta.loc[meta["split"] == split, "subject"].astype(str).unique())
            raise WindowingError(
                f"{src}: class(es) {missing} have no windows in the {split} split (subjects {subs}). "
                "Change the seed or split fractions, or set 'split' in the manifest.")


# -- one recording (inference) -------------------------------------------------------------------
def window_recording(rec: Recording, *, spec: SignalSpec, channels: Sequence[str] | None = None,
                     window_s: float | None = None, step_s: float | None = None,
                     preprocessing: Preprocessing | None = None) -> RecordingWindows:
    """Preprocessed windows of one modality of ``rec`` for ``spec`` (same steps as pairing).

    ``channels`` defaults to the recording's channels of ``spec.modality`` (all channels when
    none is typed so). ``"zscore-subject"`` normalisation uses the whole recording's statistics.
    """
    prep = preprocessing if preprocessing is not None else Preprocessing()
    window_s, step_s = _check_lengths(window_s, step_s, spec)
    if channels is None:
        typed = [c for c, t in zip(rec.ch_names, rec.ch_types) if t == spec.modality]
        channels = typed or list(rec.ch_names)
    chans = match_channels(list(channels), spec, where=rec.name)
    picked = rec.pick(chans)
    side = _prepare(picked, spec, prep)
    if side.duration_s + _TOL_S < window_s:
        raise WindowingError(f"{rec.name}: {side.duration_s:.2f} s is shorter than one {window_s:g} s window.")
    starts = _window_starts(0.0, side.duration_s, window_s, step_s)
    bad = _bad_reasons(side, starts, window_s, spec.modality.lower())
    keep = np.ones(len(starts), dtype=bool)
    dropped: dict[str, int] = {}
    for reason, mask in bad.items():
        reason = reason.split("_")[0]
        hit = mask & keep
        if hit.any():
            dropped[reason] = dropped.get(reason, 0) + int(hit.sum())
        keep &= ~mask
    starts = starts[keep]
    if not len(starts):
        why = ", ".join(f"{r}: {n}" for r, n in dropped.items())
        raise WindowingError(f"{rec.name}: every window was dropped ({why}).")
    x = normalise_windows(_cut(side, starts, int(round(window_s * spec.sfreq))), prep.normalisation)
    return RecordingWindows(x=x, start_s=starts, dropped=dropped, ch_names=list(chans), sfreq=float(spec.sfreq))
