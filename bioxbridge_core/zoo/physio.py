"""Physiology targets for pre-training: what a physiologist would measure in each window.

Following PaPaGei's morphology-aware pre-training (Pillai et al., ICLR 2025), the encoders are
asked to predict, from their mean-pooled last-layer tokens through one linear layer, quantities
computed per window by well-kept libraries, so that these become linearly readable:

========  ===================================================================================
encoder   targets per window
========  ===================================================================================
ECG       heart rate (bpm), log(1 + SDNN ms), log(1 + RMSSD ms), QRS width (ms, R-wave width at
          half prominence, median over beats), R-amplitude coefficient of variation, signal
          quality (mean correlation of the window's beats with the recording's median beat)
PPG       pulse rate (bpm), log(1 + IBI SD ms), log(1 + RMSSD ms), pulse rise time (ms, foot to
          peak, median), pulse-amplitude coefficient of variation, signal quality (0-1)
EDA       skin-conductance-response (SCR) rate (/min), SCR rise time (s, mean), log(SCR
          amplitude / window SD), tonic slope (window SDs per minute, asinh), phasic share of
          the window's variance
EEG       per channel: log relative band power delta 1-4, theta 4-8, alpha 8-13, beta 13-30,
          gamma 30-45 Hz, and the log ratios theta/beta, alpha/theta, (delta+theta)/(alpha+beta)
========  ===================================================================================

ECG/PPG/EDA events are found once per *recording* (``annotate``) and each window's targets are
then read from the events inside it (``window_targets``): beat detection on a whole recording
is both faster and better than on a 2 s window, and one annotation serves every window length
and offset. Libraries: NeuroKit2 (Makowski et al. 2021) ``ecg_peaks`` (neurokit method),
``ppg_findpeaks`` (Elgendi),
``ppg_quality`` (template match), ``eda_phasic`` (smooth median), ``eda_peaks``; SciPy ``welch``
for EEG band power and ``peak_widths`` for the QRS width (the width of each R wave at half its
prominence: a standard, vectorised QRS-duration proxy that widens with bundle-branch block and
ventricular beats; NeuroKit2's ``ecg_delineate`` took 1.6 s per 280 s record, which made the corpus
an hour of CPU on the shared machine). ECG quality is the template-matching index of Orphanidou et
al. (IEEE JBHI 2015;19:832-838), computed here in a few vectorised lines because NeuroKit2's ECG
``averageQRS`` index is min-max rescaled within each recording (so not comparable between
recordings) and took 4 s per record. Targets that need more beats or events than a window holds are NaN
(the pre-training loss masks them). EDA targets are scale-free because encoders see z-scored
windows: the tonic *level* in microsiemens is removed by per-window z-scoring and so is not a
target (it stays in the hand-crafted baseline).
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np

TARGET_NAMES: dict[str, tuple[str, ...]] = {
    "ecg": ("heart_rate_bpm", "log1p_sdnn_ms", "log1p_rmssd_ms", "qrs_width_ms", "r_amplitude_cv",
            "ecg_quality"),
    "ppg": ("pulse_rate_bpm", "log1p_ibi_sd_ms", "log1p_rmssd_ms", "rise_time_ms", "pulse_amplitude_cv",
            "ppg_quality"),
    "eda": ("scr_rate_per_min", "scr_rise_time_s", "log_scr_amplitude_rel", "asinh_tonic_slope_sd_per_min",
            "phasic_variance_share"),
    "eeg": ("log_rel_delta", "log_rel_theta", "log_rel_alpha", "log_rel_beta", "log_rel_gamma",
            "log_theta_beta", "log_alpha_theta", "log_slow_fast"),
}
EEG_BANDS_HZ = ((1.0, 4.0), (4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 45.0))
#: plausible beat-to-beat intervals (ms): 30-240 per minute
RR_RANGE_MS = (250.0, 2000.0)


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _empty(kind: str, n: int) -> dict[str, np.ndarray]:
    z = np.zeros(0, dtype=np.int64)
    f = np.zeros(0, dtype=np.float32)
    if kind == "eda":
        return {"tonic": np.full(n, np.nan, np.float32), "phasic": np.full(n, np.nan, np.float32),
                "scr_peaks": z, "scr_rise_s": f, "scr_amp": f}
    if kind == "ecg":
        return {"peaks": z, "width_ms": f, "amp": f, "beat_quality": f}
    return {"peaks": z, "width_ms": f, "amp": f, "quality": np.full(n, np.nan, np.float32)}


# -- per recording ----------------------------------------------------------------------------
def annotate(kind: str, x: np.ndarray, sfreq: float) -> dict[str, np.ndarray]:
    """Events of one whole single-channel recording ``x`` (1-D, filtered, at ``sfreq``).

    ECG: ``peaks`` (R, sample indices), ``width_ms`` (QRS per beat), ``amp`` (R amplitude per beat),
    ``beat_quality`` (template correlation per beat). PPG: ``peaks`` (systolic), ``width_ms`` (rise
    time per beat), ``amp`` (foot-to-peak amplitude), ``quality`` (per sample). EDA (x in uS): ``tonic``, ``phasic`` (per sample),
    ``scr_peaks``, ``scr_rise_s``, ``scr_amp``. A recording NeuroKit2 cannot process gives empty
    events (all its targets NaN) rather than an error.
    """
    import neurokit2 as nk

    x = np.nan_to_num(np.asarray(x, dtype=np.float64).ravel())
    n, fs = x.size, float(sfreq)
    if n < 4 * fs or np.std(x) < 1e-9:
        return _empty(kind, n)
    try:
        with _quiet():
            if kind == "ecg":
                return _annotate_ecg(nk, x, fs)
            if kind == "ppg":
                return _annotate_ppg(nk, x, fs)
            if kind == "eda":
                return _annotate_eda(nk, x, fs)
    except Exception:  # noqa: BLE001 - NeuroKit2 raises many types on unusable signals
        return _empty(kind, n)
    raise ValueError(f"no event annotation for {kind!r} (ecg, ppg, eda)")


def beat_template_quality(x: np.ndarray, peaks: np.ndarray, fs: float, *, before_s: float = 0.2,
                          after_s: float = 0.4) -> np.ndarray:
    """Per-beat correlation (-1..1) with the recording's median beat (Orphanidou et al. 2015, template matching).

    Beats are cut from ``before_s`` before to ``after_s`` after each peak; beats too close to either
    end of the recording get NaN.
    """
    a, b = int(round(before_s * fs)), int(round(after_s * fs))
    ok = (peaks - a >= 0) & (peaks + b <= x.size)
    out = np.full(peaks.size, np.nan, dtype=np.float32)
    if ok.sum() < 3:
        return out
    beats = x[peaks[ok, None] + np.arange(-a, b)[None, :]]
    template = np.median(beats, axis=0)
    bc = beats - beats.mean(axis=1, keepdims=True)
    tc = template - template.mean()
    denom = np.sqrt((bc ** 2).sum(axis=1) * (tc ** 2).sum()) + 1e-12
    out[ok] = (bc @ tc) / denom
    return out


def _annotate_ecg(nk, x: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    _, info = nk.ecg_peaks(x, sampling_rate=int(fs), method="neurokit")
    r = np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    if r.size < 3:
        return _empty("ecg", x.size)
    from scipy.signal import peak_widths

    quality = beat_template_quality(x, r, fs)
    width = peak_widths(x, r, rel_height=0.5, wlen=int(0.4 * fs))[0] / fs * 1000.0
    width[(width < 10) | (width > 250)] = np.nan
    half = max(1, int(0.08 * fs))
    amp = np.array([x[p] - x[max(0, p - half):p + half + 1].min() for p in r], dtype=np.float32)
    return {"peaks": r, "width_ms": width.astype(np.float32), "amp": amp, "beat_quality": quality}


def _annotate_ppg(nk, x: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    peaks = np.asarray(nk.ppg_findpeaks(x, sampling_rate=int(fs), method="elgendi")["PPG_Peaks"], dtype=np.int64)
    if peaks.size < 3:
        return _empty("ppg", x.size)
    quality = np.asarray(nk.ppg_quality(x, peaks=peaks, sampling_rate=int(fs), method="templatematch"),
                         np.float32)
    # pulse foot = minimum between the previous peak (at most 1.5 s back) and this peak
    rise, amp = np.full(peaks.size, np.nan), np.full(peaks.size, np.nan)
    for i, p in enumerate(peaks):
        lo = max(0, p - int(1.5 * fs)) if i == 0 else max(int(peaks[i - 1]), p - int(1.5 * fs))
        if p - lo < 2:
            continue
        foot = lo + int(np.argmin(x[lo:p]))
        rise[i] = (p - foot) / fs * 1000.0
        amp[i] = x[p] - x[foot]
    return {"peaks": peaks, "width_ms": rise.astype(np.float32), "amp": amp.astype(np.float32),
            "quality": quality}


def _annotate_eda(nk, x: np.ndarray, fs: float) -> dict[str, np.ndarray]:
    parts = nk.eda_phasic(x, sampling_rate=fs, method="smoothmedian")
    tonic = parts["EDA_Tonic"].to_numpy(np.float64)
    phasic = parts["EDA_Phasic"].to_numpy(np.float64)
    _, info = nk.eda_peaks(phasic, sampling_rate=fs, method="neurokit", amplitude_min=0.1)
    peaks = np.asarray(info["SCR_Peaks"], dtype=np.int64)
    rise = np.asarray(info["SCR_RiseTime"], dtype=np.float64)
    amp = np.asarray(info["SCR_Amplitude"], dtype=np.float64)
    return {"tonic": tonic.astype(np.float32), "phasic": phasic.astype(np.float32), "scr_peaks": peaks,
            "scr_rise_s": rise.astype(np.float32), "scr_amp": amp.astype(np.float32)}


# -- per window ---------------------------------------------------------------------------------
def _nan_stat(fn, v: np.ndarray, min_count: int) -> float:
    v = v[np.isfinite(v)]
    return float(fn(v)) if v.size >= min_count else np.nan


def _beat_targets(ann: dict[str, np.ndarray], start: int, n: int, fs: float) -> np.ndarray:
    peaks = ann["peaks"]
    i0, i1 = np.searchsorted(peaks, start), np.searchsorted(peaks, start + n)
    b = peaks[i0:i1]
    rr = np.diff(b) / fs * 1000.0
    rr = rr[(rr >= RR_RANGE_MS[0]) & (rr <= RR_RANGE_MS[1])]
    rate = 60_000.0 / rr.mean() if rr.size >= 1 else np.nan
    sdnn = np.log1p(rr.std()) if rr.size >= 3 else np.nan
    rmssd = np.log1p(np.sqrt(np.mean(np.diff(rr) ** 2))) if rr.size >= 3 else np.nan
    width = _nan_stat(np.median, ann["width_ms"][i0:i1].astype(np.float64), 1)
    amp = ann["amp"][i0:i1].astype(np.float64)
    amp = amp[np.isfinite(amp)]
    amp_cv = float(amp.std() / max(abs(amp.mean()), 1e-9)) if amp.size >= 3 else np.nan
    if "beat_quality" in ann:  # per beat (ECG)
        quality = _nan_stat(np.mean, ann["beat_quality"][i0:i1].astype(np.float64), 1)
    else:  # per sample (PPG)
        quality = _nan_stat(np.mean, ann["quality"][start:start + n].astype(np.float64), max(1, n // 2))
    return np.array([rate, sdnn, rmssd, width, min(amp_cv, 3.0), quality])


def _eda_targets(ann: dict[str, np.ndarray], start: int, n: int, fs: float, x: np.ndarray) -> np.ndarray:
    peaks = ann["scr_peaks"]
    i0, i1 = np.searchsorted(peaks, start), np.searchsorted(peaks, start + n)
    minutes = n / fs / 60.0
    sd = float(np.std(x)) + 1e-6
    rate = (i1 - i0) / minutes
    rise = _nan_stat(np.mean, ann["scr_rise_s"][i0:i1].astype(np.float64), 1)
    amp = _nan_stat(np.mean, ann["scr_amp"][i0:i1].astype(np.float64), 1)
    amp_rel = np.log(max(amp, 1e-6) / sd) if np.isfinite(amp) else np.nan
    tonic = ann["tonic"][start:start + n].astype(np.float64)
    phasic = ann["phasic"][start:start + n].astype(np.float64)
    if np.isfinite(tonic).all() and n >= 2:
        t_min = np.arange(n) / fs / 60.0
        slope = np.arcsinh(np.polyfit(t_min, tonic, 1)[0] / sd)
        share = min(float(np.var(phasic) / sd ** 2), 2.0)
    else:
        slope = share = np.nan
    return np.array([rate, rise, amp_rel, slope, share])


def window_targets(kind: str, ann: dict[str, np.ndarray], start: int, n: int, sfreq: float,
                   x: np.ndarray | None = None) -> np.ndarray:
    """Targets (``TARGET_NAMES[kind]``) of the window ``[start, start + n)`` samples of an annotated recording.

    ``x`` is the window's filtered signal (1-D), needed for EDA (scale of the z-scoring). Returns
    float64 with NaN where the window holds too few beats/events for a quantity.
    """
    if kind in ("ecg", "ppg"):
        return _beat_targets(ann, int(start), int(n), float(sfreq))
    if kind == "eda":
        if x is None:
            raise ValueError("EDA targets need the window's signal x")
        return _eda_targets(ann, int(start), int(n), float(sfreq), np.asarray(x, dtype=np.float64).ravel())
    raise ValueError(f"no event targets for {kind!r}; EEG uses eeg_band_targets")


def eeg_band_targets(x: np.ndarray, sfreq: float) -> np.ndarray:
    """EEG targets per window and channel: ``x`` (n, n_chans, n_times) -> (n, n_chans, 8) float64.

    Welch spectrum (SciPy; 2 s Hann segments, 50 % overlap, or the whole window when shorter);
    relative power = band power / power in 1-45 Hz; logs of relative powers and of the ratios.
    """
    from scipy.signal import welch

    x = np.asarray(x, dtype=np.float64)
    f, p = welch(x, fs=sfreq, nperseg=min(x.shape[-1], int(2 * sfreq)), axis=-1)
    total = p[..., (f >= 1.0) & (f < 45.0)].sum(-1) + 1e-12
    rel = np.stack([p[..., (f >= lo) & (f < hi)].sum(-1) / total for lo, hi in EEG_BANDS_HZ], axis=-1)
    rel = rel + 1e-6
    d, t, a, b, _g = (rel[..., i] for i in range(5))
    return np.concatenate([np.log(rel), np.log(t / b)[..., None], np.log(a / t)[..., None],
                           np.log((d + t) / (a + b))[..., None]], axis=-1)
