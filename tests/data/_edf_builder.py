"""Write EDF/EDF+/BDF+ bytes by hand, with full control of every header field and record time stamp.

Test helper only: lets a test build the files real devices write (EDF+D with jumps, a sub-second
start, a UTF-8 or Latin-1 header, degenerate ranges) without depending on a writer that would
refuse or tidy them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Sig:
    label: str | bytes
    data: np.ndarray  # physical values, length spr * n_records
    spr: int
    dim: str | bytes = "uV"
    pmin: float | str = -1000.0
    pmax: float | str = 1000.0
    dmin: int | str = -32768
    dmax: int | str = 32767


def _field(value, width: int) -> bytes:
    raw = value if isinstance(value, bytes) else str(value).encode("ascii")
    assert len(raw) <= width, (value, width)
    return raw.ljust(width, b" ")


def _num(v) -> str:
    if isinstance(v, str):
        return v
    if float(v).is_integer() and len(str(int(v))) <= 8:
        return str(int(v))
    text = f"{v:g}"
    return text if len(text) <= 8 else f"{v:.6g}"[:8]


def _sec(v: float) -> str:
    """Seconds as EDF+ writes them: plain decimal, no exponent."""
    return f"{v:.7f}".rstrip("0").rstrip(".")


def edf_bytes(signals: list[Sig], *, n_records: int, record_s: float = 1.0, plus: str | None = None,
              record_onsets: list[float] | None = None, annotations: list[tuple[float, float, str]] = (),
              start_date: str = "01.02.26", start_time: str = "10.00.00", bdf: bool = False,
              tal_spr: int = 30, recording_id: str = "Startdate 01-FEB-2026 X X X") -> bytes:
    """EDF (or BDF with ``bdf=True``) bytes; ``plus='C'``/``'D'`` adds an annotation signal with one
    time-keeping TAL per record (``record_onsets``, default ``k * record_s``) and ``annotations``
    (onset from the header start, duration, text) in the first record."""
    sigs = list(signals)
    ann_label = b"BDF Annotations" if bdf else b"EDF Annotations"
    bps = 3 if bdf else 2
    if plus:
        sigs.append(Sig(ann_label, np.zeros(tal_spr * n_records), tal_spr, dim="", pmin=-1, pmax=1,
                        dmin=-(2 ** 23) if bdf else -32768, dmax=2 ** 23 - 1 if bdf else 32767))
    ns = len(sigs)
    head = b"".join([
        b"\xffBIOSEMI" if bdf else _field("0", 8), _field("X X X X", 80), _field(recording_id, 80),
        _field(start_date, 8), _field(start_time, 8), _field(str(256 * (ns + 1)), 8),
        _field(("BDF+" if bdf else "EDF+") + plus if plus else ("24BIT" if bdf else ""), 44),
        _field(str(n_records), 8), _field(_num(record_s), 8), _field(str(ns), 4),
    ])
    cols = [
        [_field(s.label, 16) for s in sigs], [_field("", 80) for _ in sigs], [_field(s.dim, 8) for s in sigs],
        [_field(_num(s.pmin), 8) for s in sigs], [_field(_num(s.pmax), 8) for s in sigs],
        [_field(_num(s.dmin), 8) for s in sigs], [_field(_num(s.dmax), 8) for s in sigs],
        [_field("", 80) for _ in sigs], [_field(str(s.spr), 8) for s in sigs], [_field("", 32) for _ in sigs],
    ]
    head += b"".join(b"".join(c) for c in cols)
    onsets = record_onsets if record_onsets is not None else [k * record_s for k in range(n_records)]
    records = []
    for k in range(n_records):
        parts = []
        for s in sigs:
            if plus and s.label == ann_label:
                tal = f"+{_sec(onsets[k])}\x14\x14\x00".encode()
                if k == 0:
                    for onset, dur, text in annotations:
                        tal += f"+{_sec(onset)}".encode() + (f"\x15{_sec(dur)}".encode() if dur else b"") + \
                            b"\x14" + text.encode("utf-8") + b"\x14\x00"
                assert len(tal) <= s.spr * bps, "annotation signal too short for the TALs"
                parts.append(tal.ljust(s.spr * bps, b"\x00"))
                continue
            x = np.asarray(s.data[k * s.spr:(k + 1) * s.spr], dtype=np.float64)
            try:
                pmin, pmax, dmin, dmax = float(s.pmin), float(s.pmax), float(s.dmin), float(s.dmax)
                scale = (dmax - dmin) / (pmax - pmin) if pmax != pmin else 0.0
                d = np.round((x - pmin) * scale + dmin)
            except ValueError:
                d = np.zeros_like(x)
            lo, hi = (-(2 ** 23), 2 ** 23 - 1) if bdf else (-32768, 32767)
            d = np.clip(np.nan_to_num(d), lo, hi).astype(np.int64)
            if bdf:
                u = (d & 0xFFFFFF).astype(np.uint32)
                b = np.stack([u & 0xFF, (u >> 8) & 0xFF, (u >> 16) & 0xFF], axis=1).astype(np.uint8)
                parts.append(b.tobytes())
            else:
                parts.append(d.astype("<i2").tobytes())
        records.append(b"".join(parts))
    return head + b"".join(records)


def write_edf(path: Path, signals: list[Sig], **kw) -> Path:
    path.write_bytes(edf_bytes(signals, **kw))
    return path


def physical_step(s: Sig) -> float:
    """One digital step in physical units (the quantisation of the channel)."""
    return abs(float(s.pmax) - float(s.pmin)) / (float(s.dmax) - float(s.dmin))
