"""Windows for pre-training and probing the built-in encoders.

Preprocessing mirrors what the product feeds an encoder (``data.preprocess.filter_signal``
with the default ``Preprocessing``): zero-phase Butterworth band-pass at the file's own rate
(ECG 0.5-40 Hz, PPG 0.5-8 Hz, EEG 0.5-45 Hz, EDA low-pass 1 Hz), polyphase resampling to
the encoder's rate, windows, z-score per window and channel. Windows that contain NaN in
the raw signal, a flat stretch or near-zero variance are dropped (flat = >= 1 s of identical
samples; EDA >= 5 s, because the E4's 4 Hz skin-conductance samples are quantised and repeat
for a second in up to 80 % of windows of low-conductance subjects; EDA below 0.01 uS means
no skin contact and is dropped too).

Sources: the development recordings (eegmat EDF, cinc2015_vt WFDB, stress_predict Empatica E4
CSV) and neurokit2 simulations (ECG, PPG, EDA). Arrays are cached as ``.npz`` under the
project cache folder so pre-training and probing read each file once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, replace
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
CACHE_VERSION = "2"
#: EDA below this (microsiemens) means the electrodes lost skin contact (the E4 writes 0.0 then).
EDA_MIN_US = 0.01


@dataclass(frozen=True)
class Prep:
    """How one modality is preprocessed before an encoder sees it."""

    modality: str
    band_hz: tuple[float | None, float | None]
    sfreq: float
    window_s: float = 10.0
    filter_order: int = 4
    flat_s: float = 1.0
    min_value: float | None = None  # raw samples below this are bad (EDA: no skin contact)

    @property
    def n_times(self) -> int:
        return int(round(self.window_s * self.sfreq))


PREPS: dict[str, Prep] = {
    "ecg": Prep("ECG", DEFAULT_BANDS["ECG"], 100.0),  # the product's bands (data.preprocess), one source
    "ppg": Prep("PPG", DEFAULT_BANDS["PPG"], 50.0),
    "eeg": Prep("EEG", DEFAULT_BANDS["EEG"], 100.0),
    "eda": Prep("EDA", DEFAULT_BANDS["EDA"], 4.0, flat_s=5.0, min_value=EDA_MIN_US),
}


# -- signal processing ---------------------------------------------------------
def bandpass(data: np.ndarray, sfreq: float, band_hz: tuple[float | None, float | None], order: int = 4, *,
             max_hz: float | None = None) -> np.ndarray:
    """Zero-phase Butterworth filter along the last axis, as the product applies it (float64 out).

    ``band_hz`` = (low, high); None for an edge means no edge (EDA: low-pass only). ``max_hz`` caps
    the upper edge (0.45 x the encoder's rate). Delegates to ``data.preprocess.filter_signal``.
    """
    from ..data.preprocess import Preprocessing, filter_signal

    arr = np.asarray(data, dtype=np.float64)
    two_d = arr.reshape(1, -1) if arr.ndim == 1 else arr
    prep = Preprocessing(bands={"zoo": tuple(band_hz)}, filter_order=order)
    out = filter_signal(two_d, sfreq, "zoo", prep, max_hz=max_hz)
    return out.reshape(arr.shape)


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


def window_ok(raw: np.ndarray, sfreq: float, *, flat_s: float = 1.0, min_value: float | None = None) -> bool:
    """True when a raw window (n_chans, n) has no NaN, no flat stretch and some variance."""
    if not np.isfinite(raw).all():
        return False
    if min_value is not None and (raw < min_value).any():
        return False
    max_run = max(2, int(flat_s * sfreq))
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


def windows_from_signal(raw: np.ndarray, sfreq: float, prep: Prep, *, starts_s: Sequence[float],
                        normalise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Preprocess a whole signal (n_chans, n_times) once, then cut windows at ``starts_s``.

    Returns ``(x, start_s)``: z-scored float32 windows (n, n_chans, prep.n_times)
    and the start times kept (bad windows dropped). ``normalise=False`` keeps the
    filtered signal in its physical unit (e.g. EDA in microsiemens for the baseline).
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim == 1:
        raw = raw[None]
    filt = bandpass(_fill_nan(raw), sfreq, prep.band_hz, prep.filter_order, max_hz=0.45 * prep.sfreq)
    res = resample(filt, sfreq, prep.sfreq)
    n_raw, n_out = int(round(prep.window_s * sfreq)), prep.n_times
    xs, kept = [], []
    for t0 in starts_s:
        i0, j0 = int(round(t0 * sfreq)), int(round(t0 * prep.sfreq))
        if i0 < 0 or i0 + n_raw > raw.shape[1] or j0 + n_out > res.shape[1]:
            continue
        if not window_ok(raw[:, i0:i0 + n_raw], sfreq, flat_s=prep.flat_s, min_value=prep.min_value):
            continue
        z, ok = zscore(res[:, j0:j0 + n_out])
        if ok:
            xs.append(z if normalise else res[:, j0:j0 + n_out].astype(np.float32))
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


def eegmat_windows(root: str | Path, kind: str, *, step_s: float = 10.0, window_s: float = 10.0,
                   cache: bool = True) -> WindowSet:
    """eegmat windows of ``kind`` ('ECG' or 'EEG'); label 0 = rest (``_1``), 1 = task (``_2``)."""
    enc = {"ECG": "ecg", "EEG": "eeg"}[kind]
    prep = replace(PREPS[enc], window_s=float(window_s))
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
                 per_lead: bool = True, window_s: float = 10.0, cache: bool = True) -> WindowSet:
    """cinc2015_vt windows of ``kind`` ('ECG' or 'PPG'), one single-channel window per lead.

    ``span_s`` restricts windows to ``[start, end)`` seconds; label = alarm verdict (1 true, 0 false).
    """
    enc = {"ECG": "ecg", "PPG": "ppg"}[kind]
    prep = replace(PREPS[enc], window_s=float(window_s))
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


def simulate_signal(kind: str, rng: np.random.Generator, *, duration_s: float, sfreq: float, index: int = 0
                    ) -> np.ndarray:
    """One neurokit2-simulated ECG, PPG or EDA signal (1-D float64) with random physiology and noise.

    ECG: ``ecg_simulate`` (ECGSYN and the simple model alternating), 45-150 bpm, heart-rate SD 0.5-8;
    PPG: ``ppg_simulate`` with frequency modulation, IBI randomness, drift, motion and bursts;
    EDA: ``eda_simulate`` with 0-2.5 skin-conductance responses per minute, drift and noise, plus a
    random tonic level (0.5-10 uS). (``nk.eeg_simulate`` needs a download, so EEG is not simulated.)
    """
    import contextlib
    import io
    import warnings

    import neurokit2 as nk

    rs = int(rng.integers(0, 2**31 - 1))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # neurokit prints
        warnings.simplefilter("ignore")
        if kind == "ECG":
            hr = float(rng.uniform(45, 150))
            sig = nk.ecg_simulate(duration=duration_s, sampling_rate=int(sfreq), heart_rate=hr,
                                  heart_rate_std=float(rng.uniform(0.5, 8)), noise=float(rng.uniform(0, 0.15)),
                                  method="ecgsyn" if index % 2 == 0 else "simple", random_state=rs)
        elif kind == "PPG":
            hr = float(rng.uniform(45, 150))
            sig = nk.ppg_simulate(duration=duration_s, sampling_rate=int(sfreq), heart_rate=hr,
                                  frequency_modulation=float(rng.uniform(0, 0.4)),
                                  ibi_randomness=float(rng.uniform(0, 0.2)),
                                  drift=float(rng.uniform(0, 1)), motion_amplitude=float(rng.uniform(0, 0.3)),
                                  powerline_amplitude=float(rng.uniform(0, 0.05)),
                                  burst_number=int(rng.integers(0, 3)), burst_amplitude=float(rng.uniform(0, 1)),
                                  random_state=rs)
        elif kind == "EDA":
            n_scr = int(rng.integers(0, int(2.5 * duration_s / 60) + 1))
            sig = nk.eda_simulate(duration=int(round(duration_s)), sampling_rate=int(sfreq), scr_number=n_scr,
                                  drift=float(rng.uniform(-0.02, 0.02)), noise=float(rng.uniform(0.002, 0.03)),
                                  random_state=rs)
            sig = np.asarray(sig, dtype=np.float64) + float(rng.uniform(0.5, 10.0))
        else:
            raise RecordingError(f"cannot simulate {kind!r} (ECG, PPG or EDA).")
    return np.asarray(sig, dtype=np.float64)


def simulated_windows(kind: str, *, n_signals: int = 40, duration_s: float = 60.0, step_s: float = 10.0,
                      seed: int = 0, sfreq: float = 250.0, cache: bool = True) -> WindowSet:
    """neurokit2-simulated ECG, PPG or EDA (``simulate_signal``), preprocessed like real data."""
    enc = {"ECG": "ecg", "PPG": "ppg", "EDA": "eda"}[kind]
    prep = PREPS[enc]

    def parts():
        rng = np.random.default_rng(seed)
        out = []
        for i in range(n_signals):
            sig = simulate_signal(kind, rng, duration_s=duration_s, sfreq=sfreq, index=i)[None]
            starts = grid_starts(sig.shape[1] / sfreq, prep.window_s, step_s)
            x, kept = windows_from_signal(sig, sfreq, prep, starts_s=starts)
            out.append(_one(x, kept, f"sim_{kind.lower()}_{i}", f"sim{i}", kind, -1))
        return out

    key = {"what": f"sim_{enc}", "n": n_signals, "dur": duration_s, "step_s": step_s, "seed": seed,
           "sfreq": sfreq, "prep": repr(asdict(prep)), "v": CACHE_VERSION}
    return _build(parts, key, cache)


# -- Stress-Predict (Empatica E4 CSV) ---------------------------------------------
#: file name and encoder of each Stress-Predict signal the zoo uses
STRESS_FILES = {"PPG": "BVP.csv", "EDA": "EDA.csv"}


def read_e4_csv(path: str | Path) -> tuple[np.ndarray, float, float]:
    """One Empatica E4 CSV export (``BVP.csv``, ``EDA.csv``, ``TEMP.csv``): ``(samples, sfreq_hz, start_unix_s)``.

    Layout (E4 connect export): row 1 = session start (unix seconds, UTC), row 2 = sampling rate
    (Hz), then one sample per row (single-column files only). Own code because it is three
    lines of CSV; the project's general readers may add an E4 reader later.
    Raises ``RecordingError`` naming the file for a layout that does not match.
    """
    path = Path(path)
    try:
        vals = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=1)
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{path}: not a single-column Empatica E4 CSV ({exc}).") from None
    if vals.ndim != 1 or vals.size < 3:
        raise RecordingError(f"{path}: an E4 CSV has one column: start time, sampling rate, then samples.")
    start, sfreq = float(vals[0]), float(vals[1])
    if not (0 < sfreq <= 10_000) or start < 0:
        raise RecordingError(f"{path}: row 2 should be the sampling rate in Hz, got {sfreq!r}.")
    return vals[2:], sfreq, start


def stress_subjects(root: str | Path) -> list[Path]:
    """Subject folders (``SNN``) of the Stress-Predict development copy."""
    folder = Path(root) / "stress_predict"
    subs = sorted(p for p in folder.glob("S[0-9]*") if p.is_dir())
    if not subs:
        raise RecordingError(f"{folder}: no Stress-Predict subject folders (S02, S04, ...) found.")
    return subs


def stress_label_spans(root: str | Path) -> dict[str, list[tuple[float, float, int]]]:
    """Constant-label stretches per subject from ``labels.csv``: ``{"S02": [(t0_unix, t1_unix, label), ...]}``.

    ``labels.csv`` has one row per second (``participant,time_unix_s,label``); a stretch is a run of
    consecutive seconds with the same label, covering ``[first second, last second + 1)``.
    """
    import pandas as pd

    path = Path(root) / "stress_predict" / "labels.csv"
    if not path.is_file():
        raise RecordingError(f"{path}: Stress-Predict labels file not found.")
    df = pd.read_csv(path)
    missing = {"participant", "time_unix_s", "label"} - set(df.columns)
    if missing:
        raise RecordingError(f"{path}: missing column(s) {sorted(missing)}.")
    out: dict[str, list[tuple[float, float, int]]] = {}
    for pid, g in df.sort_values(["participant", "time_unix_s"]).groupby("participant"):
        t = g["time_unix_s"].to_numpy(np.float64)
        y = g["label"].to_numpy(np.int64)
        cut = np.flatnonzero((np.diff(t) != 1) | (np.diff(y) != 0)) + 1
        spans = []
        for a, b in zip(np.r_[0, cut], np.r_[cut, len(t)]):
            spans.append((float(t[a]), float(t[b - 1] + 1), int(y[a])))
        out[f"S{int(pid):02d}"] = spans
    return out


def stress_windows(root: str | Path, kind: str, *, window_s: float = 30.0, step_s: float | None = None,
                   normalise: bool = True, cache: bool = True) -> WindowSet:
    """Stress-Predict windows of ``kind`` ('PPG' = BVP, 'EDA') lying fully inside one constant-label stretch.

    Label 1 = stress task, 0 = rest; the grid restarts at each stretch's start (step = ``window_s``
    by default, no overlap). ``normalise=False`` keeps the filtered signal in its unit (EDA: uS).
    """
    enc = kind.lower()
    prep = replace(PREPS[enc], window_s=float(window_s))
    step = float(step_s or window_s)
    subs = stress_subjects(root)
    spans = stress_label_spans(root)

    def parts():
        out = []
        for sub in subs:
            path = sub / STRESS_FILES[kind]
            if sub.name not in spans or not path.is_file():
                log.warning("%s: no labels or no %s; skipped", sub.name, STRESS_FILES[kind])
                continue
            sig, sfreq, start = read_e4_csv(path)
            dur = sig.size / sfreq
            for t0u, t1u, lab in spans[sub.name]:
                a, b = max(0.0, t0u - start), min(dur, t1u - start)
                starts = grid_starts(b, window_s, step, t0=a)
                x, kept = windows_from_signal(sig[None], sfreq, prep, starts_s=starts, normalise=normalise)
                out.append(_one(x, kept, f"{sub.name}/{path.name}", sub.name, path.stem, lab))
        return out

    key = {"what": f"stress_{enc}", "root": str(Path(root).resolve()), "window_s": window_s, "step_s": step,
           "norm": normalise, "n": len(subs), "prep": repr(asdict(prep)), "v": CACHE_VERSION}
    return _build(parts, key, cache)
