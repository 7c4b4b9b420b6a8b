"""Read biosignal files of any supported format into a :class:`Recording`.

``read_recording`` dispatches on the file suffix (case-insensitive):

=================  ==========================================================
``.edf`` ``.bdf``  MNE (EDF+/BDF+ annotations become ``Annotation`` objects)
``.hea`` (WFDB)    wfdb, physical units; ``.dat``/``.mat`` beside a ``.hea``
                   are accepted too; annotation files (``.atr``...) are read
``.csv`` ``.tsv``  pandas; a time column or ``sfreq=`` gives the rate
``.parquet``       pandas (needs pyarrow or fastparquet)
``.npz``           ``data`` (n_chans, n_times), ``sfreq``, optional
                   ``ch_names``, ``ch_types``, ``units``; never unpickled
=================  ==========================================================

Readers only read: they never resample, filter or window. Any failure in the
underlying library becomes a :class:`~bioxbridge_core.errors.RecordingError`
naming the file and the problem.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from ..._check import check_range
from ...errors import BioXError, RecordingError
from ..recording import CH_TYPES, Recording

log = logging.getLogger(__name__)

#: Largest upload ``read_recording_bytes`` accepts by default (200 MB).
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024

EDF_SUFFIXES = (".edf", ".bdf")
WFDB_SUFFIXES = (".hea", ".dat", ".mat")
TABULAR_SUFFIXES = (".csv", ".tsv", ".parquet")
NPZ_SUFFIXES = (".npz",)
SUPPORTED_SUFFIXES = EDF_SUFFIXES + WFDB_SUFFIXES + TABULAR_SUFFIXES + NPZ_SUFFIXES

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "SUPPORTED_SUFFIXES",
    "read_recording",
    "read_recording_bytes",
    "write_recording",
]


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
    if channels is not None:
        if isinstance(channels, str):
            channels = [c for c in (s.strip() for s in channels.split(";")) if c] if ";" in channels else channels
        rec = rec.pick(channels)
    return rec


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
    ch_types : ``{channel name: type}`` overriding the types inferred from names.
    sfreq : sampling rate in Hz for tables without a time column (ignored, with a
        check, by formats that store their own rate).
    time_column : name of the time column of a table (seconds); auto-detected when
        omitted (``time``, ``time_s``, ``t``, ``timestamp``...).
    subject : subject identifier stored on the Recording.
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
    try:
        if fmt == "edf":
            from .edf import read_edf

            rec = read_edf(p, channels=channels)
        elif fmt == "wfdb":
            from .wfdb_reader import read_wfdb

            rec = read_wfdb(p)
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
        kind = p.suffix[1:].upper() if fmt == "tabular" else fmt.upper()
        detail = " ".join(str(exc).split())  # one line, whatever the library wrote
        if len(detail) > 300:
            detail = detail[:297] + "..."
        raise RecordingError(f"{p}: cannot read this {kind} file ({type(exc).__name__}: {detail}).") from exc
    if sfreq is not None and fmt != "tabular" and abs(float(sfreq) - rec.sfreq) > 1e-6 * rec.sfreq:
        raise RecordingError(
            f"{p}: the file says {rec.sfreq:g} Hz but sfreq={sfreq!r} was given; "
            "readers never resample (use Recording.resample)."
        )
    rec.source = str(p)
    return _apply_options(rec, p, channels, types, subject)


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
        msg = str(exc).replace(str(Path(tmp) / name), name).replace(str(tmp) + os.sep, "")
        raise RecordingError(msg) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rec.source = name
    return rec


def write_recording(rec: Recording, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write ``rec`` as EDF (``.edf``), CSV (``.csv``), NPZ (``.npz``) or WFDB (``.hea``)."""
    from .writers import write_recording as _write

    return _write(rec, path, overwrite=overwrite)
