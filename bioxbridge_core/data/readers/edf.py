"""EDF/EDF+ and BDF/BDF+: our header and time-stamp parsing, MNE for the samples.

Samples come back in each channel's *own physical dimension as written in the
header* (EEG in ``uV``, ECG in ``mV``), not MNE's volts; units are normalised
(``µV`` -> ``uV``).

What we parse ourselves, and why (MNE 1.13 gets these wrong or hides them):

- **Record time stamps (EDF+/BDF+).** Every data record starts with a
  time-keeping TAL giving its onset. MNE reads EDF+D (discontinuous) files as if
  continuous, which shifts every sample after a jump and crops annotations
  that fall after it. We place each record at its own onset: the samples
  between records are NaN and listed in ``Recording.gaps``, so sample ``i`` is
  always ``i / sfreq`` seconds after the first sample, and annotations (read
  from the TALs, onsets relative to the first record) land on the right
  samples. A record onset off the sample grid is rounded to the nearest sample
  and a warning says by how much.
- **Sub-second start.** The first record's onset (``+0.25``) is part of the
  start time; MNE leaves it out of ``meas_date``.
- **Header sanity.** MNE quietly replaces a zero physical or digital range by 1
  (a plausible-looking but meaningless signal). We flag the channel with the
  header field named; reading it raises RecordingError.
- **Header text.** EDF headers are ASCII. A label or dimension in UTF-8 (``µV``
  written as two bytes) or Latin-1 is decoded and flagged in the channel's
  ``flags`` and the recording's ``warnings``.
- **Mixed rates.** MNE upsamples every signal to the fastest rate; we read only
  the requested channels (``include``), which must share one rate.

The header date/time is a clock reading without a zone: ``start_time`` is naive.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import RecordingError
from ..recording import MAX_GAP_FILL_SAMPLES, Annotation, Recording, infer_ch_type
from ..units import normalise_unit
from ._header import ChannelInfo, RecordingHeader, channel_flags

log = logging.getLogger(__name__)

_BLOCK = 256
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: a record onset further than this fraction of a sample from the sample grid is reported
GRID_WARN_FRACTION = 0.01
_TAL = re.compile(rb"([+-]\d+(?:[.,]\d*)?)(?:\x15(\d+(?:[.,]\d*)?))?\x14(.*)\x14", re.DOTALL)


@dataclass
class _Signal:
    raw_label: bytes
    label: str
    unit: str
    pmin: float
    pmax: float
    dmin: float
    dmax: float
    spr: int
    problems: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    annotation: bool = False


@dataclass
class _Edf:
    path: Path
    bdf: bool
    plus: str  # '', 'C' or 'D'
    header_bytes: int
    n_records: int
    record_s: float
    signals: list[_Signal]
    start: _dt.datetime | None
    warnings: list[str]

    @property
    def kind(self) -> str:
        return ("BDF" if self.bdf else "EDF") + (f"+{self.plus}" if self.plus else "")

    @property
    def sample_bytes(self) -> int:
        return 3 if self.bdf else 2

    @property
    def record_bytes(self) -> int:
        return sum(s.spr for s in self.signals) * self.sample_bytes


def _decode(raw: bytes, what: str, notes: list[str]) -> str:
    """Header text: ASCII as the standard says; else UTF-8, else Latin-1, with a note naming the field."""
    raw = raw.split(b"\x00")[0].strip()
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
        notes.append(f"{what} {text!r} is not ASCII (read as UTF-8)")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        notes.append(f"{what} {text!r} is not ASCII (read as Latin-1)")
    return text


def _number(raw: bytes) -> float | None:
    text = raw.decode("latin-1").split("\x00")[0].strip().replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None


def _start(head: bytes, recording_id: str, notes: list[str]) -> _dt.datetime | None:
    date, clock = head[168:176].decode("latin-1"), head[176:184].decode("latin-1")
    m_d = re.fullmatch(r"\s*(\d{1,2})[.\-/:](\d{1,2})[.\-/:](\d{2})\s*", date)
    m_t = re.fullmatch(r"\s*(\d{1,2})[.:](\d{1,2})[.:](\d{1,2})\s*", clock)
    if not (m_d and m_t):
        notes.append(f"start date/time fields {date!r} {clock!r} are not dd.mm.yy hh.mm.ss: start time unknown")
        return None
    day, month, yy = (int(g) for g in m_d.groups())
    year = 1900 + yy if yy >= 85 else 2000 + yy  # EDF's 1985-2084 rule
    m_plus = re.match(r"Startdate (\d{2})-([A-Z]{3})-(\d{4})", recording_id)
    if m_plus and m_plus.group(2) in _MONTHS:  # EDF+ gives the 4-digit year here
        year = int(m_plus.group(3))
    try:
        return _dt.datetime(year, month, day, *(int(g) for g in m_t.groups()))
    except ValueError:
        notes.append(f"start date/time {date.strip()} {clock.strip()} is not a valid date: start time unknown")
        return None


def _parse(path: Path) -> _Edf:
    """Parse and check the whole header; refuse files that cannot be EDF/BDF with one clear line."""
    size = path.stat().st_size
    if size == 0:
        raise RecordingError(f"{path}: the file is empty (0 bytes).")
    with open(path, "rb") as fh:
        head = fh.read(_BLOCK)
    if len(head) < _BLOCK:
        raise RecordingError(
            f"{path}: only {size} bytes, shorter than an EDF/BDF header ({_BLOCK} bytes); "
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
        record_s = float(head[244:252].decode("ascii").strip().replace(",", "."))
        n_signals = int(head[252:256].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise RecordingError(f"{path}: the EDF/BDF header is corrupt (unreadable record or signal counts).") from None
    if n_signals <= 0 or header_bytes != _BLOCK * (n_signals + 1):
        raise RecordingError(
            f"{path}: the EDF/BDF header is corrupt ({n_signals} signals but a {header_bytes}-byte header)."
        )
    if size < header_bytes:
        raise RecordingError(f"{path}: the file is truncated inside its header ({size} of {header_bytes} bytes).")
    if not np.isfinite(record_s) or record_s < 0:
        raise RecordingError(f"{path}: the header's record duration {record_s!r} s is impossible.")
    notes: list[str] = []
    reserved = head[192:236].decode("latin-1").strip()
    plus = ""
    if reserved.startswith(("EDF+", "BDF+")):
        plus = reserved[4:5] if reserved[4:5] in ("C", "D") else "C"
    recording_id = head[88:168].decode("latin-1")
    start = _start(head, recording_id, notes)
    with open(path, "rb") as fh:
        fh.seek(_BLOCK)
        sig = fh.read(_BLOCK * n_signals)

    def field_(offset: int, width: int) -> list[bytes]:
        base = offset * n_signals
        return [sig[base + width * i: base + width * (i + 1)] for i in range(n_signals)]

    # Signal header fields, each n_signals wide: label 16, transducer 80, dimension 8, phys min/max,
    # dig min/max 8 each, prefiltering 80, samples per record 8, reserved 32.
    labels, dims = field_(0, 16), field_(96, 8)
    pmins, pmaxs, dmins, dmaxs = field_(104, 8), field_(112, 8), field_(120, 8), field_(128, 8)
    try:
        sprs = [int(v.decode("ascii").strip()) for v in field_(216, 8)]
    except (UnicodeDecodeError, ValueError):
        raise RecordingError(f"{path}: the EDF/BDF signal headers are corrupt (samples per record).") from None
    if any(s <= 0 for s in sprs):
        raise RecordingError(f"{path}: the EDF/BDF signal headers are corrupt (a signal has {min(sprs)} samples "
                             "per record).")
    lo, hi = (-(2 ** 23), 2 ** 23 - 1) if is_bdf else (-(2 ** 15), 2 ** 15 - 1)
    signals = []
    for i in range(n_signals):
        flags: list[str] = []
        label = _decode(labels[i], "label", flags) or f"signal {i + 1}"
        unit_text = _decode(dims[i], f"physical dimension of '{label}'", flags)
        annotation = label in ("EDF Annotations", "BDF Annotations")
        vals = [_number(b) for b in (pmins[i], pmaxs[i], dmins[i], dmaxs[i])]
        problems: list[str] = []
        for v, fname, raw in zip(vals, ("physical minimum", "physical maximum", "digital minimum",
                                        "digital maximum"), (pmins[i], pmaxs[i], dmins[i], dmaxs[i])):
            if v is None or not np.isfinite(v):
                problems.append(f"its {fname} field {raw.decode('latin-1').strip()!r} is not a number")
        pmin, pmax, dmin, dmax = (np.nan if v is None else v for v in vals)
        if not problems and not annotation:
            if pmin == pmax:
                problems.append(f"physical minimum equals physical maximum ({pmin:g}) in the header, so the "
                                "samples have no scale")
            if dmin >= dmax:
                problems.append(f"digital minimum ({dmin:g}) is not below digital maximum ({dmax:g}) in the "
                                "header, so the samples have no scale")
            elif dmin < lo or dmax > hi:
                problems.append(f"digital range {dmin:g}..{dmax:g} in the header is outside what "
                                f"{'24-bit BDF' if is_bdf else '16-bit EDF'} samples can hold ({lo}..{hi})")
        signals.append(_Signal(labels[i], label, normalise_unit(unit_text), pmin, pmax, dmin, dmax, sprs[i],
                               problems, flags, annotation))
    edf = _Edf(path, is_bdf, plus, header_bytes, n_records, record_s, signals, start, notes)
    data_bytes = size - header_bytes
    if n_records < 0:  # -1: still recording when the header was written
        edf.n_records = data_bytes // edf.record_bytes
        notes.append(f"the header gives {n_records} data records; {edf.n_records} found in the file")
    if edf.n_records == 0 or data_bytes == 0:
        raise RecordingError(f"{path}: the EDF/BDF file holds no data records (header only).")
    expected = header_bytes + edf.n_records * edf.record_bytes
    if size > expected:
        notes.append(f"{size - expected} bytes after the last of the {edf.n_records} data records were ignored")
    if size < expected:
        have = data_bytes / max(1, edf.record_bytes)
        raise RecordingError(
            f"{path}: the file is truncated: the header announces {edf.n_records} data records "
            f"({expected} bytes) but the file has {size} bytes (about {have:.1f} records)."
        )
    return edf


# -- EDF+ time-keeping and annotations ------------------------------------------------------------
def _annotation_bytes(edf: _Edf) -> list[bytes]:
    """Per data record, the bytes of its annotation signals (in file order), concatenated."""
    offsets, pos = [], 0
    for s in edf.signals:
        nbytes = s.spr * edf.sample_bytes
        if s.annotation:
            offsets.append((pos, pos + nbytes))
        pos += nbytes
    if not offsets:
        return []
    block = np.memmap(edf.path, dtype=np.uint8, mode="r", offset=edf.header_bytes,
                      shape=(edf.n_records, edf.record_bytes))
    out = [b"".join(bytes(block[k, a:b]) for a, b in offsets) for k in range(edf.n_records)]
    del block
    return out


def _tal_text(raw: bytes, notes: list[str]) -> str:
    try:
        return raw.decode("utf-8")  # EDF+ annotations are UTF-8
    except UnicodeDecodeError:
        if not any("annotation text" in n for n in notes):
            notes.append("annotation text is not UTF-8 (read as Latin-1)")
        return raw.decode("latin-1")


def _record_times(edf: _Edf) -> tuple[np.ndarray | None, list[tuple[float, float, str]]]:
    """Onset of each record from its time-keeping TAL (seconds after the header start), and the annotations."""
    per_record = _annotation_bytes(edf)
    if not per_record:
        return None, []
    onsets = np.full(edf.n_records, np.nan)
    anns: list[tuple[float, float, str]] = []
    bad_tals = 0
    for k, chunk in enumerate(per_record):
        # TALs are separated by a 0 byte; a BDF+ annotation signal is just these bytes, 3 per 'sample'.
        pieces = [p for p in chunk.split(b"\x00") if p]
        for j, piece in enumerate(pieces):
            m = _TAL.fullmatch(piece)
            if m is None:
                bad_tals += 1
                continue
            onset = float(m.group(1).replace(b",", b"."))
            texts = [_tal_text(t, edf.warnings).strip() for t in m.group(3).split(b"\x14")]
            if j == 0 and not any(texts):
                onsets[k] = onset  # the record's time-keeping TAL
                continue
            if j == 0 and np.isnan(onsets[k]):
                onsets[k] = onset
            dur = float(m.group(2).replace(b",", b".")) if m.group(2) else 0.0
            anns.extend((onset, dur, t) for t in texts if t)
    if bad_tals:
        edf.warnings.append(f"{bad_tals} annotation entr{'y' if bad_tals == 1 else 'ies'} (TAL) could not be "
                            "read and were left out")
    if np.isnan(onsets).any():
        k = int(np.argmax(np.isnan(onsets)))
        raise RecordingError(
            f"{edf.path}: {edf.kind} data record {k + 1} has no time-keeping annotation (its onset); "
            "the time of its samples is unknown.")
    return onsets, anns


@dataclass
class _Timing:
    start: _dt.datetime | None
    offsets_s: np.ndarray  # per record, seconds after the first record
    gaps: list[tuple[float, float]]
    duration_s: float
    annotations: list[Annotation]


def _timing(edf: _Edf) -> _Timing:
    n, rs = edf.n_records, edf.record_s
    regular = np.arange(n) * rs
    if not edf.plus:
        return _Timing(edf.start, regular, [], n * rs, [])
    onsets, raw_anns = _record_times(edf)
    if onsets is None:
        edf.warnings.append(f"{edf.kind} file without an annotation signal: records taken as contiguous")
        return _Timing(edf.start, regular, [], n * rs, [])
    first = float(onsets[0])
    offsets = onsets - first
    steps = np.diff(offsets)
    tol = 1e-6 + 1e-9 * max(1.0, float(np.abs(offsets).max()))
    if rs > 0 and (steps < rs - tol).any():
        k = int(np.argmax(steps < rs - tol))
        what = "before the previous one ends" if steps[k] > 0 else "not after the previous one"
        raise RecordingError(
            f"{edf.path}: {edf.kind} data record {k + 2} starts at {onsets[k + 1]:g} s, {what} "
            f"(record {k + 1} starts at {onsets[k]:g} s and lasts {rs:g} s); the record time stamps are corrupt.")
    gaps = []
    for k in np.flatnonzero(steps > rs + tol):
        gaps.append((float(offsets[k] + rs), float(steps[k] - rs)))
    if gaps and edf.plus == "C":
        edf.warnings.append(f"the header says EDF+C (continuous) but the record time stamps jump {len(gaps)} "
                            "time(s); the time stamps are followed")
    start = edf.start + _dt.timedelta(seconds=first) if edf.start is not None else None
    anns = [Annotation(max(0.0, o - first) if o - first > -1e-9 else o - first, d, t) for o, d, t in raw_anns]
    early = [a for a in anns if a.onset_s < 0]
    if early:
        edf.warnings.append(f"{len(early)} annotation(s) before the first sample were left out")
        anns = [a for a in anns if a.onset_s >= 0]
    return _Timing(start, offsets, gaps, float(offsets[-1] + rs), sorted(anns, key=lambda a: a.onset_s))


# -- public entry points --------------------------------------------------------------------------
def _channel_infos(edf: _Edf) -> list[ChannelInfo]:
    out = []
    rs = edf.record_s
    for s in edf.signals:
        if s.annotation:
            continue
        sfreq = s.spr / rs if rs > 0 else float("nan")
        problems = list(s.problems)
        if not rs > 0:
            problems.append("the header's record duration is 0 s, so the sampling rate is unknown")
        out.append(ChannelInfo(name=s.label, sfreq=float(sfreq), unit=s.unit, type=infer_ch_type(s.label),
                               n_samples=s.spr * edf.n_records, problems=problems,
                               flags=channel_flags(s.label) + s.flags))
    return out


def _unique_labels(edf: _Edf) -> None:
    """Make repeated labels unique as MNE does ('X-0', 'X-1'), so names map one to one."""
    labels = [s.label for s in edf.signals if not s.annotation]
    for s in edf.signals:
        if not s.annotation and labels.count(s.label) > 1:
            same = [x for x in edf.signals if x.label == s.label and not x.annotation]
            for j, x in enumerate(same):
                x.flags.append(f"label '{x.label}' appears {len(same)} times; renamed '{x.label}-{j}'")
                x.label = f"{x.label}-{j}"


def read_edf_header(path: Path) -> RecordingHeader:
    """Channels (each with its own rate, unit, type, flags), start time and gaps, without the samples."""
    edf = _parse(path)
    _unique_labels(edf)
    timing = _timing(edf)
    chans = _channel_infos(edf)
    if not chans:
        raise RecordingError(f"{path}: the {edf.kind} file holds only annotations, no signal.")
    notes = list(edf.warnings) + [f"channel '{c.name}': {f}" for c in chans for f in c.flags
                                  if f != "bipolar derivation"]
    return RecordingHeader(source=str(path), format=edf.kind, channels=chans, start_time=timing.start,
                           duration_s=timing.duration_s, gaps=timing.gaps, warnings=notes)


def read_edf(path: Path, channels: list[str] | None = None) -> Recording:
    """Read the named channels (all when None; they must share one rate -- see ``resolve_channels``)."""
    import mne

    edf = _parse(path)
    _unique_labels(edf)
    unreadable = [(s, p) for s in edf.signals for p in s.problems if "is not a number" in p]
    if unreadable:  # MNE parses every signal's fields and stops at the first that is not a number
        s, p = unreadable[0]
        raise RecordingError(f"{path}: channel '{s.label}': {p}; the file cannot be decoded with such a header "
                             "field (fix the header).")
    timing = _timing(edf)
    sigs = [s for s in edf.signals if not s.annotation]
    if channels is not None:
        by_name = {s.label: s for s in sigs}
        sigs = [by_name[c] for c in channels]
    rates = {s.spr for s in sigs}
    if len(rates) != 1:  # resolve_channels refuses this before we get here
        raise RecordingError(f"{path}: the chosen channels have different sampling rates.")
    spr = rates.pop()
    sfreq = spr / edf.record_s
    # MNE names channels by the Latin-1 text of the label, made unique; map ours to theirs by position.
    all_sigs = [s for s in edf.signals if not s.annotation]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probe = (mne.io.read_raw_bdf if edf.bdf else mne.io.read_raw_edf)(str(path), preload=False,
                                                                           verbose="error")
        mne_names = list(probe.ch_names)
        if len(mne_names) != len(all_sigs):
            raise RecordingError(f"{path}: MNE sees {len(mne_names)} signals where the header lists "
                                 f"{len(all_sigs)}.")
        include = [mne_names[all_sigs.index(s)] for s in sigs]
        reader = mne.io.read_raw_bdf if edf.bdf else mne.io.read_raw_edf
        # encoding='latin1': MNE's own TAL parse (which we replace) must not fail on a non-UTF-8 byte
        raw = reader(str(path), preload=True, verbose="warning", include=include, encoding="latin1")
    notes = list(edf.warnings)
    for w in caught:
        if issubclass(w.category, (DeprecationWarning, FutureWarning)):
            continue
        text = " ".join(str(w.message).split())
        if "annotation" in text.lower() and edf.plus:
            continue  # MNE's view of the TALs; ours replace them (see the module docstring)
        notes.append(f"MNE: {text}")
    order = [raw.ch_names.index(m) for m in include]
    data = raw.get_data()[order]  # volts for voltage channels
    extras = raw._raw_extras[0]
    scales = np.ones(len(raw.ch_names))
    if "units" in extras:  # MNE's per-channel factor from the file's dimension to SI
        scales = np.asarray(extras["units"], dtype=float)
        if hasattr(raw, "_read_picks"):
            scales = scales[raw._read_picks[0]]
    scales = np.where(np.isfinite(scales) & (scales != 0), scales, 1.0)[order]
    data = data / scales[:, None]
    if data.shape[1] != edf.n_records * spr:
        raise RecordingError(f"{path}: read {data.shape[1]} samples per channel where the header announces "
                             f"{edf.n_records * spr}.")
    data, grid_note = _place_records(data, timing.offsets_s, spr, sfreq, edf)
    if grid_note:
        notes.append(grid_note)
    for s in sigs:
        notes.extend(f"channel '{s.label}': {f}" for f in s.flags)
    return Recording(
        data=data,
        sfreq=float(sfreq),
        ch_names=[s.label for s in sigs],
        units=[s.unit for s in sigs],
        start_time=timing.start,
        annotations=timing.annotations,
        source=str(path),
        gaps=timing.gaps,
        warnings=notes,
    )


def _place_records(data: np.ndarray, offsets_s: np.ndarray, spr: int, sfreq: float,
                   edf: _Edf) -> tuple[np.ndarray, str | None]:
    """Put each record's samples at its own onset; NaN in between (contiguous records: unchanged)."""
    n_rec = len(offsets_s)
    pos = offsets_s * sfreq
    idx = np.round(pos).astype(np.int64)
    contiguous = np.array_equal(idx, np.arange(n_rec) * spr)
    shift = np.abs(pos - idx)
    note = None
    if shift.max() > GRID_WARN_FRACTION:
        k = int(np.argmax(shift))
        note = (f"{edf.kind} record {k + 1} starts {shift[k] / sfreq * 1e3:.3g} ms off the sample grid of the "
                f"first record; its samples were placed on the nearest sample")
    if contiguous:
        return data.astype(np.float32), note
    total = int(idx[-1] + spr)
    if total * data.shape[0] > MAX_GAP_FILL_SAMPLES:
        raise RecordingError(
            f"{edf.path}: the {edf.kind} record time stamps span {total / sfreq:.6g} s "
            f"({total} samples per channel for {data.shape[0]} channel(s)); filling the gaps with NaN would need "
            f"{total * data.shape[0] * 4 / 2 ** 30:.1f} GiB. Read fewer channels or split the file.")
    out = np.full((data.shape[0], total), np.nan, dtype=np.float32)
    for k in range(n_rec):
        out[:, idx[k]: idx[k] + spr] = data[:, k * spr:(k + 1) * spr]
    return out, note
