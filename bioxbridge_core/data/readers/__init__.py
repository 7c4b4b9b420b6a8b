"""Read biosignal files of any supported format into a :class:`Recording`.

``read_recording`` dispatches on the file suffix (case-insensitive):

=================  ==========================================================
``.edf`` ``.bdf``  MNE for samples; our parsing of EDF+/BDF+ record time
                   stamps (gaps, sub-second start), TAL annotations and
                   header sanity (see ``edf``)
``.hea`` (WFDB)    wfdb, physical units, each signal at its own rate;
                   ``.dat``/``.mat`` or an annotation file (``.atr``...)
                   beside a ``.hea`` are accepted too; multi-segment records
``.csv`` ``.tsv``  pandas; separator and decimal mark detected, ``%``/``#``
``.txt``           preamble lines skipped, Empatica E4 and OpenBCI layouts,
                   time columns in s/ms/us, epoch or ISO date-times
``.parquet``       pandas (needs pyarrow or fastparquet)
``.npz``           ``data`` (n_chans, n_times), ``sfreq``, optional
                   ``ch_names``, ``ch_types``, ``units``; never unpickled
=================  ==========================================================

Readers only read: they never resample (except irregular table time stamps,
never silently), filter or window. Channels are picked *before* the signal is
assembled (``read_header`` + ``resolve_channels``), so a file whose channels
have different rates reads fine when the requested channels share one rate.
Any failure in the underlying library becomes a
:class:`~bioxbridge_core.errors.RecordingError` naming the file and the
problem; warnings from the readers and libraries are kept in
``Recording.warnings`` and logged at WARNING level, never muted.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Mapping, Sequence

from ..._check import check_range
from ...errors import BioXError, RecordingError
from ..recording import CH_TYPES, Recording
from ._header import ChannelInfo, RecordingHeader, channel_flags, resolve_channels, split_channels

log = logging.getLogger(__name__)

#: Largest upload ``read_recording_bytes`` accepts by default (200 MB).
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024

EDF_SUFFIXES = (".edf", ".bdf")
WFDB_SUFFIXES = (".hea", ".dat", ".mat")
TABULAR_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")
NPZ_SUFFIXES = (".npz",)
SUPPORTED_SUFFIXES = EDF_SUFFIXES + WFDB_SUFFIXES + TABULAR_SUFFIXES + NPZ_SUFFIXES

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "SUPPORTED_SUFFIXES",
    "ChannelInfo",
    "RecordingHeader",
    "channels_share_rate",
    "read_header",
    "read_recording",
    "read_recording_bytes",
    "resolve_channels",
    "write_recording",
]


def _wfdb_annotation_suffix(suffix: str) -> bool:
    from .wfdb_reader import ANNOTATION_EXTENSIONS

    return suffix[1:] in ANNOTATION_EXTENSIONS


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in EDF_SUFFIXES:
        return "edf"
    if suffix == ".hea":
        return "wfdb"
    if suffix in (".dat", ".mat"):
        if path.with_suffix(".hea").exists() or path.with_suffix(".HEA").exists():
            return "wfdb"
        if suffix == ".mat":
            raise RecordingError(
                f"{path}: a .mat file is read only as WFDB signal data next to its .hea header, "
                f"and no {path.with_suffix('.hea').name} was found."
            )
        raise RecordingError(f"{path}: a .dat file needs its WFDB header {path.with_suffix('.hea').name} beside it.")
    if _wfdb_annotation_suffix(suffix) and (path.with_suffix(".hea").exists() or path.with_suffix(".HEA").exists()):
        return "wfdb"  # an annotation file: read its record
    if suffix in TABULAR_SUFFIXES:
        return "tabular"
    if suffix in NPZ_SUFFIXES:
        return "npz"
    raise RecordingError(
        f"{path}: unsupported file type '{suffix or '(no extension)'}'. "
        f"Supported: {', '.join(SUPPORTED_SUFFIXES)}."
    )


def _check_ch_types(ch_types: Mapping[str, str] | None, path: Path) -> dict[str, str]:
    if ch_types is None:
        return {}
    if not isinstance(ch_types, Mapping):
        raise RecordingError(
            f"{path}: ch_types must be a mapping {{channel name: type}}, got {type(ch_types).__name__}."
        )
    out = {}
    for name, kind in ch_types.items():
        if kind not in CH_TYPES:
            raise RecordingError(f"{path}: channel type {kind!r} for '{name}' is not one of {CH_TYPES}.")
        out[str(name)] = str(kind)
    return out


def _apply_options(rec: Recording, path: Path, channels, ch_types: dict[str, str], subject) -> Recording:
    """Override types, set subject, pick channels (same for every format)."""
    if ch_types:
        types = list(rec.ch_types)
        for name, kind in ch_types.items():
            types[rec.channel_index(name)] = kind
        rec.ch_types = types
    if subject is not None:
        rec.subject = str(subject)
    channels = split_channels(channels)
    if channels is not None:
        rec = rec.pick(channels)
    return rec


def _library_notes(caught) -> list[str]:
    """One line per warning a library raised while reading (deprecation chatter left out)."""
    out = []
    for w in caught:
        if issubclass(w.category, (DeprecationWarning, FutureWarning, PendingDeprecationWarning)):
            continue
        text = " ".join(str(w.message).split())
        if text and text not in out:
            out.append(text)
    return out


def _one_line_error(p: Path, fmt: str, exc: Exception) -> RecordingError:
    kind = p.suffix[1:].upper() if fmt == "tabular" else fmt.upper()
    detail = " ".join(str(exc).split())  # one line, whatever the library wrote
    if len(detail) > 300:
        detail = detail[:297] + "..."
    return RecordingError(f"{p}: cannot read this {kind} file ({type(exc).__name__}: {detail}).")


def read_header(path: str | os.PathLike, *, sfreq: float | None = None,
                time_column: str | None = None) -> RecordingHeader:
    """What a recording file holds -- every channel with its own rate, unit, type and flags.

    EDF/BDF and WFDB headers are read without loading samples (cheap, for channel
    pickers); tables and NPZ files are read whole (they have one rate). Channels that
    cannot be read list their ``problems`` (naming the header field) instead of raising,
    so a picker can show them greyed out. Raises RecordingError when the file itself
    cannot be read (one line naming the file).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise RecordingError(f"{p}: file not found.")
    if p.is_dir():
        raise RecordingError(f"{p}: is a folder, not a recording file.")
    fmt = _format_of(p)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if fmt == "edf":
                from .edf import read_edf_header

                header = read_edf_header(p)
            elif fmt == "wfdb":
                from .wfdb_reader import read_wfdb_header

                header = read_wfdb_header(p)
            else:
                rec = read_recording(p, sfreq=sfreq, time_column=time_column)
                header = header_from_recording(rec, fmt=p.suffix[1:].upper())
    except BioXError:
        raise
    except Exception as exc:  # any library failure becomes a readable error
        raise _one_line_error(p, fmt, exc) from exc
    header.warnings += [n for n in _library_notes(caught) if n not in header.warnings]
    return header


def channels_share_rate(path: str | os.PathLike, channels: Sequence[str]) -> bool:
    """True when ``channels`` of the file all have one sampling rate (cheap: EDF/BDF and WFDB headers only;
    tables and NPZ files have one rate). Unknown names give True so that reading them reports them."""
    p = Path(path)
    try:
        fmt = _format_of(p)
    except RecordingError:
        return True
    if fmt not in ("edf", "wfdb") or not p.exists():
        return True
    try:
        header = read_header(p)
    except RecordingError:
        return True  # the read itself will say what is wrong
    rates = {c.sfreq for c in header.channels if c.name in set(channels)}
    return len(rates) <= 1


def header_from_recording(rec: Recording, *, fmt: str = "") -> RecordingHeader:
    """A ``RecordingHeader`` describing an already-read Recording (one rate for all channels)."""
    chans = [ChannelInfo(name=c, sfreq=rec.sfreq, unit=u, type=t, n_samples=rec.n_times, flags=channel_flags(c))
             for c, t, u in zip(rec.ch_names, rec.ch_types, rec.units)]
    return RecordingHeader(source=rec.source, format=fmt, channels=chans, start_time=rec.start_time,
                           duration_s=rec.duration_s, gaps=list(rec.gaps), warnings=list(rec.warnings))


def read_recording(
    path: str | os.PathLike,
    *,
    channels: Sequence[str] | str | None = None,
    ch_types: Mapping[str, str] | None = None,
    sfreq: float | None = None,
    time_column: str | None = None,
    subject: str | None = None,
) -> Recording:
    """Read one recording file into a :class:`Recording` in physical units.

    Parameters
    ----------
    path : file to read; the format comes from its suffix (case-insensitive).
    channels : names to keep, in this order (or a modality such as ``'ECG'``, or
        ``"A;B"``); a missing name raises a RecordingError listing the channels.
        They are picked before the signal is assembled: in a file whose channels
        have different rates they must share one rate (else a one-line error lists
        each with its rate). Without ``channels`` such a file is refused with the
        channels grouped by rate -- never resampled or averaged.
    ch_types : ``{channel name: type}`` overriding the types inferred from names.
    sfreq : sampling rate in Hz for tables without a time column or rate metadata
        (checked against the rate of formats that store their own).
    time_column : name of the time column of a table; auto-detected when omitted
        (``time``, ``time_s``, ``t``, ``timestamp``...), its unit recognised from its
        name or values (s, ms, us, epoch, ISO date-times).
    subject : subject identifier stored on the Recording.

    Returns a Recording whose ``gaps`` list spans the source did not record (their
    samples NaN) and whose ``warnings`` hold the readers' and libraries' notes (also
    logged at WARNING level).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise RecordingError(f"{p}: file not found.")
    if p.is_dir():
        raise RecordingError(f"{p}: is a folder, not a recording file.")
    fmt = _format_of(p)
    types = _check_ch_types(ch_types, p)
    if sfreq is not None:
        check_range("sfreq", sfreq, low=0, low_inclusive=False, owner="read_recording")
    log.info("Reading %s (%s)", p, fmt)
    picked = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if fmt == "edf":
                from .edf import read_edf, read_edf_header

                picked = resolve_channels(read_edf_header(p), channels, where=str(p))
                rec = read_edf(p, picked)
            elif fmt == "wfdb":
                from .wfdb_reader import read_wfdb, read_wfdb_header

                picked = resolve_channels(read_wfdb_header(p), channels, where=str(p))
                rec = read_wfdb(p, picked)
            elif fmt == "tabular":
                from .tabular import read_tabular

                rec = read_tabular(p, sfreq=sfreq, time_column=time_column)
            else:
                from .npz import read_npz

                rec = read_npz(p)
    except BioXError:
        raise
    except MemoryError:
        raise RecordingError(f"{p}: not enough memory to read this file.") from None
    except Exception as exc:  # any library failure becomes a readable error
        raise _one_line_error(p, fmt, exc) from exc
    rec.warnings += [n for n in _library_notes(caught) if n not in rec.warnings]
    if sfreq is not None and fmt != "tabular" and abs(float(sfreq) - rec.sfreq) > 1e-6 * rec.sfreq:
        raise RecordingError(
            f"{p}: the file says {rec.sfreq:g} Hz but sfreq={sfreq!r} was given; "
            "readers never resample (use Recording.resample)."
        )
    rec.source = str(p)
    rec = _apply_options(rec, p, picked if picked is not None else channels, types, subject)
    for note in rec.warnings:
        log.warning("%s: %s", p.name, note)
    return rec


def read_recording_bytes(
    data: bytes | Mapping[str, bytes],
    filename: str,
    *,
    max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    **kw,
) -> Recording:
    """Read an uploaded file (or, for WFDB, ``{filename: bytes}`` of the .hea and its data files).

    The bytes are written to a private temporary folder that is removed afterwards;
    ``source`` keeps the uploaded ``filename``. More than ``max_bytes`` in total is
    refused. Keyword arguments go to :func:`read_recording`.
    """
    name = Path(str(filename)).name
    if not name:
        raise RecordingError("An uploaded file needs a file name (its extension gives the format).")
    if isinstance(data, (bytes, bytearray, memoryview)):
        files = {name: bytes(data)}
    elif isinstance(data, Mapping):
        files = {Path(str(k)).name: bytes(v) for k, v in data.items()}
        if name not in files:
            raise RecordingError(
                f"{name}: not among the uploaded files ({', '.join(sorted(files)) or 'none'})."
            )
    else:
        raise RecordingError(f"{name}: upload must be bytes or {{filename: bytes}}, got {type(data).__name__}.")
    total = sum(len(b) for b in files.values())
    if total > max_bytes:
        raise RecordingError(
            f"{name}: upload is {total / 1e6:.1f} MB, more than the limit of {max_bytes / 1e6:.0f} MB. "
            "Crop the recording or read it from disk instead."
        )
    if files[name] == b"":
        raise RecordingError(f"{name}: the uploaded file is empty.")
    tmp = tempfile.mkdtemp(prefix="bioxbridge-upload-")
    try:
        os.chmod(tmp, 0o700)
        for fname, payload in files.items():
            (Path(tmp) / fname).write_bytes(payload)
        rec = read_recording(Path(tmp) / name, **kw)
    except RecordingError as exc:
        # Replace the private temporary path by the uploaded name in the message.
        raise RecordingError(scrub_path(str(exc), tmp, name)) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rec.source = name
    rec.warnings = [scrub_path(w, tmp, name) for w in rec.warnings]
    return rec


def scrub_path(text: str, folder: str | os.PathLike, name: str | None = None) -> str:
    """``text`` with every mention of the private ``folder`` removed (``folder/x.hea`` -> ``x.hea``)."""
    folder = str(folder)
    if name is not None:
        text = text.replace(str(Path(folder) / name), name)
    for variant in {folder, os.path.realpath(folder)}:
        text = text.replace(variant + os.sep, "").replace(variant, "<upload>")
    return text


def write_recording(rec: Recording, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write ``rec`` as EDF (``.edf``), CSV (``.csv``), NPZ (``.npz``) or WFDB (``.hea``)."""
    from .writers import write_recording as _write

    return _write(rec, path, overwrite=overwrite)
