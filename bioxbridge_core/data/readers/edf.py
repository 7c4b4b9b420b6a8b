"""EDF/EDF+ and BDF/BDF+ through MNE.

Samples are returned in each channel's *own physical dimension as stored in
the file header* (e.g. EEG in ``uV``, ECG in ``mV``), not MNE's volts, and
that dimension is recorded in ``Recording.units`` (micro sign written ``u``).
EDF+ annotations become :class:`Annotation`; the header start date/time
becomes ``start_time`` (naive, as written in the file). Signals of different
sampling rates are never upsampled (MNE would): such a file must be read with
``channels=`` naming signals that share one rate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..._check import suggest
from ...errors import RecordingError
from ..recording import Annotation, Recording, infer_ch_type
from ._common import clean_unit, naive_utc

log = logging.getLogger(__name__)

_HEADER_BYTES = 256


@dataclass
class _Header:
    labels: list[str]
    units: list[str]
    samples_per_record: list[int]
    record_s: float

    def rates(self) -> dict[str, float]:
        """Sampling rate per signal label, annotation signals left out."""
        return {lab: n / self.record_s for lab, n in zip(self.labels, self.samples_per_record)
                if not lab.endswith("Annotations") and self.record_s > 0}


def _sniff(path: Path) -> _Header:
    """Reject files that cannot be EDF/BDF before MNE produces a cryptic error; return the header."""
    size = path.stat().st_size
    if size == 0:
        raise RecordingError(f"{path}: the file is empty (0 bytes).")
    with open(path, "rb") as fh:
        head = fh.read(_HEADER_BYTES)
    if len(head) < _HEADER_BYTES:
        raise RecordingError(
            f"{path}: only {size} bytes, shorter than an EDF/BDF header ({_HEADER_BYTES} bytes); "
            "the file is truncated or not EDF."
        )
    version = head[:8]
    is_edf = version.strip(b" \x00") == b"0"
    is_bdf = version[:1] == b"\xff" and version[1:8] == b"BIOSEMI"
    if not (is_edf or is_bdf):
        raise RecordingError(
            f"{path}: not an EDF/BDF file (its first bytes {version[:8]!r} are not an EDF/BDF "
            "header); check the file and its extension."
        )
    try:
        header_bytes = int(head[184:192].decode("ascii").strip())
        n_records = int(head[236:244].decode("ascii").strip())
        record_s = float(head[244:252].decode("ascii").strip())
        n_signals = int(head[252:256].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise RecordingError(f"{path}: the EDF/BDF header is corrupt (unreadable record or signal counts).") from None
    if n_signals <= 0 or header_bytes != _HEADER_BYTES * (n_signals + 1):
        raise RecordingError(
            f"{path}: the EDF/BDF header is corrupt ({n_signals} signals but a {header_bytes}-byte header)."
        )
    if size < header_bytes:
        raise RecordingError(f"{path}: the file is truncated inside its header ({size} of {header_bytes} bytes).")
    if n_records == 0 or size == header_bytes:
        raise RecordingError(f"{path}: the EDF/BDF file holds no data records (header only).")
    with open(path, "rb") as fh:
        fh.seek(_HEADER_BYTES)
        sig = fh.read(_HEADER_BYTES * n_signals)

    def field(offset: int, width: int) -> list[str]:
        base = offset * n_signals
        return [sig[base + width * i: base + width * (i + 1)].decode("latin-1").strip() for i in range(n_signals)]

    # Signal header fields, each n_signals wide: label 16, transducer 80, dimension 8, phys min/max,
    # dig min/max 8 each, prefiltering 80, samples per record 8.
    labels, dims = field(0, 16), field(96, 8)
    try:
        spr = [int(v) for v in field(216, 8)]
    except ValueError:
        raise RecordingError(f"{path}: the EDF/BDF signal headers are corrupt (samples per record).") from None
    if n_records > 0:
        bytes_per_sample = 3 if is_bdf else 2
        expected = header_bytes + n_records * sum(spr) * bytes_per_sample
        if size < expected:
            have = (size - header_bytes) / max(1, sum(spr) * bytes_per_sample)
            raise RecordingError(
                f"{path}: the file is truncated: the header announces {n_records} data records "
                f"({expected} bytes) but the file has {size} bytes (about {have:.1f} records)."
            )
    return _Header(labels, dims, spr, record_s)


def _same_rate_include(path: Path, header: _Header, channels) -> list[str] | None:
    """Labels to read when signals differ in rate (MNE would upsample); None when all share one rate."""
    rates = header.rates()
    if len(set(rates.values())) <= 1:
        return None
    groups: dict[float, list[str]] = {}
    for lab, r in rates.items():
        groups.setdefault(r, []).append(lab)
    listing = "; ".join(f"{r:g} Hz: {', '.join(labs)}" for r, labs in sorted(groups.items(), reverse=True))
    wanted: list[str] = []
    if isinstance(channels, str) and ";" in channels:
        channels = [c.strip() for c in channels.split(";") if c.strip()]
    if isinstance(channels, str):
        wanted = [lab for lab in rates if lab.lower() == channels.lower()] or \
                 [lab for lab in rates if infer_ch_type(lab) == channels]
    elif channels is not None:
        low = {lab.lower(): lab for lab in rates}
        wanted = [low.get(str(c).lower(), str(c)) for c in channels]
    missing = [c for c in wanted if c not in rates]
    if missing:
        avail = ", ".join(repr(c) for c in rates)
        raise RecordingError(
            f"Channel '{missing[0]}' not in {path.name} ({path}). Available: {avail}.{suggest(missing[0], list(rates))}"
        )
    chosen = {rates[c] for c in wanted}
    if wanted and all(c in rates for c in wanted) and len(chosen) == 1:
        return wanted
    raise RecordingError(
        f"{path}: its signals have different sampling rates ({listing}). Readers never resample: "
        "pick channels that share one rate with channels=."
    )


def read_edf(path: Path, channels=None) -> Recording:
    """Read an EDF/BDF file (see the module docstring for units and annotations)."""
    import mne

    header = _sniff(path)
    include = _same_rate_include(path, header, channels)
    reader = mne.io.read_raw_bdf if path.suffix.lower() == ".bdf" else mne.io.read_raw_edf
    raw = reader(str(path), preload=True, verbose="error", **({"include": include} if include else {}))
    if raw.n_times == 0 or len(raw.ch_names) == 0:
        raise RecordingError(f"{path}: the file holds no samples.")
    data = raw.get_data()  # volts for voltage channels
    extras = raw._raw_extras[0]
    orig_units = getattr(raw, "_orig_units", {}) or {}
    scales = np.ones(len(raw.ch_names))
    if "units" in extras:  # MNE's per-channel factor from the file's dimension to SI
        picks = raw._read_picks[0] if hasattr(raw, "_read_picks") else np.arange(len(raw.ch_names))
        scales = np.asarray(extras["units"], dtype=float)[picks]
    scales = np.where(np.isfinite(scales) & (scales != 0), scales, 1.0)
    data = data / scales[:, None]
    header_units = dict(zip(header.labels, header.units))
    units = [clean_unit(header_units.get(ch) or orig_units.get(ch, "")) for ch in raw.ch_names]
    anns = [
        Annotation(float(a["onset"]), float(a["duration"]), str(a["description"]))
        for a in raw.annotations
    ]
    start = raw.info.get("meas_date")
    return Recording(
        data=data.astype(np.float32),
        sfreq=float(raw.info["sfreq"]),
        ch_names=list(raw.ch_names),
        units=units,
        start_time=naive_utc(start),
        annotations=anns,
        source=str(path),
    )
