"""WFDB records (``.hea`` + ``.dat``/``.mat``) through the ``wfdb`` package.

Samples are in physical units from the header (``mV`` for ECG, ``NU`` for
PLETH...); invalid samples become NaN. Each signal has its own rate, the frame
rate times its samples per frame: signals are read with
``wfdb.rdrecord(..., smooth_frames=False)`` so a 250 Hz ECG stored at 250
samples per 1 Hz frame stays 250 Hz -- never averaged to one value per frame
(wfdb's default) -- and only the requested signals are read, which must share a
rate (``resolve_channels`` says so first). Multi-segment records (fixed or
variable layout) are read segment by segment and laid end to end on the frame
clock: null segments (``~``) and segments holding none of the requested signals
are NaN and listed in ``Recording.gaps``; a signal missing from some segments
of a variable layout is NaN there. ``base_date`` + ``base_time`` (with its
fraction of a second) give a naive ``start_time``. Annotation files beside the record
(``<record>.atr``, ``.ann``, ``.qrs``...) are read with ``wfdb.rdann``: each
annotation becomes a zero-length :class:`Annotation` described by its aux note
or, failing that, its symbol. Header comments (e.g. a CinC alarm verdict) are
not labels and are only logged at debug level.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import RecordingError
from ..recording import MAX_GAP_FILL_SAMPLES, Annotation, Recording, infer_ch_type
from ..units import normalise_unit
from ._common import import_wfdb, quiet_library_warnings
from ._header import ChannelInfo, RecordingHeader, channel_flags

log = logging.getLogger(__name__)

#: Extensions tried as WFDB annotation files next to a record.
ANNOTATION_EXTENSIONS = ("atr", "ann", "qrs", "ecg", "apn", "st", "pu", "pu0", "pu1", "alarm")


#: Bytes per sample of the common WFDB storage formats (for the truncation check).
_BYTES_PER_SAMPLE = {"8": 1, "16": 2, "61": 2, "80": 1, "160": 2, "212": 1.5, "310": 4 / 3, "311": 4 / 3,
                     "24": 3, "32": 4}


def _header_path(path: Path) -> Path:
    hea = path if path.suffix.lower() == ".hea" else path.with_suffix(".hea")
    if not hea.exists() and hea.with_suffix(".HEA").exists():
        hea = hea.with_suffix(".HEA")
    return hea


def _check_header(hea: Path) -> list[str]:
    """Validate the header text and that its data files exist; return the data file names."""
    if hea.stat().st_size == 0:
        raise RecordingError(f"{hea}: the WFDB header is empty (0 bytes).")
    raw = hea.read_bytes()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise RecordingError(f"{hea}: not a WFDB header (it is not plain text).") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise RecordingError(f"{hea}: the WFDB header has no record line.")
    first = lines[0].split()
    if len(first) < 2 or not re.fullmatch(r"\d+", first[1]):
        raise RecordingError(
            f"{hea}: not a WFDB header (the first line should read '<record> <n_signals> [<fs> <n_samples>]', "
            f"got {lines[0][:60]!r})."
        )
    n_sig = int(first[1])
    if "/" in first[0]:  # a multi-segment master header: '<record>/<n_segments> <n_signals> <fs> <n>'
        n_seg = first[0].split("/", 1)[1]
        if not n_seg.isdigit() or len(lines) - 1 < int(n_seg):
            raise RecordingError(f"{hea}: the multi-segment header announces {n_seg} segments but lists "
                                 f"{len(lines) - 1}.")
        return []  # each segment header is checked when its segment is read
    if n_sig == 0:
        raise RecordingError(f"{hea}: the WFDB header declares no signals.")
    sig_lines = lines[1: 1 + n_sig]
    if len(sig_lines) < n_sig:
        raise RecordingError(f"{hea}: the header declares {n_sig} signals but describes only {len(sig_lines)}.")
    n_samples = int(first[3]) if len(first) > 3 and re.fullmatch(r"\d+", first[3]) else None
    files: list[str] = []
    need: dict[str, float] = {}  # bytes each data file must hold, when the format is known
    for ln in sig_lines:
        parts = ln.split()
        fname = parts[0]
        if fname not in files:
            files.append(fname)
        m = re.match(r"(\d+)(?:x\d+)?(?::\d+)?(?:\+(\d+))?", parts[1]) if len(parts) > 1 else None
        if m and m.group(1) in _BYTES_PER_SAMPLE and n_samples is not None:
            need[fname] = need.get(fname, float(m.group(2) or 0)) + n_samples * _BYTES_PER_SAMPLE[m.group(1)]
    for fname in files:
        if fname in ("-", "~"):  # no data file: a layout segment ('~') or a signal given elsewhere
            continue
        data_file = hea.parent / fname
        if not data_file.exists():
            raise RecordingError(
                f"{hea}: the WFDB header refers to the data file '{fname}', which is missing "
                f"(expected at {data_file}). Upload or copy it next to the header."
            )
        size = data_file.stat().st_size
        if size == 0:
            raise RecordingError(f"{data_file}: the WFDB data file of {hea.name} is empty (0 bytes).")
        if fname in need and size < int(need[fname]):
            raise RecordingError(
                f"{data_file}: the WFDB data file is truncated: the header {hea.name} announces "
                f"{n_samples} samples per signal ({int(need[fname])} bytes) but the file has {size} bytes."
            )
    return files


def _read_annotations(base: Path, fs: float) -> list[Annotation]:
    wfdb = import_wfdb()

    anns: list[Annotation] = []
    for ext in ANNOTATION_EXTENSIONS:
        f = base.with_name(f"{base.name}.{ext}")
        if not f.exists():
            continue
        try:
            with quiet_library_warnings():
                ann = wfdb.rdann(str(base), ext, return_label_elements=["symbol"])
        except Exception as exc:  # an unreadable annotation file must not hide the signals
            raise RecordingError(f"{f}: cannot read this WFDB annotation file ({type(exc).__name__}: {exc}).") from exc
        rate = float(ann.fs) if ann.fs else fs
        symbols = ann.symbol or [""] * len(ann.sample)
        notes = ann.aux_note or [""] * len(ann.sample)
        for samp, sym, note in zip(ann.sample, symbols, notes):
            desc = (note or "").strip("\x00 ").strip() or (sym or "").strip()
            anns.append(Annotation(float(samp) / rate, 0.0, desc))
    anns.sort(key=lambda a: a.onset_s)
    return anns


def _channel_rates(hdr) -> list[float]:
    spf = hdr.samps_per_frame or [1] * hdr.n_sig
    return [float(hdr.fs) * int(k or 1) for k in spf]


def _start_time(hdr, notes: list[str]) -> _dt.datetime | None:
    if hdr.base_time is not None and hdr.base_date is not None:
        return _dt.datetime.combine(hdr.base_date, hdr.base_time)  # keeps microseconds
    if hdr.base_time is not None:
        notes.append(f"the header gives a base time ({hdr.base_time}) but no date: start time unknown")
    return None


def _unique(names: list[str]) -> tuple[list[str], list[str]]:
    """Repeated signal names made unique ('ECG-0', 'ECG-1'), with a note for each."""
    out, notes = [], []
    for i, n in enumerate(names):
        if names.count(n) > 1:
            j = names[:i].count(n)
            out.append(f"{n}-{j}")
            notes.append(f"signal name '{n}' appears {names.count(n)} times; signal {i + 1} renamed '{n}-{j}'")
        else:
            out.append(n)
    return out, notes


@dataclass
class _Segment:
    name: str  # '~' for a null segment (a gap)
    n_frames: int
    sig_name: list[str]


@dataclass
class _Layout:
    """A WFDB record as signals and segments (one segment for a plain record)."""

    hea: Path
    fs: float
    names: list[str]  # unique names
    raw_names: list[str]
    rates: list[float]
    units: list[str]
    n_frames: int
    segments: list[_Segment]
    multi: bool
    start: _dt.datetime | None
    notes: list[str]

    def frame_starts(self) -> list[int]:
        starts, pos = [], 0
        for seg in self.segments:
            starts.append(pos)
            pos += seg.n_frames
        return starts


def _layout(hea: Path) -> _Layout:
    wfdb = import_wfdb()

    base = hea.with_suffix("")
    with quiet_library_warnings():
        hdr = wfdb.rdheader(str(base))
    notes: list[str] = []
    if hdr.fs is None or not np.isfinite(float(hdr.fs)) or float(hdr.fs) <= 0:
        raise RecordingError(f"{hea}: the WFDB header gives no usable sampling rate ({hdr.fs!r}).")
    fs = float(hdr.fs)
    start = _start_time(hdr, notes)
    if not getattr(hdr, "seg_name", None):  # a plain (single-segment) record
        if not hdr.sig_name:
            raise RecordingError(f"{hea}: the WFDB header declares no signals.")
        names, dup = _unique(list(hdr.sig_name))
        notes += dup
        n_frames = int(hdr.sig_len or 0)
        seg = _Segment(base.name, n_frames, list(names))
        return _Layout(hea, fs, names, list(hdr.sig_name), _channel_rates(hdr),
                       [normalise_unit(u) for u in (hdr.units or [""] * hdr.n_sig)], n_frames, [seg], False,
                       start, notes)
    # multi-segment: read each segment header (fixed layout: all alike; variable: the first, of
    # length 0, is the layout segment naming every signal)
    segs: list[_Segment] = []
    layout_hdr = None
    for name, length in zip(hdr.seg_name, hdr.seg_len):
        if name == "~":
            segs.append(_Segment("~", int(length), []))
            continue
        seg_hea = hea.parent / f"{name}.hea"
        if not seg_hea.exists():
            raise RecordingError(f"{hea}: the multi-segment record refers to segment '{name}', whose header "
                                 f"{name}.hea is missing. Upload or copy it next to the master header.")
        _check_header(seg_hea)
        with quiet_library_warnings():
            sh = wfdb.rdheader(str(seg_hea.with_suffix("")))
        if sh.fs is not None and abs(float(sh.fs) - fs) > 1e-9 * fs:
            raise RecordingError(f"{seg_hea}: segment '{name}' is sampled at {sh.fs:g} Hz but the record "
                                 f"{hea.name} at {fs:g} Hz.")
        if layout_hdr is None:
            layout_hdr = sh
        if int(length) == 0:
            continue  # the layout segment of a variable-layout record
        segs.append(_Segment(name, int(length), list(sh.sig_name or [])))
    if layout_hdr is None or not layout_hdr.sig_name:
        raise RecordingError(f"{hea}: the multi-segment record has no segment describing its signals.")
    if len(set(layout_hdr.sig_name)) != len(layout_hdr.sig_name):
        raise RecordingError(f"{hea}: signal names repeat in the multi-segment layout ({layout_hdr.sig_name}).")
    rates = _channel_rates(layout_hdr)
    units = [normalise_unit(u) for u in (layout_hdr.units or [""] * layout_hdr.n_sig)]
    names = list(layout_hdr.sig_name)
    n_frames = sum(s.n_frames for s in segs)
    return _Layout(hea, fs, names, names, rates, units, n_frames, segs, True, start, notes)


def _gaps(lay: _Layout, wanted: list[str]) -> list[tuple[float, float]]:
    """Spans of segments holding none of ``wanted`` (null segments included), in seconds."""
    raw = {n: r for n, r in zip(lay.names, lay.raw_names)}
    gaps: list[tuple[float, float]] = []
    for seg, f0 in zip(lay.segments, lay.frame_starts()):
        missing = not any(raw[w] in seg.sig_name for w in wanted)
        if missing and seg.n_frames > 0:
            onset, dur = f0 / lay.fs, seg.n_frames / lay.fs
            if gaps and abs(gaps[-1][0] + gaps[-1][1] - onset) < 1e-9:
                gaps[-1] = (gaps[-1][0], gaps[-1][1] + dur)
            else:
                gaps.append((onset, dur))
    return gaps


def read_wfdb_header(path: Path) -> RecordingHeader:
    """Signals with their own rates (frame rate x samples per frame), units, start time and gaps."""
    hea = _header_path(path)
    if not hea.exists():
        raise RecordingError(f"{path}: no WFDB header '{path.with_suffix('.hea').name}' beside it.")
    _check_header(hea)
    lay = _layout(hea)
    chans = []
    for name, rate, unit in zip(lay.names, lay.rates, lay.units):
        per_frame = int(round(rate / lay.fs))
        flags = channel_flags(name)
        if per_frame > 1:
            flags.append(f"{per_frame} samples per frame (frame rate {lay.fs:g} Hz)")
        chans.append(ChannelInfo(name=name, sfreq=rate, unit=unit, type=infer_ch_type(name),
                                 n_samples=lay.n_frames * per_frame, flags=flags))
    gaps = _gaps(lay, lay.names) if lay.multi else []
    return RecordingHeader(source=str(hea), format="WFDB multi-segment" if lay.multi else "WFDB",
                           channels=chans, start_time=lay.start, duration_s=lay.n_frames / lay.fs, gaps=gaps,
                           warnings=list(lay.notes))


def read_wfdb(path: Path, channels: list[str] | None = None) -> Recording:
    """Read the WFDB record whose header is ``path`` (or sits next to it): ``channels`` (all when None).

    The chosen signals must share one rate (``resolve_channels`` checks this first). Several
    samples per frame are read as they are (``smooth_frames=False``), never averaged.
    """
    wfdb = import_wfdb()

    hea = _header_path(path)
    if not hea.exists():
        raise RecordingError(f"{path}: no WFDB header '{path.with_suffix('.hea').name}' beside it.")
    _check_header(hea)
    lay = _layout(hea)
    wanted = list(lay.names) if channels is None else list(channels)
    idx = [lay.names.index(w) for w in wanted]
    rates = {lay.rates[i] for i in idx}
    if len(rates) != 1:
        raise RecordingError(f"{hea}: the chosen signals have different sampling rates.")
    rate = rates.pop()
    spf = int(round(rate / lay.fs))
    total = lay.n_frames * spf
    if total == 0:
        raise RecordingError(f"{hea}: the WFDB record holds no samples.")
    if total * len(idx) > MAX_GAP_FILL_SAMPLES:
        raise RecordingError(f"{hea}: the record spans {lay.n_frames / lay.fs:.6g} s ({total} samples per signal);"
                             f" holding {len(idx)} signal(s) would need {total * len(idx) * 4 / 2 ** 30:.1f} GiB. "
                             "Read fewer signals.")
    data = np.full((len(idx), total), np.nan, dtype=np.float32)
    for seg, f0 in zip(lay.segments, lay.frame_starts()):
        if seg.name == "~" or seg.n_frames == 0:
            continue
        raw_wanted = [lay.raw_names[i] for i in idx]
        if lay.multi:
            present = [(k, seg.sig_name.index(n)) for k, n in enumerate(raw_wanted) if n in seg.sig_name]
            if not present:
                continue
            seg_base = hea.parent / seg.name
        else:
            present = list(enumerate(idx))
            seg_base = hea.with_suffix("")
        with quiet_library_warnings():
            rec = wfdb.rdrecord(str(seg_base), channels=[j for _, j in present], physical=True,
                                smooth_frames=False, return_res=64)
        for (k, _), sig in zip(present, rec.e_p_signal):
            sig = np.asarray(sig, dtype=np.float64)
            n = min(sig.size, seg.n_frames * spf)
            data[k, f0 * spf: f0 * spf + n] = sig[:n]
    notes = list(lay.notes)
    return Recording(
        data=data,
        sfreq=rate,
        ch_names=wanted,
        units=[lay.units[i] for i in idx],
        start_time=lay.start,
        annotations=_read_annotations(hea.with_suffix(""), lay.fs),
        source=str(hea),
        gaps=_gaps(lay, wanted) if lay.multi else [],
        warnings=notes,
    )
