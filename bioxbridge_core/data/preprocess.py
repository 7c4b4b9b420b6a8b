"""Filtering, quality checks and normalisation applied before windows reach an encoder.

Order (see ``data.pairing``): quality masks (NaN, flat line) on the raw
signal -> band-pass (and optional notch) on the continuous recording at its own
rate -> resampling to the encoder's ``spec.sfreq`` -> windows -> normalisation.

Modality defaults for the zero-phase Butterworth band-pass:

======  ====================  ===============================================
ECG     0.5-40 Hz             baseline wander and mains/EMG noise out
PPG     0.5-8 Hz              pulse wave and first harmonics
EEG     0.5-45 Hz             delta..gamma, mains out
EMG     20 Hz-0.45*sfreq      motion artefact out
EDA     low-pass 1 Hz         tonic level and phasic responses; keeps DC
other   none
======  ====================  ===============================================

The upper edge is clipped to 0.45 x the lower of the file's and the encoder's
rate, so it always stays below Nyquist.

Normalisation: each side as its encoder's ``spec.normalisation`` says (``"zscore-window"``, the
built-ins' choice, z-scores each window and channel), unless ``Preprocessing.normalisation`` is set.
Per-window z-scoring keeps heart-rate and rhythm differences between recordings (they live in
the timing, not the amplitude) and removes device gain (PPG units differ
between monitors). ``"zscore-subject"`` uses one mean/std per subject and
channel (keeps amplitude differences within a subject); ``"none"`` leaves
the filtered signal in physical units.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._check import check_option, check_range
from ..errors import ConfigError

logger = logging.getLogger(__name__)

NORMALISATIONS = ("zscore-window", "zscore-subject", "none")
#: modality -> (low Hz, high Hz); high None = 0.45 x sampling rate
DEFAULT_BANDS: dict[str, tuple[float, float | None]] = {
    "ECG": (0.5, 40.0), "PPG": (0.5, 8.0), "EEG": (0.5, 45.0), "EMG": (20.0, None),
    "EDA": (None, 1.0),
}
_EPS = 1e-8
#: shortest constant stretch (s) that counts as a flat line, per modality, whatever ``flat_s`` says:
#: EDA is slow and coarsely quantised (Empatica E4: 4 Hz, ~0.001 uS steps); on clean Stress-Predict
#: recordings (S02, S08, S10) constant runs last up to 3 s, so 1 s would drop most windows.
#: TEMP (skin temperature; no encoder takes it, but ``inspect`` judges it by this table too) is slower
#: still: Empatica E4 4 Hz in 0.01 degC steps; on the 17 Stress-Predict TEMP.csv files constant runs last
#: up to 17 s (S14), so only 60 s of one value counts as flat
MIN_FLAT_S: dict[str, float] = {"EDA": 5.0, "TEMP": 60.0}


@dataclass
class Preprocessing:
    """How recordings are cleaned and normalised before windowing.

    Parameters
    ----------
    bandpass : apply the modality's band-pass (``DEFAULT_BANDS``, overridable by ``bands``).
    bands : modality -> (low_hz, high_hz) overriding the defaults; ``None`` for an edge
        means "no edge" (low None: low-pass only; high None: 0.45 x sfreq).
    filter_order : Butterworth order (applied forwards and backwards: zero phase).
    notch_hz : mains frequency to notch out (50 or 60), or None.
    normalisation : one of ``NORMALISATIONS`` for both sides, or ``None`` (default): each side as its
        encoder's ``spec.normalisation`` says (``data.pairing.side_normalisation``).
    flat_s : a stretch of at least this many seconds of constant samples on any
        channel marks the windows it touches as flat-lined (dropped). 0 disables.
    flat_tol : absolute tolerance for "constant" (0 = exactly equal samples).
    """

    bandpass: bool = True
    bands: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    filter_order: int = 4
    notch_hz: float | None = None
    normalisation: str | None = None
    flat_s: float = 1.0
    flat_tol: float = 0.0

    def __post_init__(self) -> None:
        if self.normalisation is not None:
            check_option("normalisation", self.normalisation, NORMALISATIONS, owner="Preprocessing")
        check_range("filter_order", self.filter_order, low=1, high=10, integer=True, owner="Preprocessing")
        check_range("flat_s", self.flat_s, low=0, owner="Preprocessing")
        check_range("flat_tol", self.flat_tol, low=0, owner="Preprocessing")
        if self.notch_hz is not None:
            check_range("notch_hz", self.notch_hz, low=0, low_inclusive=False, owner="Preprocessing")
        bands = {}
        for mod, band in dict(self.bands or {}).items():
            try:
                lo, hi = band
            except (TypeError, ValueError):
                raise ConfigError(f"Preprocessing.bands['{mod}'] must be (low_hz, high_hz), got {band!r}.") from None
            if lo is not None and hi is not None and not (0 <= lo < hi):
                raise ConfigError(f"Preprocessing.bands['{mod}'] needs low < high, got {band!r}.")
            bands[str(mod)] = (None if lo is None else float(lo), None if hi is None else float(hi))
        self.bands = bands

    def flat_s_for(self, modality: str) -> float:
        """``flat_s`` for ``modality``: at least ``MIN_FLAT_S[modality]`` unless flat detection is off (0)."""
        if self.flat_s <= 0:
            return 0.0
        return max(float(self.flat_s), MIN_FLAT_S.get(modality, 0.0))

    def band_for(self, modality: str, sfreq: float) -> tuple[float | None, float | None] | None:
        """Effective (low, high) edges in Hz for ``modality`` at ``sfreq``; None = no filter."""
        if not self.bandpass:
            return None
        band = self.bands.get(modality, DEFAULT_BANDS.get(modality))
        if band is None:
            return None
        lo, hi = band
        limit = 0.45 * sfreq
        hi = limit if hi is None else min(hi, limit)
        lo = lo if lo and lo > 0 else None
        if lo is not None and lo >= hi:
            logger.warning("Band %s-%s Hz for %s does not fit below Nyquist at %g Hz; high-pass at %s Hz only.",
                           band[0], band[1], modality, sfreq, lo)
            return (lo, None)
        return (lo, hi)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bands"] = {k: list(v) for k, v in self.bands.items()}
        d["default_bands"] = {k: list(v) for k, v in DEFAULT_BANDS.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        d = {k: v for k, v in d.items() if k != "default_bands"}
        d["bands"] = {k: tuple(v) for k, v in (d.get("bands") or {}).items()}
        return cls(**d)


# -- quality masks --------------------------------------------------------------------------------
def nan_mask(data: np.ndarray) -> np.ndarray:
    """Samples (time axis) where any channel is NaN or infinite, shape (n_times,)."""
    return ~np.isfinite(data).all(axis=0)


def flat_mask(data: np.ndarray, sfreq: float, flat_s: float = 1.0, tol: float = 0.0) -> np.ndarray:
    """Samples inside a run of >= ``flat_s`` seconds of constant values on any channel, shape (n_times,)."""
    n = data.shape[1]
    out = np.zeros(n, dtype=bool)
    min_len = int(round(flat_s * sfreq))
    if flat_s <= 0 or n < 2 or min_len < 2:
        return out
    for ch in np.atleast_2d(data):
        same = np.abs(np.diff(ch)) <= tol  # same[i]: sample i+1 equals sample i
        if not same.any():
            continue
        edges = np.diff(np.concatenate(([0], same.astype(np.int8), [0])))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        long = (ends - starts + 1) >= min_len  # a run of k equal diffs spans k+1 samples
        for s, e in zip(starts[long], ends[long]):
            out[s: e + 1] = True
    return out


def bad_in_windows(mask: np.ndarray, sfreq: float, starts_s: np.ndarray, window_s: float) -> np.ndarray:
    """Whether each window [start, start+window_s) touches a True sample of ``mask`` (at ``sfreq``)."""
    cs = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
    n = len(mask)
    i0 = np.clip(np.floor(np.asarray(starts_s) * sfreq).astype(np.int64), 0, n)
    i1 = np.clip(np.ceil((np.asarray(starts_s) + window_s) * sfreq).astype(np.int64), 0, n)
    return (cs[i1] - cs[i0]) > 0


# -- filtering ------------------------------------------------------------------------------------
def _fill_nan(data: np.ndarray) -> np.ndarray:
    """Linear interpolation over non-finite samples so filters do not spread NaN (windows there are dropped)."""
    data = np.array(data, dtype=np.float64)
    bad = ~np.isfinite(data)
    if not bad.any():
        return data
    t = np.arange(data.shape[1])
    for i, row in enumerate(data):
        b = bad[i]
        if b.all():
            data[i] = 0.0
        elif b.any():
            data[i, b] = np.interp(t[b], t[~b], row[~b])
    return data


def filter_signal(data: np.ndarray, sfreq: float, modality: str, prep: Preprocessing,
                  *, max_hz: float | None = None) -> np.ndarray:
    """Zero-phase band-pass (+ notch) of continuous ``data`` (n_chans, n_times); returns float64.

    ``max_hz`` caps the upper edge (e.g. 0.45 x the encoder's rate when that is lower).
    """
    from scipy.signal import butter, iirnotch, sosfiltfilt, tf2sos

    x = _fill_nan(data)
    n = x.shape[1]
    if n < 4:
        return x
    limit_rate = sfreq if max_hz is None else min(sfreq, max_hz / 0.45)
    band = prep.band_for(modality, limit_rate)
    sos_list = []
    if band is not None:
        lo, hi = band
        if lo is not None and hi is not None:
            sos_list.append(butter(prep.filter_order, [lo, hi], btype="bandpass", fs=sfreq, output="sos"))
        elif lo is not None:
            sos_list.append(butter(prep.filter_order, lo, btype="highpass", fs=sfreq, output="sos"))
        elif hi is not None and hi < 0.5 * sfreq:
            sos_list.append(butter(prep.filter_order, hi, btype="lowpass", fs=sfreq, output="sos"))
    if prep.notch_hz is not None and prep.notch_hz < 0.5 * sfreq * 0.98:
        b, a = iirnotch(prep.notch_hz, Q=30.0, fs=sfreq)
        sos_list.append(tf2sos(b, a))
    for sos in sos_list:
        padlen = min(3 * (2 * len(sos) + 1) * 10, n - 1)
        x = sosfiltfilt(sos, x, axis=1, padlen=padlen)
    return x


# -- normalisation --------------------------------------------------------------------------------
def zscore_windows(x: np.ndarray) -> np.ndarray:
    """Z-score each window and channel of ``x`` (n_windows, n_chans, n_times); constant windows become 0."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    return ((x - mu) / np.maximum(sd, _EPS)).astype(np.float32)


def normalise_windows(x: np.ndarray, mode: str, groups: np.ndarray | None = None) -> np.ndarray:
    """Apply ``mode`` (see ``NORMALISATIONS``); ``groups`` = subject per window for ``"zscore-subject"``."""
    check_option("normalisation", mode, NORMALISATIONS)
    if mode == "zscore-window":
        return zscore_windows(x)
    x = np.asarray(x, dtype=np.float32)
    if mode == "none" or len(x) == 0:
        return np.ascontiguousarray(x)
    groups = np.zeros(len(x), dtype=int) if groups is None else np.asarray(groups)
    out = np.empty_like(x)
    for g in np.unique(groups):
        sel = groups == g
        xs = x[sel].astype(np.float64)
        mu = xs.mean(axis=(0, 2), keepdims=True)
        sd = xs.std(axis=(0, 2), keepdims=True)
        out[sel] = ((xs - mu) / np.maximum(sd, _EPS)).astype(np.float32)
    return out
