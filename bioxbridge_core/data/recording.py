"""The Recording container: samples plus everything needed to interpret them.

Like MNE's ``Raw``, a Recording carries its sampling rate, channel names and
types, units, start time and annotations wherever it goes, so no function
needs these passed separately.
"""

from __future__ import annotations

import copy as _copy
import datetime as _dt
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from .._check import suggest
from ..errors import RecordingError
from ..spec import MODALITIES

CH_TYPES = MODALITIES

# Standard 10-20 / 10-10 electrode names (upper-cased) used to recognise EEG channels.
EEG_1020 = (
    "FP1 FPZ FP2 AF7 AF3 AFZ AF4 AF8 F9 F7 F5 F3 F1 FZ F2 F4 F6 F8 F10 FT9 FT7 FC5 FC3 FC1 FCZ FC2 FC4 FC6 "
    "FT8 FT10 T9 T7 T3 C5 C3 C1 CZ C2 C4 C6 T8 T4 T10 TP9 TP7 CP5 CP3 CP1 CPZ CP2 CP4 CP6 TP8 TP10 P9 P7 T5 "
    "P5 P3 P1 PZ P2 P4 P6 P8 T6 P10 PO7 PO3 POZ PO4 PO8 O1 OZ O2 IZ A1 A2 M1 M2"
).split()
_ECG_LEADS = {"I", "II", "III", "AVR", "AVL", "AVF", "V", "V1", "V2", "V3", "V4", "V5", "V6", "MLII", "ML2", "MLIII", "MCL", "MCL1", "MCL6"}


def infer_ch_type(name: str) -> str:
    """Guess a channel's modality from its name (``'ECG II'`` -> ECG, ``'PLETH'`` -> PPG)."""
    up = name.strip().upper()
    tokens = [t for t in re.split(r"[\s\-_:./()]+", up) if t]
    if any(t in ("ECG", "EKG") or t.startswith("ECG") or t.startswith("EKG") for t in tokens):
        return "ECG"
    if any(t in ("PLETH", "PPG", "BVP", "SPO2PLETH") or t.startswith("PPG") or t.startswith("PLETH") for t in tokens):
        return "PPG"
    if any(t in ("EDA", "GSR", "SCL", "SCR", "ELECTRODERMAL") or t.startswith("EDA") or t.startswith("GSR") for t in tokens):
        return "EDA"
    if any(t == "EMG" or t.startswith("EMG") for t in tokens):
        return "EMG"
    if any(t == "EEG" or t.startswith("EEG") for t in tokens):
        return "EEG"
    if up in _ECG_LEADS:
        return "ECG"
    if tokens and all(t in EEG_1020 for t in tokens):
        return "EEG"
    return "other"


def eeg_position(name: str) -> str | None:
    """Return the 10-20 electrode named in a channel name (``'EEG Fp1'`` -> ``'FP1'``), or None."""
    tokens = [t for t in re.split(r"[\s\-_:./()]+", name.strip().upper()) if t and t not in ("EEG", "REF", "LE", "AV")]
    for t in tokens:
        if t in EEG_1020:
            return t
    return None


@dataclass(frozen=True)
class Annotation:
    """A labelled span: onset and duration in seconds from the recording start."""

    onset_s: float
    duration_s: float
    description: str


@dataclass(eq=False)
class Recording:
    """Continuous multichannel signal in physical units.

    Parameters
    ----------
    data : ndarray, shape (n_chans, n_times), float32, physical units.
    sfreq : sampling rate in Hz.
    ch_names : one name per channel.
    ch_types : one of ``CH_TYPES`` per channel; inferred from names when omitted.
    units : physical unit per channel (``'mV'``, ``'uV'``, ``'NU'``...).
    start_time : wall-clock time of the first sample, when known.
    annotations : labelled spans.
    source : file the data came from (for messages).
    subject : subject identifier, when known.
    """

    data: np.ndarray
    sfreq: float
    ch_names: list[str]
    ch_types: list[str] | None = None
    units: list[str] | None = None
    start_time: _dt.datetime | None = None
    annotations: list[Annotation] = field(default_factory=list)
    source: str = "<memory>"
    subject: str | None = None

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim == 1:
            data = data[None, :]
        if data.ndim != 2:
            raise RecordingError(f"{self.source}: data must be 2-D (n_chans, n_times), got shape {data.shape}.")
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.ch_names = [str(c) for c in self.ch_names]
        n = self.data.shape[0]
        if len(self.ch_names) != n:
            raise RecordingError(f"{self.source}: {n} channels of data but {len(self.ch_names)} channel names.")
        if len(set(self.ch_names)) != n:
            dup = sorted({c for c in self.ch_names if self.ch_names.count(c) > 1})
            raise RecordingError(f"{self.source}: duplicate channel names {dup}.")
        try:
            sfreq = float(self.sfreq)
        except (TypeError, ValueError):
            raise RecordingError(f"{self.source}: sampling rate {self.sfreq!r} is not a number.") from None
        if not np.isfinite(sfreq) or not (0.01 <= sfreq <= 100_000):
            raise RecordingError(
                f"{self.source}: sampling rate {self.sfreq!r} Hz is absurd (expected 0.01 to 100000 Hz)."
            )
        self.sfreq = sfreq
        if self.ch_types is None:
            self.ch_types = [infer_ch_type(c) for c in self.ch_names]
        self.ch_types = [str(t) for t in self.ch_types]
        bad = [t for t in self.ch_types if t not in CH_TYPES]
        if bad or len(self.ch_types) != n:
            raise RecordingError(f"{self.source}: channel types must be {n} values from {CH_TYPES}, got {self.ch_types}.")
        if self.units is None:
            self.units = ["" for _ in range(n)]
        self.units = [str(u) for u in self.units]
        if len(self.units) != n:
            raise RecordingError(f"{self.source}: {n} channels but {len(self.units)} units.")

    # -- basic properties -------------------------------------------------
    @property
    def n_chans(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_times(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration_s(self) -> float:
        return self.n_times / self.sfreq

    @property
    def name(self) -> str:
        return Path(self.source).name

    def times(self) -> np.ndarray:
        """Seconds from the first sample, shape (n_times,)."""
        return np.arange(self.n_times) / self.sfreq

    def __repr__(self) -> str:
        subj = f" | subject={self.subject}" if self.subject else ""
        return (
            f"<Recording | {self.name} | {self.n_chans} ch × {self.n_times} @ {self.sfreq:g} Hz "
            f"({self.duration_s:.1f} s){subj}>"
        )

    def copy(self) -> "Recording":
        return _copy.deepcopy(self)

    # -- selection ----------------------------------------------------------
    def channel_index(self, name: str) -> int:
        """Index of a channel by exact name, else a unique case-insensitive match."""
        if name in self.ch_names:
            return self.ch_names.index(name)
        low = [c.lower() for c in self.ch_names]
        if low.count(name.lower()) == 1:
            return low.index(name.lower())
        avail = ", ".join(repr(c) for c in self.ch_names)
        raise RecordingError(
            f"Channel '{name}' not in {self.name}. Available: {avail}.{suggest(name, self.ch_names)}"
        )

    def pick(self, channels: Sequence[str] | str) -> "Recording":
        """New Recording with only ``channels`` (names or a modality such as ``'ECG'``), in that order."""
        if isinstance(channels, str):
            if channels in CH_TYPES and channels not in self.ch_names:
                idx = [i for i, t in enumerate(self.ch_types) if t == channels]
                if not idx:
                    types = ", ".join(f"{c} ({t})" for c, t in zip(self.ch_names, self.ch_types))
                    raise RecordingError(f"{self.name} has no {channels} channel. Channels: {types}.")
            else:
                idx = [self.channel_index(channels)]
        else:
            channels = list(channels)
            if not channels:
                raise RecordingError(f"{self.name}: no channels were given to pick.")
            idx = [self.channel_index(c) for c in channels]
        out = self.copy()
        out.data = np.ascontiguousarray(self.data[idx])
        out.ch_names = [self.ch_names[i] for i in idx]
        out.ch_types = [self.ch_types[i] for i in idx]
        out.units = [self.units[i] for i in idx]
        return out

    def crop(self, tmin_s: float = 0.0, tmax_s: float | None = None) -> "Recording":
        """New Recording covering [tmin_s, tmax_s) seconds; annotations are shifted and clipped."""
        tmax_s = self.duration_s if tmax_s is None else tmax_s
        if not (0 <= tmin_s < tmax_s <= self.duration_s + 1e-9):
            raise RecordingError(
                f"{self.name}: cannot crop to [{tmin_s}, {tmax_s}) s; the recording lasts {self.duration_s:.3f} s."
            )
        i0, i1 = int(round(tmin_s * self.sfreq)), int(round(tmax_s * self.sfreq))
        out = self.copy()
        out.data = np.ascontiguousarray(self.data[:, i0:i1])
        if self.start_time is not None:
            out.start_time = self.start_time + _dt.timedelta(seconds=i0 / self.sfreq)
        anns = []
        for a in self.annotations:
            a0, a1 = a.onset_s, a.onset_s + a.duration_s
            if a1 < tmin_s or a0 > tmax_s:
                continue
            n0, n1 = max(a0, tmin_s) - tmin_s, min(a1, tmax_s) - tmin_s
            anns.append(Annotation(n0, max(0.0, n1 - n0), a.description))
        out.annotations = anns
        return out

    def resample(self, sfreq: float) -> "Recording":
        """New Recording at ``sfreq`` Hz (polyphase, anti-aliased)."""
        from scipy.signal import resample_poly

        if sfreq <= 0:
            raise RecordingError(f"{self.name}: target sampling rate must be positive, got {sfreq}.")
        if abs(sfreq - self.sfreq) < 1e-9:
            return self.copy()
        frac = Fraction(sfreq / self.sfreq).limit_denominator(1000)
        out = self.copy()
        y = resample_poly(self.data.astype(np.float64), frac.numerator, frac.denominator, axis=1)
        out.data = np.ascontiguousarray(y, dtype=np.float32)
        out.sfreq = float(sfreq)
        return out

    def get_data(self, channels: Sequence[str] | None = None) -> np.ndarray:
        """Samples as float32, shape (n_chans, n_times)."""
        return self.data if channels is None else self.pick(list(channels)).data

    def summary(self) -> dict:
        """JSON-ready description: channels with types and units, rate, duration, annotations."""
        return {
            "source": self.source,
            "subject": self.subject,
            "sfreq": self.sfreq,
            "n_times": self.n_times,
            "duration_s": round(self.duration_s, 6),
            "start_time": self.start_time.isoformat() if self.start_time else None,
            "channels": [
                {"name": c, "type": t, "unit": u} for c, t, u in zip(self.ch_names, self.ch_types, self.units)
            ],
            "annotations": [
                {"onset_s": a.onset_s, "duration_s": a.duration_s, "description": a.description}
                for a in self.annotations
            ],
        }
