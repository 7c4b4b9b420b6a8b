"""Hand-crafted physiological features: the baseline every encoder and old model is compared with.

One function per modality turns one window into a short vector a physiologist
would measure; ``handcrafted_features`` applies the right one to a batch.
Beat detection is NeuroKit2's (Makowski et al. 2021, Behav Res Methods 53:1689);
spectra are SciPy's Welch estimate. Windows without detectable beats give NaN
features (impute before fitting a classifier).

=========  =====================================================================
modality   features per window (per channel for EEG)
=========  =====================================================================
ECG        heart rate (bpm), SDNN (ms), RMSSD (ms), RR range (ms), dominant frequency (Hz)
PPG        pulse rate (/min), IBI SD (ms), RMSSD (ms), amplitude CV, amplitude SD
EEG        log band power delta, theta, alpha, beta
EDA        tonic level (mean), tonic slope (per s), phasic peak rate (/min), phasic SD
=========  =====================================================================
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from ..errors import ConfigError

EEG_BANDS_HZ = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0)}


def _rr_stats(peaks: np.ndarray, sfreq: float) -> tuple[float, float, float, float]:
    """(rate per min, SD of intervals ms, RMSSD ms, range of intervals ms) from peak indices."""
    if peaks.size < 3:
        return (np.nan, np.nan, np.nan, np.nan)
    rr = np.diff(peaks) / sfreq * 1000.0
    rr = rr[(rr > 250) & (rr < 2000)]  # 30-240 per minute
    if rr.size < 2:
        return (np.nan, np.nan, np.nan, np.nan)
    return (60_000.0 / rr.mean(), rr.std(), float(np.sqrt(np.mean(np.diff(rr) ** 2))), rr.max() - rr.min())


def ecg_hrv_features(window: np.ndarray, sfreq: float) -> np.ndarray:
    """[heart rate bpm, SDNN ms, RMSSD ms, RR range ms, dominant frequency Hz] of one ECG window (1-D)."""
    import neurokit2 as nk
    from scipy.signal import welch

    sig = np.asarray(window, dtype=np.float64).ravel()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, info = nk.ecg_peaks(sig, sampling_rate=int(sfreq), method="neurokit")
        peaks = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    except Exception:  # neurokit raises on windows without beats
        peaks = np.zeros(0, dtype=np.int64)
    f, p = welch(sig, fs=sfreq, nperseg=min(len(sig), int(4 * sfreq)))
    return np.asarray([*_rr_stats(peaks, sfreq), f[np.argmax(p)]], dtype=np.float64)


def ppg_pulse_features(window: np.ndarray, sfreq: float) -> np.ndarray:
    """[pulse rate /min, IBI SD ms, RMSSD ms, amplitude CV, amplitude SD] of one PPG window (1-D, z-scored).

    Amplitudes are read on the z-scored window, so the monitor's gain cancels.
    """
    import neurokit2 as nk

    sig = np.asarray(window, dtype=np.float64).ravel()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peaks = np.asarray(nk.ppg_findpeaks(sig, sampling_rate=int(sfreq))["PPG_Peaks"], dtype=np.int64)
    except Exception:
        peaks = np.zeros(0, dtype=np.int64)
    rate, sd, rmssd, _ = _rr_stats(peaks, sfreq)
    if peaks.size >= 3:
        amp = sig[peaks] - np.array([sig[max(0, p - int(0.5 * sfreq)):p + 1].min() for p in peaks])
        amp_cv, amp_sd = float(amp.std() / max(abs(amp.mean()), 1e-6)), float(amp.std())
    else:
        amp_cv = amp_sd = np.nan
    return np.asarray([rate, sd, rmssd, amp_cv, amp_sd], dtype=np.float64)


def eeg_bandpower_features(window: np.ndarray, sfreq: float) -> np.ndarray:
    """log band power (delta, theta, alpha, beta) per channel of one EEG window (n_chans, n_times), flattened."""
    from scipy.signal import welch

    x = np.atleast_2d(np.asarray(window, dtype=np.float64))
    f, p = welch(x, fs=sfreq, nperseg=min(x.shape[1], int(2 * sfreq)), axis=-1)
    out = [np.log(p[:, (f >= lo) & (f < hi)].mean(axis=1) + 1e-12) for lo, hi in EEG_BANDS_HZ.values()]
    return np.stack(out, axis=1).ravel()


def eda_features(window: np.ndarray, sfreq: float) -> np.ndarray:
    """[tonic mean, tonic slope /s, phasic peak rate /min, phasic SD] of one EDA window (1-D).

    Tonic/phasic split by NeuroKit2's ``eda_phasic`` (median smoothing, robust at 4 Hz). On
    z-scored windows the tonic mean is ~0; pass windows in physical units (µS) where the level matters.
    """
    import neurokit2 as nk

    sig = np.asarray(window, dtype=np.float64).ravel()
    t = np.arange(sig.size) / sfreq
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts = nk.eda_phasic(sig, sampling_rate=sfreq, method="smoothmedian")
            tonic = parts["EDA_Tonic"].to_numpy()
            phasic = parts["EDA_Phasic"].to_numpy()
            _, info = nk.eda_peaks(phasic, sampling_rate=sfreq, method="neurokit")
        n_peaks = len(info["SCR_Peaks"])
    except Exception:  # too short or constant
        tonic, phasic, n_peaks = sig, np.zeros_like(sig), 0
    slope = float(np.polyfit(t, tonic, 1)[0]) if sig.size >= 2 else np.nan
    return np.asarray([tonic.mean(), slope, 60.0 * n_peaks / max(t[-1], 1e-9), phasic.std()], dtype=np.float64)


_FEATURES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "ECG": lambda w, s: ecg_hrv_features(w[0], s),
    "PPG": lambda w, s: ppg_pulse_features(w[0], s),
    "EEG": eeg_bandpower_features,
    "EDA": lambda w, s: eda_features(w[0], s),
}


def handcrafted_features(x: np.ndarray, *, modality: str, sfreq: float) -> np.ndarray:
    """Baseline features for windows ``x`` of shape ``(n, n_chans, n_times)`` at ``sfreq`` Hz.

    Returns ``(n, n_features)`` float64 (NaN where a window has no detectable beats).
    Raises ``ConfigError`` for a modality without hand-crafted features.
    """
    fn = _FEATURES.get(modality)
    if fn is None:
        raise ConfigError(f"no hand-crafted features for modality {modality!r}; known: {sorted(_FEATURES)}.")
    x = np.asarray(x)
    if x.ndim != 3:
        raise ConfigError(f"windows must be (n, n_chans, n_times), got shape {x.shape}.")
    if len(x) == 0:
        return np.zeros((0, len(fn(np.zeros((x.shape[1], max(x.shape[2], 8))), sfreq))))
    return np.stack([fn(w, sfreq) for w in x])
