"""WFDB records (``.hea`` + ``.dat``/``.mat``) through the ``wfdb`` package.

Samples are in physical units from the header (``mV`` for ECG, ``NU`` for
PLETH...); invalid samples become NaN. Annotation files beside the record
(``<record>.atr``, ``.ann``, ``.qrs``...) are read with ``wfdb.rdann``: each
annotation becomes a zero-length :class:`Annotation` described by its aux note
or, failing that, its symbol. Header comments (e.g. a CinC alarm verdict) are
not labels and are only logged at debug level.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from pathlib import Path

import numpy as np

from ...errors import RecordingError
from ..recording import Annotation, Recording
from ._common import clean_unit, import_wfdb, quiet_library_warnings

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
        if fname == "-":
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


def read_wfdb(path: Path) -> Recording:
    """Read the WFDB record whose header is ``path`` (or sits next to it)."""
    wfdb = import_wfdb()

    hea = _header_path(path)
    if not hea.exists():
        raise RecordingError(f"{path}: no WFDB header '{path.with_suffix('.hea').name}' beside it.")
    _check_header(hea)
    base = hea.with_suffix("")
    with quiet_library_warnings():
        rec = wfdb.rdrecord(str(base), physical=True)
    sig = rec.p_signal
    if sig is None or sig.size == 0:
        raise RecordingError(f"{hea}: the WFDB record holds no samples.")
    data = np.asarray(sig, dtype=np.float64).T
    if rec.fs is None or not np.isfinite(float(rec.fs)):
        raise RecordingError(f"{hea}: the WFDB header gives no sampling rate.")
    start = None
    if rec.base_date is not None and rec.base_time is not None:
        start = _dt.datetime.combine(rec.base_date, rec.base_time)
    if rec.comments:
        log.debug("%s header comments: %s", hea.name, rec.comments)
    return Recording(
        data=data.astype(np.float32),
        sfreq=float(rec.fs),
        ch_names=list(rec.sig_name),
        units=[clean_unit(u) for u in (rec.units or [""] * data.shape[0])],
        start_time=start,
        annotations=_read_annotations(base, float(rec.fs)),
        source=str(hea),
    )
