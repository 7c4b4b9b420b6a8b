"""Empatica E4 CSVs for tests: a writer, and a tiny reader shim used only while the project's
reader cannot read the E4 layout yet (issue 9 adds it; then the shim is never installed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from bioxbridge_core.data.recording import Recording

E4_UNITS = {"EDA": "uS", "BVP": "", "TEMP": "degC"}


def write_e4(path: Path, values: np.ndarray, sfreq: float, start_unix_s: float) -> Path:
    """Row 1 start time (unix s), row 2 rate (Hz), then one sample per row -- the E4 export layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{start_unix_s:.6f}", f"{sfreq:.6f}"] + [f"{v:.6f}" for v in np.asarray(values, dtype=float)]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_e4(path: str | Path, channels=None, **_) -> Recording:
    """Read a one-column E4 CSV as a channel named after the file stem (``BVP``, ``EDA``)."""
    path = Path(path)
    with open(path) as fh:
        start = float(fh.readline().split(",")[0])
        sfreq = float(fh.readline().split(",")[0])
    data = np.loadtxt(path, skiprows=2, ndmin=1, dtype=np.float64)
    start_time = dt.datetime.fromtimestamp(start, tz=dt.timezone.utc).replace(tzinfo=None)
    rec = Recording(data=data[None].astype(np.float32), sfreq=sfreq, ch_names=[path.stem], start_time=start_time,
                    units=[E4_UNITS.get(path.stem, "")], source=str(path))
    return rec.pick(list(channels)) if channels else rec


def reader_reads_e4(tmp_dir: Path) -> bool:
    """Whether the project's ``read_recording`` already reads the E4 layout."""
    from bioxbridge_core.data.readers import read_recording
    from bioxbridge_core.errors import BioXError

    f = write_e4(tmp_dir / "probe" / "BVP.csv", np.sin(np.arange(640) / 5.0), 64.0, 1_600_000_000.0)
    try:
        rec = read_recording(f)
    except BioXError:
        return False
    return rec.ch_names == ["BVP"] and abs(rec.sfreq - 64.0) < 1e-9


def install_e4_shim(monkeypatch, tmp_dir: Path) -> bool:
    """Route ``data.pairing``'s reads of ``*.csv`` E4 files to ``read_e4`` when the reader cannot yet.

    Returns True when the shim was installed.
    """
    if reader_reads_e4(tmp_dir):
        return False
    from bioxbridge_core.data import pairing

    real = pairing._read

    def _read(path, channels):
        p = Path(path)
        if p.suffix.lower() == ".csv" and p.stem in E4_UNITS:
            return read_e4(p, channels)
        return real(path, channels)

    monkeypatch.setattr(pairing, "_read", _read)
    return True
