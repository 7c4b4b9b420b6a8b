"""Turn a manifest into time-synchronised, preprocessed windows of both modalities.

Per recording (rows naming the same file(s) are one recording, read and cut once):

1. read each side's channels -- separately, so one file whose sides are stored at
   different rates (a PSG with EEG at 256 Hz and ECG at 512 Hz) works as a one-file
   row; when the encoder spec names its channels (EEG 10-20), the row's channels are
   matched to them by name or electrode position and put in the spec's order;
2. find the common time span. Two files that both carry a start time are aligned on
   it (sub-second parts included); when either lacks one, both are taken to start at
   0 (synchronised at their first sample). The offset and the overlap are logged and
   kept per recording (``PairedWindows.recordings``). Times in ``meta.start_s``,
   ``label_start``/``label_end`` and events files are seconds from the start of the
   old-modality file;
3. convert to the encoder's unit when its spec asks for a physical one
   (``spec.units``, e.g. ``"uV"``); mark recording gaps (``Recording.gaps``), NaN and
   flat-lined stretches on the raw signal; band-pass the continuous recording
   (``data.preprocess``); resample to each spec's ``sfreq``;
4. plan the windows (``data.grid``): anchored at each labelled span's start, never
   straddling a label boundary, a short span giving the window that ends at its end,
   unlabelled stretches on their own grid; drop windows touching a gap, NaN or a flat
   line (counted per split, class and reason);
5. normalise each side as its encoder expects (``spec.normalisation``, z-score per
   window and channel for the built-ins) unless ``Preprocessing.normalisation``
   overrides it.

Memory: each recording's windows are appended to ``x_old.npy``/``x_new.npy`` in a windows
folder on disk as soon as they are cut (``data.windows.PairedWindowsWriter``), and the result
maps those files, so pairing holds one recording at a time however many there are (per-subject
z-scoring is applied in one chunked pass at the end). The folder is the cache
(``paths.cache_dir("windows")/<key>/``), keyed by the manifest content, the files' sizes and
modification times, both specs and the settings; ``cache=False`` recomputes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import BioXError, RecordingError, WindowingError
from ..spec import SignalSpec
from .channels import match_channels  # noqa: F401  (moved to data.channels; kept importable here)
from .grid import SPAN_DROP_REASONS, plan_windows
from .manifest import Manifest, ManifestRecording, read_manifest
from .preprocess import Preprocessing, bad_in_windows, filter_signal, flat_mask, nan_mask, normalise_windows
from .recording import Recording, start_offset_s
from .units import unit_scale
from .windows import META_COLUMNS, WINDOWS_JSON, PairedWindows, PairedWindowsWriter

logger = logging.getLogger(__name__)

CACHE_VERSION = 3
#: why windows are dropped (keys of ``PairedWindows.dropped``)
DROP_REASONS = {
    "gap": "touches a recording gap (discontinuous EDF+D, multi-segment WFDB...) in either modality",
    "nan_old": "NaN or missing samples in the old modality",
    "nan_new": "NaN or missing samples in the new modality",
    "flat_old": "flat line (constant samples) in the old modality",
    "flat_new": "flat line (constant samples) in the new modality",
}
#: every reason a window or a labelled span can be dropped, with its meaning
ALL_DROP_REASONS = {**DROP_REASONS, **SPAN_DROP_REASONS}
ProgressFn = Callable[[int, int, str], None]
_TOL_S = 1e-6
#: units a spec may ask for that are not physical (no conversion)
_NON_PHYSICAL_UNITS = {"", "zscore", "z", "none", "nu", "au", "a.u."}


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


# -- units -----------------------------------------------------------------------------------------
def to_spec_units(rec: Recording, spec: SignalSpec) -> Recording:
    """``rec`` in the unit ``spec.units`` asks for (unchanged when the spec wants z-scored input).

    Raises WindowingError naming the file and channel when a channel has no unit or one that
    cannot be converted (never a silently mis-scaled signal).
    """
    want = str(spec.units or "").strip()
    if want.lower() in _NON_PHYSICAL_UNITS:
        return rec
    factors = []
    for ch, unit in zip(rec.ch_names, rec.units or [""] * rec.n_chans):
        if not str(unit).strip():
            raise WindowingError(f"{rec.name}, channel '{ch}': no physical unit in the file, but the "
                                 f"{spec.modality} encoder expects {want}; cannot scale it.")
        try:
            factors.append(unit_scale(unit, want))
        except (ValueError, BioXError) as exc:
            raise WindowingError(f"{rec.name}, channel '{ch}': unit {unit!r} cannot be converted to the "
                                 f"{want} the {spec.modality} encoder expects ({exc}).") from None
    if all(abs(f - 1.0) < 1e-12 for f in factors):
        return rec
    out = rec.copy()
    out.data = (rec.data * np.asarray(factors, dtype=np.float32)[:, None]).astype(np.float32)
    out.units = [want] * rec.n_chans
    return out


# -- one side of one recording -------------------------------------------------------------------
@dataclass
class _Side:
    data: np.ndarray  # (n_chans, n) at spec.sfreq, filtered
    sfreq: float
    raw_sfreq: float
    nan: np.ndarray  # bad-sample masks at the raw rate
    flat: np.ndarray
    gap: np.ndarray
    duration_s: float
    start_time: object
    source: str
    n_gaps: int = 0


def gap_mask(rec: Recording) -> np.ndarray:
    """Samples inside ``rec.gaps`` (``(onset_s, duration_s)`` from the first sample), shape (n_times,)."""
    mask = np.zeros(rec.n_times, dtype=bool)
    for onset, dur in getattr(rec, "gaps", None) or []:
        i0 = max(int(math.floor(float(onset) * rec.sfreq)), 0)
        i1 = min(int(math.ceil((float(onset) + float(dur)) * rec.sfreq)), rec.n_times)
        mask[i0:i1] = True
    return mask


def _prepare(rec: Recording, spec: SignalSpec, prep: Preprocessing) -> _Side:
    """Unit, quality masks on raw samples, filter at the file's rate, resample to ``spec.sfreq``."""
    rec = to_spec_units(rec, spec)
    raw = rec.data
    gap = gap_mask(rec)
    nan = nan_mask(raw)
    flat = flat_mask(raw, rec.sfreq, prep.flat_s_for(spec.modality), prep.flat_tol)
    filt = filter_signal(raw, rec.sfreq, spec.modality, prep, max_hz=0.45 * spec.sfreq)
    tmp = Recording(data=filt.astype(np.float32), sfreq=rec.sfreq, ch_names=rec.ch_names,
                    ch_types=rec.ch_types, source=rec.source)
    res = tmp.resample(spec.sfreq)
    return _Side(data=res.data, sfreq=spec.sfreq, raw_sfreq=rec.sfreq, nan=nan, flat=flat, gap=gap,
                 duration_s=rec.duration_s, start_time=rec.start_time, source=rec.source,
                 n_gaps=len(getattr(rec, "gaps", None) or []))


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


def check_window_request(old_spec: SignalSpec, new_spec: SignalSpec, window_s: float | None = None,
                         step_s: float | None = None, *, old_name: str | None = None,
                         new_name: str | None = None) -> tuple[float, float]:
    """The window length and step to use, checked against both encoders before any work.

    ``window_s`` defaults to the old encoder's ``spec.window_s``, ``step_s`` to ``window_s``.
    Raises ``ConfigError`` with the allowed range when either encoder does not accept the
    length (``SignalSpec.check_window``), or for a non-positive length or step.
    """
    window_s, step_s = _check_lengths(window_s, step_s, old_spec)
    old_spec.check_window(window_s, encoder=old_name)
    new_spec.check_window(window_s, encoder=new_name)
    return window_s, step_s


def side_normalisation(spec: SignalSpec, prep: Preprocessing) -> str:
    """The normalisation one side gets: ``prep.normalisation`` when set, else the encoder's own."""
    mode = getattr(prep, "normalisation", None)
    if mode is None:
        return spec.normalisation
    if mode != spec.normalisation:
        logger.warning("The %s encoder expects %r inputs but preprocessing asks for %r; using %r.",
                       spec.modality, spec.normalisation, mode, mode)
    return mode


def _read(path: str, channels: list[str]) -> Recording:
    from .readers import read_recording

    return read_recording(path, channels=channels)


def _read_sides(g: ManifestRecording, old_ch: list[str], new_ch: list[str]) -> tuple[Recording, Recording]:
    """Each side's channels; one read when both sides live in one file at one rate."""
    if not g.one_file:
        return _read(g.old_path, old_ch), _read(g.new_path, new_ch)
    try:
        both = _read(g.old_path, list(dict.fromkeys(old_ch + new_ch)))
    except RecordingError:  # e.g. the sides are stored at different rates: read them apart
        return _read(g.old_path, old_ch), _read(g.new_path, new_ch)
    return both.pick(old_ch), both.pick(new_ch)


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


def _overlap(g: ManifestRecording, old: _Side, new: _Side, where: str) -> dict:
    """Offset of the new file in the old one's time base and the common span (logged, returned)."""
    offset, aligned = 0.0, "one file"
    if not g.one_file:
        if old.start_time is not None and new.start_time is not None:
            offset, aligned = start_offset_s(old.start_time, new.start_time), "start times"  # aware/naive safe
        else:
            aligned = "first samples"
            logger.info("%s: no start time in both files; assuming both start at 0 s.", where)
    t0, t1 = max(0.0, offset), min(old.duration_s, offset + new.duration_s)
    info = {
        "recording": g.name, "subject": g.subject, "split": g.split, "rows": list(g.rows),
        "old_file": g.old_file, "new_file": g.new_file, "aligned_on": aligned,
        "old_start": old.start_time.isoformat() if old.start_time is not None else None,
        "new_start": new.start_time.isoformat() if new.start_time is not None else None,
        "offset_s": round(offset, 6), "old_duration_s": round(old.duration_s, 6),
        "new_duration_s": round(new.duration_s, 6), "common_start_s": round(t0, 6), "common_end_s": round(t1, 6),
        "overlap_s": round(max(t1 - t0, 0.0), 6), "gaps_old": old.n_gaps, "gaps_new": new.n_gaps,
    }
    if not g.one_file:
        logger.info("%s: new file starts %+.3f s after the old (aligned on %s); %.3f s in common "
                    "(old %.3f s, new %.3f s).", where, offset, aligned, max(t1 - t0, 0.0), old.duration_s,
                    new.duration_s)
    return info


def make_paired_windows(manifest: Manifest | str | Path, *, old_spec: SignalSpec, new_spec: SignalSpec,
                        window_s: float | None = None, step_s: float | None = None,
                        preprocessing: Preprocessing | None = None, cache: bool = True,
                        on_progress: ProgressFn | None = None, check_classes: bool = True) -> PairedWindows:
    """Paired, preprocessed windows of both modalities for every manifest recording (see module docstring).

    Parameters
    ----------
    manifest : a ``Manifest`` or the path of a manifest CSV (read with seed 0).
    old_spec, new_spec : input contracts of the old and new encoder (rate, channels, window range,
        normalisation, units).
    window_s : window length in seconds (default ``old_spec.window_s``), same on both sides; must lie
        in both specs' ``window_range`` (checked before any file is read).
    step_s : step between window starts in seconds (default ``window_s``: no overlap).
    preprocessing : filters (and an optional normalisation override; default ``Preprocessing()``).
    cache : reuse the windows folder under ``paths.cache_dir("windows")`` when it exists (False:
        recompute it; the windows are always written there, read back as memory maps).
    on_progress : ``on_progress(step, total, message)`` after each recording.
    check_classes : require every class in the train and test splits (off for a subset of the
        recordings, e.g. one shard of the ``features`` command).

    Returns
    -------
    PairedWindows with ``x_old`` (n, C_old, window_s*old_spec.sfreq), ``x_new`` likewise, ``meta``
    (subject, recording, split, start_s, label), ``dropped`` (reason -> windows), ``dropped_windows``
    (per split, class and reason), ``dropped_spans`` (labelled spans giving no window, with reason) and
    ``recordings`` (offset and overlap of each recording's two sides).

    Raises
    ------
    ConfigError : a window length outside an encoder's range, or a non-positive length or step.
    WindowingError / RecordingError : naming the manifest row and file (no overlap, too short, channels).
    """
    prep = preprocessing if preprocessing is not None else Preprocessing()
    window_s, step_s = check_window_request(old_spec, new_spec, window_s, step_s)
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest)
    norm_old, norm_new = side_normalisation(old_spec, prep), side_normalisation(new_spec, prep)
    src = Path(manifest.source).name
    from ..paths import cache_dir

    cache_path = cache_dir("windows") / _cache_key(manifest, old_spec, new_spec, window_s, step_s, prep)
    if cache and (cache_path / WINDOWS_JSON).is_file():
        try:
            pw = PairedWindows.load(cache_path)
            logger.info("Loaded %d cached windows from %s", len(pw), cache_path)
            if on_progress:
                on_progress(len(manifest.recordings()), len(manifest.recordings()), "loaded windows from cache")
            return pw
        except (OSError, ValueError, KeyError, BioXError) as exc:
            logger.warning("Ignoring unreadable window cache %s (%s).", cache_path, exc)

    subject_z = [k for k, mode in (("x_old", norm_old), ("x_new", norm_new)) if mode == "zscore-subject"]
    with PairedWindowsWriter(cache_path, overwrite=True, subject_zscore=subject_z) as writer:
        return _pair_into(writer, manifest, old_spec, new_spec, window_s, step_s, prep, norm_old, norm_new, src,
                          on_progress, check_classes)


def _pair_into(writer: PairedWindowsWriter, manifest: Manifest, old_spec: SignalSpec, new_spec: SignalSpec,
               window_s: float, step_s: float, prep: Preprocessing, norm_old: str, norm_new: str, src: str,
               on_progress: ProgressFn | None, check_classes: bool) -> PairedWindows:
    """The per-recording loop of ``make_paired_windows``: each recording's windows go to ``writer``."""
    n_old_t, n_new_t = int(round(window_s * old_spec.sfreq)), int(round(window_s * new_spec.sfreq))
    metas = []
    dropped: dict[str, int] = {}
    dropped_windows: dict[tuple, int] = {}
    dropped_spans: list[dict] = []
    recordings: list[dict] = []
    counts: tuple[int, int] | None = None
    first_channels: tuple[list[str], list[str]] | None = None
    groups = manifest.recordings()
    total = len(groups)
    for k, g in enumerate(groups, start=1):
        rows = ", ".join(map(str, g.rows))
        where = f"{src}, row{'s' if len(g.rows) > 1 else ''} {rows} ({Path(g.old_file).name})"  # file name only
        old_ch = match_channels(g.old_channels, old_spec, where=f"{where}, old side")
        new_ch = match_channels(g.new_channels, new_spec, where=f"{where}, new side")
        if counts is None:
            counts, first_channels = (len(old_ch), len(new_ch)), (old_ch, new_ch)
        elif counts != (len(old_ch), len(new_ch)):
            raise WindowingError(
                f"{where}: {len(old_ch)} old / {len(new_ch)} new channels, but earlier rows have "
                f"{counts[0]} old / {counts[1]} new; every row needs the same channel counts.")
        try:
            rec_old, rec_new = _read_sides(g, old_ch, new_ch)
        except RecordingError as exc:
            raise RecordingError(f"{src}, row {g.rows[0]}: {exc}") from None
        old, new = _prepare(rec_old, old_spec, prep), _prepare(rec_new, new_spec, prep)

        info = _overlap(g, old, new, where)
        offset, t0, t1 = info["offset_s"], info["common_start_s"], info["common_end_s"]
        names = f"{Path(g.old_path).name} and {Path(g.new_path).name}"
        if t1 <= t0:
            raise WindowingError(f"{where}: {names} do not overlap in time (new starts {offset:+.3f} s after old; "
                                 f"durations {old.duration_s:.1f} s and {new.duration_s:.1f} s).")
        if t1 - t0 + _TOL_S < window_s:
            raise WindowingError(f"{where}: only {t1 - t0:.2f} s of common recording in {names}, shorter than "
                                 f"one {window_s:g} s window.")
        plan = plan_windows(t0, t1, g.spans, window_s, step_s, recording_end_s=old.duration_s)
        base = {"recording": g.name, "subject": g.subject, "split": g.split}
        for d in g.skipped + plan.dropped_spans:
            dropped_spans.append({**base, **{k2: d[k2] for k2 in ("label", "start_s", "end_s", "origin", "reason")}})
        starts, labels = plan.start_s, plan.label
        bad = {"gap": bad_in_windows(old.gap, old.raw_sfreq, starts, window_s)
               | bad_in_windows(new.gap, new.raw_sfreq, starts - offset, window_s),
               **_bad_reasons(old, starts, window_s, "old"), **_bad_reasons(new, starts - offset, window_s, "new")}
        keep = np.ones(len(starts), dtype=bool)
        for reason, mask in bad.items():
            hit = mask & keep
            if hit.any():
                dropped[reason] = dropped.get(reason, 0) + int(hit.sum())
                for lab in labels[hit]:
                    key = (g.split, lab, reason)
                    dropped_windows[key] = dropped_windows.get(key, 0) + 1
            keep &= ~mask
        if not keep.all():
            logger.info("%s: dropped %d of %d windows (%s).", where, int((~keep).sum()), len(starts),
                        ", ".join(f"{r} {int(m.sum())}" for r, m in bad.items() if m.any()))
        starts, labels = starts[keep], labels[keep]
        info.update(n_windows=int(len(starts)), n_labelled=int(sum(v is not None for v in labels)))
        recordings.append(info)
        if len(starts):
            x_old, x_new = _cut(old, starts, n_old_t), _cut(new, starts - offset, n_new_t)
            if norm_old != "zscore-subject":  # per-window modes now; per subject at the end (writer)
                x_old = normalise_windows(x_old, norm_old)
            if norm_new != "zscore-subject":
                x_new = normalise_windows(x_new, norm_new)
            block = pd.DataFrame({**base, "start_s": starts, "label": labels})[list(META_COLUMNS)]
            writer.add(x_old, x_new, block)
            metas.append(block)
        del old, new, rec_old, rec_new
        if on_progress:
            on_progress(k, total, f"windowed {g.name}")

    if not metas:
        why = ", ".join(f"{r}: {n}" for r, n in dropped.items()) or "recordings too short"
        raise WindowingError(f"{src}: no usable windows in any recording ({why}).")
    meta = pd.concat(metas, ignore_index=True)[list(META_COLUMNS)]
    if check_classes:
        _check_classes(meta, src)
    pw = writer.finish(
        old_channels=list(first_channels[0]),
        new_channels=list(first_channels[1]), sfreq_old=float(old_spec.sfreq), sfreq_new=float(new_spec.sfreq),
        window_s=window_s, step_s=step_s, dropped=dropped,
        dropped_windows=[{"split": s, "label": lab, "reason": r, "n": n}
                         for (s, lab, r), n in dropped_windows.items()],
        dropped_spans=dropped_spans, recordings=recordings,
        preprocessing={**prep.to_dict(), "normalisation_old": norm_old, "normalisation_new": norm_new,
                       "source": str(manifest.source), "seed": manifest.seed},
    )
    if dropped_spans:
        logger.info("%s: %d labelled span(s) gave no window (%s).", src, len(dropped_spans),
                    ", ".join(sorted({d["reason"] for d in dropped_spans})))
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
                     preprocessing: Preprocessing | None = None, encoder: str | None = None) -> RecordingWindows:
    """Preprocessed windows of one modality of ``rec`` for ``spec`` (same steps as pairing).

    ``channels`` defaults to the recording's channels of ``spec.modality`` (all channels when
    none is typed so). ``"zscore-subject"`` normalisation uses the whole recording's statistics.
    Windows touching a gap, NaN or a flat line are dropped (``dropped``: ``gap``, ``nan``, ``flat``).
    A ``window_s`` outside ``spec.window_range`` raises ``ConfigError`` before any work; a channel
    recognisably of another signal (``channels.check_channel_modality``) raises WindowingError
    naming ``encoder`` (the encoder's name, for the message).
    """
    prep = preprocessing if preprocessing is not None else Preprocessing()
    window_s, step_s = _check_lengths(window_s, step_s, spec)
    spec.check_window(window_s)
    if channels is None:
        typed = [c for c, t in zip(rec.ch_names, rec.ch_types) if t == spec.modality]
        channels = typed or list(rec.ch_names)
    chans = match_channels(list(channels), spec, where=rec.name, encoder=encoder)
    picked = rec.pick(chans)
    side = _prepare(picked, spec, prep)
    if side.duration_s + _TOL_S < window_s:
        raise WindowingError(f"{rec.name}: {side.duration_s:.2f} s is shorter than one {window_s:g} s window.")
    starts = _window_starts(0.0, side.duration_s, window_s, step_s)
    bad = {"gap": bad_in_windows(side.gap, side.raw_sfreq, starts, window_s),
           **_bad_reasons(side, starts, window_s, spec.modality.lower())}
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
    x = normalise_windows(_cut(side, starts, int(round(window_s * spec.sfreq))), side_normalisation(spec, prep))
    return RecordingWindows(x=x, start_s=starts, dropped=dropped, ch_names=list(chans), sfreq=float(spec.sfreq))
