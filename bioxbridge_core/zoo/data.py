"""Windows for pre-training and probing the built-in encoders.

Preprocessing mirrors what the product feeds an encoder: zero-phase
Butterworth band-pass at the file's own rate (ECG 0.5-40 Hz, PPG 0.5-8 Hz,
EEG 0.5-45 Hz), polyphase resampling to the encoder's rate, 10 s windows,
z-score per window and channel. Windows that contain NaN in the raw signal,
a flat stretch (>= 1 s of identical samples) or near-zero variance are dropped.

Sources: the development recordings (eegmat EDF, cinc2015_vt WFDB) and
neurokit2 simulations (ECG, PPG). Arrays are cached as ``.npz`` under the
project cache folder so pre-training and probing read each file once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from .._io import atomic_save_npz
from ..data.preprocess import DEFAULT_BANDS, _fill_nan  # shared: NaN runs interpolated before filtering
from ..errors import RecordingError
from ..paths import cache_dir

log = logging.getLogger(__name__)

#: The 19 10-20 EEG channels of eegmat, in file order, under their 10-20 names.
EEGMAT_EEG = ("Fp1", "Fp2", "F3", "F4", "F7", "F8", "T3", "T4", "C3", "C4",
              "T5", "T6", "P3", "P4", "O1", "O2", "Fz", "Cz", "Pz")
#: The span before a CinC 2015 alarm that its label describes.
CINC_ALARM_SPAN_S = (284.0, 300.0)
CACHE_VERSION = "1"


@dataclass(frozen=True)
class Prep:
    """How one modality is preprocessed before an encoder sees it."""

    modality: str
    band_hz: tuple[float, float]
    sfreq: float
    window_s: float = 10.0
    filter_order: int = 4

    @property
    def n_times(self) -> int:
        return int(round(self.window_s * self.sfreq))


PREPS: dict[str, Prep] = {
    "ecg": Prep("ECG", DEFAULT_BANDS["ECG"], 100.0),  # the product's bands (data.preprocess), one source
    "ppg": Prep("PPG", DEFAULT_BANDS["PPG"], 50.0),
    "eeg": Prep("EEG", DEFAULT_BANDS["EEG"], 100.0),
}


# -- signal processing ---------------------------------------------------------
def bandpass(data: np.ndarray, sfreq: float, band_hz: tuple[float, float], order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass along the last axis (float64 in, float64 out)."""
    from scipy.signal import butter, sosfiltfilt

    lo, hi = band_hz
    hi = min(hi, 0.45 * sfreq)
    sos = butter(order, [lo, hi], btype="bandpass", fs=sfreq, output="sos")
    return sosfiltfilt(sos, data, axis=-1)


def resample(data: np.ndarray, sfreq_in: float, sfreq_out: float) -> np.ndarray:
    """Polyphase resampling along the last axis."""
    from scipy.signal import resample_poly

    if abs(sfreq_in - sfreq_out) < 1e-9:
        return data
    frac = Fraction(sfreq_out / sfreq_in).limit_denominator(1000)
    return resample_poly(data, frac.numerator, frac.denominator, axis=-1)


def _longest_constant_run(x: np.ndarray) -> int:
    """Length of the longest run of identical consecutive samples in a 1-D array."""
    if x.size < 2:
        return x.size
    same = np.concatenate([[False], np.diff(x) == 0, [False]])
    edges = np.flatnonzero(np.diff(same.astype(np.int8)))
    if edges.size == 0:
        return 1
    return int((edges[1::2] - edges[0::2]).max()) + 1


def window_ok(raw: np.ndarray, sfreq: float, *, flat_s: float = 1.0) -> bool:
    """True when a raw window (n_chans, n) has no NaN, no flat stretch and some variance."""
    if not np.isfinite(raw).all():
        return False
    max_run = int(flat_s * sfreq)
    for row in raw:
        if np.std(row) < 1e-7 or _longest_constant_run(row) >= max_run:
            return False
    return True


def zscore(x: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Z-score along the last axis; returns (z, ok) with ok False where std < eps."""
    mu = x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    ok = (sd[..., 0] > eps).all(axis=-1) if x.ndim == 3 else bool((sd > eps).all())
    return ((x - mu) / np.maximum(sd, eps)).astype(np.float32), ok


def windows_from_signal(raw: np.ndarray, sfreq: float, prep: Prep, *, starts_s: Sequence[float]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Preprocess a whole signal (n_chans, n_times) once, then cut windows at ``starts_s``.

    Returns ``(x, start_s)``: z-scored float32 windows (n, n_chans, prep.n_times)
    and the start times kept (bad windows dropped).
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[None]
    filt = bandpass(_fill_nan(raw), sfreq, prep.band_hz, prep.filter_order)
    res = resample(filt, sfreq, prep.sfreq)
    n_raw, n_out = int(round(prep.window_s * sfreq)), prep.n_times
    xs, kept = [], []
    for t0 in starts_s:
        i0, j0 = int(round(t0 * sfreq)), int(round(t0 * prep.sfreq))
        if i0 < 0 or i0 + n_raw > raw.shape[1] or j0 + n_out > res.shape[1]:
            continue
        if not window_ok(raw[:, i0:i0 + n_raw], sfreq):
            continue
        z, ok = zscore(res[:, j0:j0 + n_out])
        if ok:
            xs.append(z)
            kept.append(float(t0))
    if not xs:
        return np.zeros((0, raw.shape[0], n_out), np.float32), np.zeros(0)
    return np.stack(xs), np.asarray(kept)


def grid_starts(duration_s: float, window_s: float, step_s: float, *, t0: float = 0.0) -> np.ndarray:
    """Window starts t0, t0+step, ... that fit inside ``duration_s``."""
    last = duration_s - window_s
    if last < t0 - 1e-9:
        return np.zeros(0)
    return np.round(np.arange(t0, last + 1e-9, step_s), 6)


# -- reading files -------------------------------------------------------------
def _read(path: Path) -> tuple[np.ndarray, float, list[str], list[str]]:
    """(data (n_chans, n_times), sfreq, ch_names, ch_types) via the project reader when present."""
    try:
        from ..data.readers import read_recording
    except ImportError:  # pragma: no cover - reader not built yet
        read_recording = None
    if read_recording is not None:
        rec = read_recording(path)
        return rec.data, rec.sfreq, list(rec.ch_names), list(rec.ch_types)
    from ..data.recording import infer_ch_type  # pragma: no cover

    if path.suffix.lower() == ".edf":  # pragma: no cover
        import mne

        raw = mne.io.read_raw_edf(str(path), preload=True, verbose="ERROR")
        names = list(raw.ch_names)
        return raw.get_data().astype(np.float32), float(raw.info["sfreq"]), names, [infer_ch_type(c) for c in names]
    import wfdb  # pragma: no cover

    r = wfdb.rdrecord(str(path.with_suffix("")))  # pragma: no cover
    names = list(r.sig_name)  # pragma: no cover
    return r.p_signal.T.astype(np.float32), float(r.fs), names, [infer_ch_type(c) for c in names]  # pragma: no cover


def _channel_rows(names: list[str], types: list[str], kind: str) -> list[int]:
    """Rows of the channels of ``kind``: 'ECG', 'PPG' or 'EEG' (the 19 eegmat 10-20 channels)."""
    if kind == "EEG":
        low = [n.lower().replace("eeg", "").strip() for n in names]
        rows = []
        for ch in EEGMAT_EEG:
            if ch.lower() not in low:
                return []
            rows.append(low.index(ch.lower()))
        return rows
    return [i for i, t in enumerate(types) if t == kind]


@dataclass
class WindowSet:
    """Windows plus one row of metadata per window (all arrays, no objects)."""

    x: np.ndarray            # (n, n_chans, n_times) float32, z-scored
    source: np.ndarray       # recording name per window (str)
    subject: np.ndarray      # subject / record id per window (str), the CV group
    channel: np.ndarray      # channel name per window ('' when all channels are kept)
    start_s: np.ndarray      # window start in seconds
    label: np.ndarray        # int label per window (-1 when unknown)
    ch_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, idx: np.ndarray) -> "WindowSet":
        return WindowSet(self.x[idx], self.source[idx], self.subject[idx], self.channel[idx],
                         self.start_s[idx], self.label[idx], self.ch_names)

    @staticmethod
    def concat(parts: Sequence["WindowSet"]) -> "WindowSet":
        parts = [p for p in parts if len(p)]
        if not parts:
            raise RecordingError("no usable windows were found in the given sources.")
        return WindowSet(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                           ("x", "source", "subject", "channel", "start_s", "label")), ch_names=parts[0].ch_names)

    def save(self, path: Path) -> None:
        atomic_save_npz(path, x=self.x, source=self.source.astype("U64"), subject=self.subject.astype("U64"),
                        channel=self.channel.astype("U16"), start_s=self.start_s, label=self.label,
                        ch_names=np.asarray(self.ch_names, dtype="U16"))

    @classmethod
    def load(cls, path: Path) -> "WindowSet":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["x"], z["source"], z["subject"], z["channel"], z["start_s"], z["label"],
                       tuple(str(c) for c in z["ch_names"]))


def _build(parts_fn, key: dict, cache: bool) -> WindowSet:
    digest = hashlib.sha1(repr(sorted(key.items())).encode()).hexdigest()[:16]
    path = cache_dir("zoo") / f"{key['what']}_{digest}.npz"
    if cache and path.exists():
        return WindowSet.load(path)
    ws = WindowSet.concat(parts_fn())
    if cache:
        ws.save(path)
    return ws


def _one(x, start, source, subject, channel, label, ch_names=()) -> WindowSet:
    n = len(x)
    return WindowSet(x, np.full(n, source, dtype="U64"), np.full(n, subject, dtype="U64"),
                     np.full(n, channel, dtype="U16"), np.asarray(start, float), np.full(n, label, dtype=np.int64),
                     tuple(ch_names))


def eegmat_windows(root: str | Path, kind: str, *, step_s: float = 10.0, cache: bool = True) -> WindowSet:
    """eegmat windows of ``kind`` ('ECG' or 'EEG'); label 0 = rest (``_1``), 1 = task (``_2``)."""
    enc = {"ECG": "ecg", "EEG": "eeg"}[kind]
    prep = PREPS[enc]
    folder = Path(root) / "eegmat"
    files = sorted(folder.glob("Subject*_*.edf"))
    if not files:
        raise RecordingError(f"{folder}: no eegmat EDF files (SubjectNN_1.edf / SubjectNN_2.edf) found.")

    def parts():
        out = []
        for f in files:
            data, sfreq, names, types = _read(f)
            rows = _channel_rows(names, types, kind)
            if not rows:
                log.warning("%s: no %s channels; skipped", f.name, kind)
                continue
            subject, suffix = f.stem.rsplit("_", 1)
            starts = grid_starts(data.shape[1] / sfreq, prep.window_s, step_s)
            x, kept = windows_from_signal(data[rows], sfreq, prep, starts_s=starts)
            chs = EEGMAT_EEG if kind == "EEG" else ()
            out.append(_one(x, kept, f.name, subject, "" if kind == "EEG" else names[rows[0]],
                            int(suffix == "2"), chs))
        return out

    key = {"what": f"eegmat_{enc}", "root": str(folder.resolve()), "step_s": step_s, "n": len(files),
           "prep": repr(asdict(prep)), "v": CACHE_VERSION}
    return _build(parts, key, cache)


def cinc_windows(root: str | Path, kind: str, *, step_s: float = 10.0, span_s: tuple[float, float] | None = None,
                 per_lead: bool = True, cache: bool = True) -> WindowSet:
    """cinc2015_vt windows of ``kind`` ('ECG' or 'PPG'), one single-channel window per lead.

    ``span_s`` restricts windows to ``[start, end)`` seconds; label = alarm verdict (1 true, 0 false).
    """
    enc = {"ECG": "ecg", "PPG": "ppg"}[kind]
    prep = PREPS[enc]
    folder = Path(root) / "cinc2015_vt"
    heads = sorted(folder.glob("*.hea"))
    if not heads:
        raise RecordingError(f"{folder}: no WFDB headers (*.hea) found.")
    labels: dict[str, int] = {}
    alarms = folder / "alarms.csv"
    if alarms.exists():
        for line in alarms.read_text().splitlines()[1:]:
            if "," in line:
                name, res = line.split(",")[:2]
                labels[name.strip()] = int(res)

    def parts():
        out = []
        for h in heads:
            data, sfreq, names, types = _read(h)
            rows = _channel_rows(names, types, kind)
            if not rows:
                log.info("%s: no %s channel; skipped", h.name, kind)
                continue
            dur = data.shape[1] / sfreq
            if span_s is None:
                starts = grid_starts(dur, prep.window_s, step_s)
            else:
                end = min(span_s[1], dur)
                starts = grid_starts(end, prep.window_s, step_s, t0=span_s[0])
            for r in rows if per_lead else rows[:1]:
                x, kept = windows_from_signal(data[r], sfreq, prep, starts_s=starts)
                out.append(_one(x, kept, h.stem, h.stem, names[r], labels.get(h.stem, -1)))
        return out

    key = {"what": f"cinc_{enc}", "root": str(folder.resolve()), "step_s": step_s, "span": repr(span_s),
           "per_lead": per_lead, "n": len(heads), "prep": repr(asdict(prep)), "v": CACHE_VERSION}
    return _build(parts, key, cache)


def simulated_windows(kind: str, *, n_signals: int = 40, duration_s: float = 60.0, step_s: float = 10.0,
                      seed: int = 0, sfreq: float = 250.0, cache: bool = True) -> WindowSet:
    """neurokit2-simulated ECG or PPG (random heart rate, noise, drift), preprocessed like real data."""
    import contextlib
    import io
    import warnings

    import neurokit2 as nk

    enc = {"ECG": "ecg", "PPG": "ppg"}[kind]
    prep = PREPS[enc]

    def parts():
        rng = np.random.default_rng(seed)
        out = []
        for i in range(n_signals):
            hr = float(rng.uniform(45, 150))
            rs = int(rng.integers(0, 2**31 - 1))
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # neurokit prints
                warnings.simplefilter("ignore")
                if kind == "ECG":
                    sig = nk.ecg_simulate(duration=duration_s, sampling_rate=int(sfreq), heart_rate=hr,
                                          heart_rate_std=float(rng.uniform(0.5, 8)), noise=float(rng.uniform(0, 0.15)),
                                          method="ecgsyn" if i % 2 == 0 else "simple", random_state=rs)
                else:
                    sig = nk.ppg_simulate(duration=duration_s, sampling_rate=int(sfreq), heart_rate=hr,
                                          frequency_modulation=float(rng.uniform(0, 0.4)),
                                          ibi_randomness=float(rng.uniform(0, 0.2)),
                                          drift=float(rng.uniform(0, 1)), motion_amplitude=float(rng.uniform(0, 0.3)),
                                          powerline_amplitude=float(rng.uniform(0, 0.05)),
                                          burst_number=int(rng.integers(0, 3)), burst_amplitude=float(rng.uniform(0, 1)),
                                          random_state=rs)
            sig = np.asarray(sig, dtype=np.float64)[None]
            starts = grid_starts(sig.shape[1] / sfreq, prep.window_s, step_s)
            x, kept = windows_from_signal(sig, sfreq, prep, starts_s=starts)
            out.append(_one(x, kept, f"sim_{kind.lower()}_{i}", f"sim{i}", kind, -1))
        return out

    key = {"what": f"sim_{enc}", "n": n_signals, "dur": duration_s, "step_s": step_s, "seed": seed,
           "sfreq": sfreq, "prep": repr(asdict(prep)), "v": CACHE_VERSION}
    return _build(parts, key, cache)
