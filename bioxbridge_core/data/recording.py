"""The Recording container: samples plus everything needed to interpret them.

Like MNE's ``Raw``, a Recording carries its sampling rate, channel names and
types, units, start time and annotations wherever it goes, so no function
needs these passed separately.
"""

from __future__ import annotations

import copy as _copy
import datetime as _dt
import logging
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import numpy as np

from .._check import suggest
from ..errors import RecordingError
from ..spec import MODALITIES
from .channels import EEG_1020, eeg_position, parse_derivation  # noqa: F401  (re-exported)
from .units import normalise_unit, unit_scale  # noqa: F401  (unit_scale re-exported for pairing)

log = logging.getLogger(__name__)

CH_TYPES = MODALITIES

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


@dataclass(frozen=True)
class Annotation:
    """A labelled span: onset and duration in seconds from the recording start."""

    onset_s: float
    duration_s: float
    description: str


#: Largest number of samples (all channels) a reader may add as NaN to keep the time of every sample
#: across gaps (EDF+D, multi-segment WFDB, tables with missing rows): 2**28 float32 values = 1 GiB.
MAX_GAP_FILL_SAMPLES = 2 ** 28


def start_offset_s(first: _dt.datetime | None, second: _dt.datetime | None) -> float | None:
    """Seconds from ``first`` to ``second`` (positive when ``second`` is later); None when either is unknown.

    Both aware (UTC) or both naive (clock time as written in a file): the exact difference.
    One aware and one naive: the naive clock time is taken to be UTC and a warning is logged,
    because a file without a zone cannot say where its clock was (see ``Recording``).
    """
    if first is None or second is None:
        return None
    a_aware, b_aware = first.tzinfo is not None, second.tzinfo is not None
    if a_aware != b_aware:
        log.warning("Comparing a start time with a time zone (%s) with one without (%s): the one without is "
                    "taken to be UTC.", (first if a_aware else second).isoformat(),
                    (second if a_aware else first).isoformat())
        first = first.astimezone(_dt.timezone.utc).replace(tzinfo=None) if a_aware else first
        second = second.astimezone(_dt.timezone.utc).replace(tzinfo=None) if b_aware else second
    return (second - first).total_seconds()


def _check_gaps(gaps, source: str) -> list[tuple[float, float]]:
    out = []
    for g in gaps or []:
        try:
            onset, dur = float(g[0]), float(g[1])
        except (TypeError, ValueError, IndexError):
            raise RecordingError(f"{source}: a gap must be (onset_s, duration_s), got {g!r}.") from None
        if not (np.isfinite(onset) and np.isfinite(dur) and onset >= 0 and dur > 0):
            raise RecordingError(f"{source}: gap {g!r} needs onset >= 0 and duration > 0 (seconds).")
        out.append((onset, dur))
    out.sort()
    for (o0, d0), (o1, _) in zip(out, out[1:]):
        if o1 < o0 + d0 - 1e-9:
            raise RecordingError(f"{source}: gaps at {o0:g} s and {o1:g} s overlap.")
    return out


@dataclass(eq=False)
class Recording:
    """Continuous multichannel signal in physical units, with the true time of every sample.

    Parameters
    ----------
    data : ndarray, shape (n_chans, n_times), float32, physical units.
    sfreq : sampling rate in Hz. Sample ``i`` lies ``i / sfreq`` seconds after the first sample,
        always -- also across gaps (below).
    ch_names : one name per channel.
    ch_types : one of ``CH_TYPES`` per channel; inferred from names when omitted.
    units : physical unit per channel, normalised by ``units.normalise_unit`` (``'uV'`` for
        ``'µV'``, ``'mV'``, ``'NU'``...; ``''`` when the file gives none).
    start_time : wall-clock time of the first sample, to the microsecond, when known.
        **Rule**: timezone-aware (UTC) when the source gives an absolute instant (unix/epoch
        time stamps, an Empatica E4 start, ISO date-times with a zone); naive when the file
        writes a clock time without a zone (EDF/BDF header, WFDB base time, ISO date-times
        without a zone), taken as the local clock of the recording site. Compare two start
        times with :func:`start_offset_s` (or ``rec.start_offset_s(other)``), which is exact
        when both are of one kind and otherwise takes the naive one to be UTC (with a warning).
    annotations : labelled spans, onsets in seconds from the first sample (wall-clock
        time, gaps included).
    source : file the data came from (for messages).
    subject : subject identifier, when known.
    gaps : ``(onset_s, duration_s)`` spans, seconds from the first sample, where the source
        recorded nothing (EDF+D record jumps, WFDB null segments, missing table rows). Their
        samples are NaN in ``data`` so every sample keeps its true time; ``gap_mask()`` marks them.
    warnings : one-line notes from reading the file (a flagged header field, a non-ASCII
        label, samples placed on the sample grid...). Readers also log each at WARNING level;
        the CLI prints them and ``inspect`` lists them.
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
    gaps: list[tuple[float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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
        self.units = [normalise_unit(u) for u in self.units]
        if len(self.units) != n:
            raise RecordingError(f"{self.source}: {n} channels but {len(self.units)} units.")
        if self.start_time is not None:
            if not isinstance(self.start_time, _dt.datetime):
                raise RecordingError(f"{self.source}: start_time must be a datetime, got {self.start_time!r}.")
            if self.start_time.tzinfo is not None:
                self.start_time = self.start_time.astimezone(_dt.timezone.utc)
        self.gaps = _check_gaps(self.gaps, self.source)
        self.warnings = [str(w) for w in (self.warnings or [])]

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
        """Seconds from the first sample, shape (n_times,) (gaps included: ``i / sfreq``)."""
        return np.arange(self.n_times) / self.sfreq

    def gap_mask(self) -> np.ndarray:
        """Boolean mask, shape (n_times,), True for samples inside a gap (where the source recorded nothing)."""
        mask = np.zeros(self.n_times, dtype=bool)
        for onset, dur in self.gaps:
            i0 = int(round(onset * self.sfreq))
            i1 = int(round((onset + dur) * self.sfreq))
            mask[max(i0, 0):max(min(i1, self.n_times), 0)] = True
        return mask

    def start_offset_s(self, other: "Recording") -> float | None:
        """Seconds from this recording's first sample to ``other``'s (see :func:`start_offset_s`)."""
        return start_offset_s(self.start_time, other.start_time)

    def __repr__(self) -> str:
        subj = f" | subject={self.subject}" if self.subject else ""
        gaps = f" | {len(self.gaps)} gap(s)" if self.gaps else ""
        return (
            f"<Recording | {self.name} | {self.n_chans} ch × {self.n_times} @ {self.sfreq:g} Hz "
            f"({self.duration_s:.1f} s){gaps}{subj}>"
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
        """New Recording with only ``channels`` (names or a modality such as ``'ECG'``), in that order.

        Gaps, start time, annotations and warnings are kept (gaps concern every channel).
        """
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
        """New Recording covering [tmin_s, tmax_s) seconds; annotations and gaps are shifted and clipped."""
        tmax_s = self.duration_s if tmax_s is None else tmax_s
        if not (0 <= tmin_s < tmax_s <= self.duration_s + 1e-9):
            raise RecordingError(
                f"{self.name}: cannot crop to [{tmin_s}, {tmax_s}) s; the recording lasts {self.duration_s:.3f} s."
            )
        i0, i1 = int(round(tmin_s * self.sfreq)), int(round(tmax_s * self.sfreq))
        t0, t1 = i0 / self.sfreq, i1 / self.sfreq
        out = self.copy()
        out.data = np.ascontiguousarray(self.data[:, i0:i1])
        if self.start_time is not None:
            out.start_time = self.start_time + _dt.timedelta(seconds=t0)
        anns = []
        for a in self.annotations:
            a0, a1 = a.onset_s, a.onset_s + a.duration_s
            if a1 < tmin_s or a0 > tmax_s:
                continue
            n0, n1 = max(a0, tmin_s) - tmin_s, min(a1, tmax_s) - tmin_s
            anns.append(Annotation(n0, max(0.0, n1 - n0), a.description))
        out.annotations = anns
        gaps = []
        for g0, dur in self.gaps:
            lo, hi = max(g0, t0), min(g0 + dur, t1)
            if hi - lo > 1e-9:
                gaps.append((lo - t0, hi - lo))
        out.gaps = gaps
        return out

    def resample(self, sfreq: float) -> "Recording":
        """New Recording at ``sfreq`` Hz (polyphase, anti-aliased); gaps keep their times in seconds."""
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
        """JSON-ready description: channels with types and units, rate, duration, gaps, annotations, warnings."""
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
            "gaps": [{"onset_s": round(o, 6), "duration_s": round(d, 6)} for o, d in self.gaps],
            "annotations": [
                {"onset_s": a.onset_s, "duration_s": a.duration_s, "description": a.description}
                for a in self.annotations
            ],
            "warnings": list(self.warnings),
        }
