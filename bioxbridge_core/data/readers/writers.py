"""Write a :class:`Recording` to EDF, CSV, NPZ or WFDB (for tests, demo data, exports).

* ``.edf``: 16-bit EDF+ through edfio (the library MNE's exporter uses), one
  signal per channel labelled with the channel name (keep names that carry the
  type, e.g. ``ECG ECG``, ``PPG PLETH``), physical dimension = the unit, and a
  per-channel physical range spanning the channel's min..max, so quantisation
  error is at most (max - min) / 65534 / 2 per sample. Annotations and the
  start time are written. NaN cannot be stored in EDF and is refused.
* ``.csv``: a ``time_s`` column then one column per channel, headed
  ``name [unit]`` when the unit is known.
* ``.npz``: ``data``, ``sfreq``, ``ch_names``, ``ch_types``, ``units`` (and ``start_time`` as ISO text,
  ``gaps`` as (k, 2) seconds, when the recording has them).
* ``.hea``: WFDB format 16 (``<name>.hea`` + ``<name>.dat``) via ``wfdb.wrsamp``;
  annotations go to ``<name>.atr`` as zero-length notes.

Every file is written atomically.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..._io import atomic_save_npz, atomic_write_bytes
from ...errors import RecordingError
from ..recording import Recording
from ._common import import_wfdb, quiet_library_warnings

EDF_LABEL_MAX = 16
EDF_UNIT_MAX = 8


def _record_duration(n_times: int, sfreq: float) -> float:
    """A data-record duration (s) that divides the recording exactly and fits EDF's 8 characters."""
    if float(sfreq).is_integer() and n_times % int(sfreq) == 0:
        return 1.0
    best = None
    for k in range(min(n_times, int(np.ceil(sfreq * 10))), 0, -1):
        if n_times % k:
            continue
        dur = k / sfreq
        text = f"{dur:.8g}"
        if len(text) <= 8 and abs(float(text) * sfreq - k) < 1e-9 * k:
            best = dur
            break
    if best is None:
        raise RecordingError(
            f"cannot split {n_times} samples at {sfreq:g} Hz into EDF data records; crop the recording "
            "to a whole number of seconds."
        )
    return best


def _write_edf(rec: Recording, path: Path) -> None:
    import edfio

    for name in rec.ch_names:
        if len(name) > EDF_LABEL_MAX or not name.isascii():
            raise RecordingError(
                f"{path}: channel name '{name}' cannot be an EDF label (at most {EDF_LABEL_MAX} ASCII characters)."
            )
    if not np.isfinite(rec.data).all():
        bad = [c for c, row in zip(rec.ch_names, rec.data) if not np.isfinite(row).all()]
        raise RecordingError(
            f"{path}: EDF cannot store NaN or infinite samples (channels {bad}); fill or crop them first."
        )
    duration = _record_duration(rec.n_times, rec.sfreq)
    signals = []
    for row, name, unit in zip(rec.data.astype(np.float64), rec.ch_names, rec.units):
        unit = unit.replace("\u00b5", "u")
        if len(unit) > EDF_UNIT_MAX or not unit.isascii():
            raise RecordingError(
                f"{path}: unit '{unit}' of '{name}' does not fit EDF (at most {EDF_UNIT_MAX} ASCII characters)."
            )
        lo, hi = float(row.min()), float(row.max())
        if hi - lo < 1e-12 * max(1.0, abs(lo)):
            lo, hi = lo - 0.5, hi + 0.5
        signals.append(edfio.EdfSignal(row, rec.sfreq, label=name, physical_dimension=unit, physical_range=(lo, hi)))
    start = rec.start_time
    kwargs = {}
    if start is not None:
        if start.tzinfo is not None:
            start = start.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        start = start.replace(microsecond=0)
        if start.year < 1985 or start.year > 2084:  # EDF's two-digit years
            start = None
    if start is not None:
        kwargs = {"recording": edfio.Recording(startdate=start.date()), "starttime": start.time()}
    annotations = [edfio.EdfAnnotation(a.onset_s, a.duration_s or None, a.description) for a in rec.annotations]
    edf = edfio.Edf(signals, data_record_duration=duration, annotations=annotations or None, **kwargs)
    atomic_write_bytes(path, edf.to_bytes())


def _write_csv(rec: Recording, path: Path) -> None:
    import pandas as pd

    cols = {"time_s": rec.times()}
    for row, name, unit in zip(rec.data, rec.ch_names, rec.units):
        cols[f"{name} [{unit}]" if unit else name] = row
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    text = pd.DataFrame(cols).to_csv(index=False, sep=sep, float_format="%.9g")
    atomic_write_bytes(path, text.encode("utf-8"))


def _write_npz(rec: Recording, path: Path) -> None:
    extra = {}
    if rec.start_time is not None:
        extra["start_time"] = np.array(rec.start_time.isoformat())
    if rec.gaps:
        extra["gaps"] = np.asarray(rec.gaps, dtype=np.float64).reshape(-1, 2)
    atomic_save_npz(
        path, data=rec.data, sfreq=np.float64(rec.sfreq), ch_names=np.array(rec.ch_names, dtype=str),
        ch_types=np.array(rec.ch_types, dtype=str), units=np.array(rec.units, dtype=str), **extra,
    )


def _write_wfdb(rec: Recording, path: Path) -> None:
    wfdb = import_wfdb()

    name = path.stem
    if not name or not all(ch.isalnum() or ch in "_-" for ch in name):
        raise RecordingError(f"{path}: a WFDB record name may hold only letters, digits, '_' and '-'.")
    sig = rec.data.T.astype(np.float64)
    units = [u or "NU" for u in rec.units]
    kwargs = {}
    if rec.start_time is not None:
        kwargs["base_datetime"] = rec.start_time.replace(tzinfo=None)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=path.parent))
    try:
        with quiet_library_warnings():
            _wrsamp(wfdb, rec, name, sig, units, tmp, kwargs)
        for f in tmp.iterdir():
            os.replace(f, path.parent / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


WFDB_NAN = -32768  # format 16's "invalid sample" value


def _adc(sig: np.ndarray) -> tuple[np.ndarray, list[float], list[int]]:
    """16-bit digital samples, gains and baselines per column; NaN -> WFDB_NAN; flat/all-NaN safe."""
    digital = np.empty(sig.shape, dtype=np.int16)
    gains, baselines = [], []
    for j in range(sig.shape[1]):
        x = sig[:, j]
        finite = x[np.isfinite(x)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi - lo < 1e-12 * max(1.0, abs(lo)):
            lo, hi = lo - 0.5, hi + 0.5
        gain = 65532.0 / (hi - lo)
        step = 10.0 ** (np.floor(np.log10(gain)) - 5)  # 6 significant digits, rounded down
        gain = float(np.floor(gain / step) * step)
        base = int(round(-32766 - lo * gain))
        d = np.clip(np.rint(x * gain + base), -32767, 32767)
        digital[:, j] = np.where(np.isfinite(x), d, WFDB_NAN).astype(np.int16)
        gains.append(gain)
        baselines.append(base)
    return digital, gains, baselines


def _wrsamp(wfdb, rec: Recording, name: str, sig: np.ndarray, units: list[str], tmp: Path, kwargs: dict) -> None:
    digital, gains, baselines = _adc(sig)
    wfdb.wrsamp(name, fs=float(rec.sfreq), units=units, sig_name=list(rec.ch_names), d_signal=digital,
                adc_gain=gains, baseline=baselines, fmt=["16"] * rec.n_chans, write_dir=str(tmp), **kwargs)
    if rec.annotations:
        sfreq = float(rec.sfreq)
        samples = np.array([int(round(a.onset_s * sfreq)) for a in rec.annotations])
        samples = np.clip(samples, 0, rec.n_times - 1)
        wfdb.wrann(name, "atr", samples, symbol=['"'] * len(samples),
                   aux_note=[a.description for a in rec.annotations], fs=sfreq, write_dir=str(tmp))


_WRITERS = {".edf": _write_edf, ".csv": _write_csv, ".tsv": _write_csv, ".npz": _write_npz, ".hea": _write_wfdb}


def write_recording(rec: Recording, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write ``rec`` in the format given by the suffix of ``path``; return the path written."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in _WRITERS:
        raise RecordingError(f"{path}: cannot write '{suffix or '(no extension)'}'; use one of {', '.join(_WRITERS)}.")
    if path.exists() and not overwrite:
        raise RecordingError(f"{path}: file exists (pass overwrite=True to replace it).")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _WRITERS[suffix](rec, path)
    except RecordingError:
        raise
    except Exception as exc:
        raise RecordingError(f"{path}: cannot write {rec.name} ({type(exc).__name__}: {exc}).") from exc
    return path
