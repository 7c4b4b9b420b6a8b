"""A built-in, offline demo dataset: simulated paired recordings with class-dependent physiology.

``demo_manifest(kind, seed=...)`` writes real files (EDF) plus a manifest into
``cache_dir("demo", kind, f"seed{seed}")`` on first use and reuses them after.
Everything is drawn from ``numpy.random.default_rng`` seeded by (seed, subject,
class), so the same seed gives the same files on every machine, in about a
second.

``"ecg-ppg"`` (old = ECG, new = PPG): 16 subjects x 3 classes x 120 s (``size="small"``:
10 x 60 s), 250 Hz, one
EDF per subject and class with channels ``ECG`` (mV) and ``PPG PLETH`` (arbitrary
units with a per-subject device gain, as real monitors have).

=========  =================  ==========================================
class      heart rate         heart-rate variability
=========  =================  ==========================================
rest       ~62 bpm            high (respiratory sinus arrhythmia)
stress     ~88 bpm            low; shorter pulse transit time
exercise   ~115 bpm           very low; faster breathing, motion noise
=========  =================  ==========================================

``"eeg-ecg"`` (old = EEG, new = ECG): same subjects and durations x 2 classes (rest, task),
250 Hz, 8 EEG channels (``EEG Fp1`` ... ``EEG O2``, uV) + ``ECG ECG`` (mV). Rest:
strong posterior alpha (8-12 Hz, subject-specific peak); task: alpha suppressed,
frontal theta and beta up, heart rate ~14 bpm higher (as in eegmat).

Subjects differ in baseline heart rate, ECG amplitude and T-wave shape, pulse
transit time, alpha frequency and noise level.

The waveforms come from closed-form models (Gaussian PQRST waves and a
two-wave pulse on a shared beat sequence, 1/f noise plus oscillations) rather
than ``neurokit2.ecg_simulate``/``ppg_simulate``: those draw their beats
independently, so the PPG pulses would not follow the ECG beats, and
``ecgsyn`` alone takes ~0.3 s per minute of signal. ``neurokit2.eeg_simulate``
downloads data and is never used.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

import numpy as np

from .._check import check_option
from .._io import atomic_write_json, read_json
from ..errors import ConfigError
from .manifest import write_manifest
from .recording import Recording

logger = logging.getLogger(__name__)

KINDS = ("ecg-ppg", "eeg-ecg")
DEMO_VERSION = 3
SFREQ = 250.0
#: size -> (subjects, seconds per recording). ``"full"`` is what users see first; ``"small"`` keeps
#: unit tests fast. ``$BIOXBRIDGE_DEMO_SIZE`` sets the default (the test suite sets ``small``).
#: Full was 180 s per class (324 pair windows) until 2026-12-01: the demo with KD then took
#: 149 s on the 2-core VM; 120 s per class (216 pair windows, 6 minutes per subject) keeps the
#: bridge at KD's accuracy and the whole demo under two minutes (README, bench/RESULTS.md).
SIZES = {"full": (16, 120.0), "small": (10, 60.0)}
N_SUBJECTS, DURATION_S = SIZES["small"]
EEG_CHANNELS = ("EEG Fp1", "EEG Fp2", "EEG C3", "EEG C4", "EEG P3", "EEG P4", "EEG O1", "EEG O2")
#: class -> (heart rate bpm, relative HRV, breathing Hz, pulse transit time factor, noise factor)
ECG_PPG_CLASSES = {
    "rest": (62.0, 1.0, 0.25, 1.0, 1.0),
    "stress": (88.0, 0.35, 0.30, 0.85, 1.3),
    "exercise": (115.0, 0.15, 0.45, 0.7, 2.0),
}
EEG_ECG_CLASSES = {"rest": 68.0, "task": 82.0}  # heart rate bpm
_START = _dt.datetime(2020, 1, 1, 9, 0, 0)


# -- building blocks ------------------------------------------------------------------------------
def _beats(rng: np.random.Generator, duration_s: float, hr_bpm: float, hrv: float, resp_hz: float) -> np.ndarray:
    """R-peak times (s) with respiratory sinus arrhythmia, a 0.1 Hz Mayer wave and beat noise."""
    rr0 = 60.0 / hr_bpm
    phase_lf = rng.uniform(0, 2 * np.pi)
    phase_resp = rng.uniform(0, 2 * np.pi)
    drift = rng.normal(0, 0.02)
    t, out = rng.uniform(0.1, rr0), []
    while t < duration_s + 1.0:
        out.append(t)
        rr = rr0 * (1 + drift * t / duration_s
                    + hrv * (0.045 * np.sin(2 * np.pi * resp_hz * t + phase_resp)
                             + 0.03 * np.sin(2 * np.pi * 0.1 * t + phase_lf)
                             + 0.02 * rng.standard_normal()))
        t += max(rr, 0.3)
    return np.asarray(out)


def _around_beats(t: np.ndarray, beats: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each sample: time since the previous and until/since the next beat, with that beat's RR (s)."""
    rr = np.diff(beats, append=beats[-1] + (beats[-1] - beats[-2]))
    nxt = np.clip(np.searchsorted(beats, t), 0, len(beats) - 1)
    prv = np.clip(nxt - 1, 0, len(beats) - 1)
    return [(t - beats[prv], rr[prv]), (t - beats[nxt], rr[nxt])]


def _gauss(dt: np.ndarray, mu: np.ndarray | float, sd: np.ndarray | float) -> np.ndarray:
    return np.exp(-0.5 * ((dt - mu) / sd) ** 2)


def _ecg(t: np.ndarray, beats: np.ndarray, traits: dict) -> np.ndarray:
    """PQRST as Gaussian waves around each R peak (mV); QT lengthens with RR (Bazett)."""
    amp, t_amp, t_width = traits["ecg_amp"], traits["t_amp"], traits["t_width"]
    y = np.zeros_like(t)
    for dt, rr in _around_beats(t, beats):
        q = np.sqrt(rr)
        y += (0.12 * _gauss(dt, -0.17 * q, 0.022)          # P
              - 0.12 * _gauss(dt, -0.030, 0.012)            # Q
              + 1.00 * _gauss(dt, 0.0, 0.014)               # R
              - 0.22 * _gauss(dt, 0.032, 0.013)             # S
              + t_amp * _gauss(dt, 0.28 * q, t_width * q))  # T
    return amp * y


def _ppg(t: np.ndarray, beats: np.ndarray, ptt_s: float, diastolic: float) -> np.ndarray:
    """Pulse per beat, ``ptt_s`` after the R peak: systolic wave + smaller diastolic wave."""
    y = np.zeros_like(t)
    for dt, rr in _around_beats(t, beats):
        q = np.sqrt(rr)
        d = dt - ptt_s
        y += _gauss(d, 0.10 * q, 0.055 * q) + diastolic * _gauss(d, 0.34 * q, 0.09 * q)
    return y


def _pink(rng: np.random.Generator, n_chans: int, n: int, sfreq: float) -> np.ndarray:
    """1/f noise, unit variance per channel."""
    spec = rng.standard_normal((n_chans, n // 2 + 1)) + 1j * rng.standard_normal((n_chans, n // 2 + 1))
    f = np.fft.rfftfreq(n, 1 / sfreq)
    spec *= 1.0 / np.sqrt(np.maximum(f, 0.5))
    spec[:, 0] = 0
    x = np.fft.irfft(spec, n=n, axis=1)
    return x / x.std(axis=1, keepdims=True)


def _oscillation(rng: np.random.Generator, t: np.ndarray, f_hz: float, bw_hz: float) -> np.ndarray:
    """Narrow-band oscillation with a slowly waxing/waning envelope (unit-ish amplitude)."""
    phase = 2 * np.pi * np.cumsum(f_hz + bw_hz * np.convolve(rng.standard_normal(len(t)), np.ones(250) / 250,
                                                             mode="same") * 5) / SFREQ
    env = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 2 * np.pi))
    return env * np.sin(phase)


def _subject_traits(seed: int, subject: int) -> dict:
    rng = np.random.default_rng([seed, subject, 7919])
    return {
        "hr_offset": rng.normal(0, 4.0), "ecg_amp": rng.uniform(0.7, 1.4), "t_amp": rng.uniform(0.2, 0.4),
        "t_width": rng.uniform(0.04, 0.06), "ptt_s": rng.uniform(0.18, 0.28), "diastolic": rng.uniform(0.3, 0.55),
        "ppg_gain": rng.uniform(300, 3000), "ppg_offset": rng.uniform(-500, 2000), "noise": rng.uniform(0.7, 1.4),
        "alpha_hz": rng.uniform(9.0, 11.0), "alpha_amp": rng.uniform(8, 15), "eeg_amp": rng.uniform(6, 12),
    }


def _simulate_ecg_ppg(seed: int, subject: int, label: str, duration_s: float) -> Recording:
    hr, hrv, resp, ptt_f, noise_f = ECG_PPG_CLASSES[label]
    tr = _subject_traits(seed, subject)
    rng = np.random.default_rng([seed, subject, list(ECG_PPG_CLASSES).index(label)])
    t = np.arange(int(duration_s * SFREQ)) / SFREQ
    beats = _beats(rng, duration_s, hr + tr["hr_offset"] + rng.normal(0, 2.0), hrv, resp)
    resp_wave = np.sin(2 * np.pi * resp * t + rng.uniform(0, 2 * np.pi))
    noise = tr["noise"] * noise_f
    ecg = (_ecg(t, beats, tr) * (1 + 0.05 * resp_wave) + 0.06 * resp_wave
           + 0.015 * noise * rng.standard_normal(len(t)) + 0.01 * np.sin(2 * np.pi * 50 * t))
    ppg = _ppg(t, beats, tr["ptt_s"] * ptt_f, tr["diastolic"] * (1.1 - 0.3 * (ptt_f < 1)))
    ppg = ppg * (1 + 0.1 * resp_wave) + 0.15 * resp_wave + 0.03 * noise * rng.standard_normal(len(t))
    if label == "exercise":  # a few motion bursts
        for c in rng.uniform(2, duration_s - 2, size=max(1, round(3 * duration_s / 60))):
            ppg += 0.4 * _gauss(t, c, 0.4) * np.sin(2 * np.pi * 1.7 * t)
    ppg = tr["ppg_gain"] * ppg + tr["ppg_offset"]
    return Recording(data=np.stack([ecg, ppg]).astype(np.float32), sfreq=SFREQ, ch_names=["ECG", "PPG PLETH"],
                     ch_types=["ECG", "PPG"], units=["mV", "NU"], start_time=_START,
                     subject=f"sub{subject:02d}")


def _simulate_eeg_ecg(seed: int, subject: int, label: str, duration_s: float) -> Recording:
    tr = _subject_traits(seed, subject)
    rng = np.random.default_rng([seed, subject, 100 + list(EEG_ECG_CLASSES).index(label)])
    n = int(duration_s * SFREQ)
    t = np.arange(n) / SFREQ
    task = label == "task"
    # spatial weights per channel: Fp1 Fp2 C3 C4 P3 P4 O1 O2
    posterior = np.array([0.1, 0.1, 0.4, 0.4, 0.8, 0.8, 1.0, 1.0])
    frontal = np.array([1.0, 1.0, 0.7, 0.7, 0.3, 0.3, 0.2, 0.2])
    eeg = _pink(rng, len(EEG_CHANNELS), n, SFREQ) * 0.7 + 0.3 * _pink(rng, 1, n, SFREQ)
    eeg *= tr["eeg_amp"]
    alpha = _oscillation(rng, t, tr["alpha_hz"], 0.3) * tr["alpha_amp"] * (0.35 if task else 1.0)
    theta = _oscillation(rng, t, 6.0, 0.4) * tr["eeg_amp"] * (1.0 if task else 0.35)
    beta = _oscillation(rng, t, 20.0, 1.0) * tr["eeg_amp"] * (0.7 if task else 0.25)
    eeg = eeg + posterior[:, None] * alpha + frontal[:, None] * theta + 0.6 * beta
    eeg += 0.5 * tr["noise"] * rng.standard_normal(eeg.shape)
    beats = _beats(rng, duration_s, EEG_ECG_CLASSES[label] + tr["hr_offset"] + rng.normal(0, 2.0),
                   0.4 if task else 1.0, 0.3 if task else 0.25)
    ecg = _ecg(t, beats, tr) + 0.05 * np.sin(2 * np.pi * 0.25 * t) + 0.015 * tr["noise"] * rng.standard_normal(n)
    data = np.vstack([eeg, ecg[None]]).astype(np.float32)
    return Recording(data=data, sfreq=SFREQ, ch_names=[*EEG_CHANNELS, "ECG ECG"],
                     ch_types=["EEG"] * len(EEG_CHANNELS) + ["ECG"], units=["uV"] * len(EEG_CHANNELS) + ["mV"],
                     start_time=_START, subject=f"sub{subject:02d}")


def simulate(kind: str, *, seed: int = 0, subject: int = 0, label: str = "rest",
             duration_s: float = DURATION_S) -> Recording:
    """One simulated recording of ``kind`` for ``subject`` and class ``label``, ``duration_s`` long (deterministic)."""
    check_option("kind", kind, KINDS, owner="demo")
    classes = ECG_PPG_CLASSES if kind == "ecg-ppg" else EEG_ECG_CLASSES
    check_option("label", label, tuple(classes), owner=f"demo {kind}")
    if not 10.0 <= float(duration_s) <= 3600.0:
        raise ConfigError(f"demo duration_s must be 10-3600 s, got {duration_s!r}.")
    fn = _simulate_ecg_ppg if kind == "ecg-ppg" else _simulate_eeg_ecg
    return fn(int(seed), int(subject), label, float(duration_s))


def default_size() -> str:
    """The demo size used when none is given: ``$BIOXBRIDGE_DEMO_SIZE`` or ``"full"``."""
    size = os.environ.get("BIOXBRIDGE_DEMO_SIZE", "full") or "full"
    check_option("BIOXBRIDGE_DEMO_SIZE", size, tuple(SIZES), owner="demo")
    return size


# -- the dataset ----------------------------------------------------------------------------------
def _complete(folder: Path) -> Path | None:
    marker = folder / "demo.json"
    if not marker.is_file():
        return None
    try:
        info = read_json(marker)
        files = info["files"]
        ok = info.get("version") == DEMO_VERSION and all(
            (folder / f).is_file() and (folder / f).stat().st_size == size for f, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return folder / info["manifest"] if ok and (folder / info["manifest"]).is_file() else None


def demo_manifest(kind: str = "ecg-ppg", *, seed: int = 0, root: str | Path | None = None,
                  size: str | None = None) -> Path:
    """Path of the demo manifest CSV for ``kind``, generating the files on first use.

    Parameters
    ----------
    kind : ``"ecg-ppg"`` (old ECG -> new PPG, 3 classes) or ``"eeg-ecg"`` (old EEG -> new ECG, 2 classes).
    seed : seed of the simulation (different seeds give different subjects).
    root : base folder (default ``cache_dir("demo")``); files go to ``root/kind/seed<seed>``
        (``seed<seed>-small`` for the small size).
    size : ``"full"`` (16 subjects x 120 s per class: 576 windows of 10 s for ECG/PPG) or ``"small"``
        (10 x 60 s: 180 windows); default ``default_size()``.

    The manifest leaves ``split`` empty, so ``read_manifest(path, seed=...)`` splits subjects.
    """
    check_option("kind", kind, KINDS, owner="demo_manifest")
    size = default_size() if size is None else size
    check_option("size", size, tuple(SIZES), owner="demo_manifest")
    n_subjects, duration_s = SIZES[size]
    leaf = f"seed{int(seed)}" + ("" if size == "full" else f"-{size}")
    if root is None:
        from ..paths import cache_dir

        folder = cache_dir("demo", kind, leaf)
    else:
        folder = Path(root).expanduser() / kind / leaf
        folder.mkdir(parents=True, exist_ok=True)
    found = _complete(folder)
    if found is not None:
        return found
    from .readers import write_recording

    classes = list(ECG_PPG_CLASSES if kind == "ecg-ppg" else EEG_ECG_CLASSES)
    rows, files = [], {}
    for s in range(n_subjects):
        for label in classes:
            rec = simulate(kind, seed=seed, subject=s, label=label, duration_s=duration_s)
            name = f"sub{s:02d}_{label}.edf"
            write_recording(rec, folder / name)
            files[name] = (folder / name).stat().st_size
            eeg = [c for c in rec.ch_names if c.startswith("EEG")]
            old, new = (["ECG"], ["PPG PLETH"]) if kind == "ecg-ppg" else (eeg, ["ECG ECG"])
            rows.append({"path": name, "subject": rec.subject, "old_channels": old, "new_channels": new,
                         "label": label, "split": ""})
    manifest = write_manifest(rows, folder / "manifest.csv")
    files[manifest.name] = manifest.stat().st_size
    atomic_write_json(folder / "demo.json", {"kind": kind, "seed": int(seed), "version": DEMO_VERSION,
                                            "manifest": manifest.name, "files": files,
                                            "sfreq": SFREQ, "duration_s": duration_s, "size": size,
                                            "n_subjects": n_subjects, "classes": classes})
    logger.info("Wrote demo %s (seed %d, %s) to %s", kind, seed, size, folder)
    return manifest
