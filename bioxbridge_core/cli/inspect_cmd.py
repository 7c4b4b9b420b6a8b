"""``inspect FILE``: print what a recording holds, as JSON, plus per-channel quality.

The JSON is ``Recording.summary()`` (channels with type and unit, rate,
duration, start time, gaps, annotations, warnings) plus ``format``, ``header``
(every channel of the file with its own rate, unit, type, problems and flags)
and per-channel ``quality`` (NaN and flat-line fractions; ``flat_rule`` says how long a constant
stretch must last to count: 1 s, or longer for slow signals such as EDA and TEMP). A file whose channels have different rates is
shown header-only, with ``"sfreq": null`` and the channels grouped by rate,
until ``--channels`` picks channels of one rate. ``--header`` shows the header
of any file without reading its samples.

Exit 0 on success; a file that cannot be read (or a chosen channel that
cannot be used) gives one ``error: ...`` line on stderr and exit 2 (the
dispatcher turns the RecordingError into that). Reader warnings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..data.recording import Recording

#: A stretch of identical consecutive samples at least this long counts as flat.
FLAT_MIN_S = 1.0


def flat_fraction(x: np.ndarray, sfreq: float, *, min_s: float = FLAT_MIN_S) -> float:
    """Fraction of samples inside runs of identical values lasting at least ``min_s`` seconds."""
    x = np.asarray(x)
    n = x.size
    if n < 2:
        return 0.0
    min_len = max(2, int(round(min_s * sfreq)))
    same = np.concatenate([[False], x[1:] == x[:-1]])  # NaN never equals NaN
    # run starts where a sample differs from the previous one
    starts = np.flatnonzero(~same)
    lengths = np.diff(np.append(starts, n))
    return float(lengths[lengths >= min_len].sum() / n)


def flat_rule(name: str, ch_type: str | None = None, *, flat_min_s: float = FLAT_MIN_S) -> tuple[float, str]:
    """``(min_s, rule)``: how long a constant stretch must last to count as flat on this channel, and why.

    Slow, coarsely quantised signals repeat values for seconds on a clean recording, so their kind
    (``ch_type``, else what the name looks like: ``channels.apparent_modality``) gets at least the
    minimum windowing uses, ``data.preprocess.MIN_FLAT_S`` (EDA 5 s, TEMP 60 s); others ``flat_min_s``.
    """
    from ..data.channels import apparent_modality
    from ..data.preprocess import MIN_FLAT_S

    kind = ch_type if ch_type in MIN_FLAT_S else apparent_modality(name)
    if kind in MIN_FLAT_S and MIN_FLAT_S[kind] > flat_min_s:
        return MIN_FLAT_S[kind], f"constant for >= {MIN_FLAT_S[kind]:g} s ({kind} is slow; minimum from MIN_FLAT_S)"
    return flat_min_s, f"constant for >= {flat_min_s:g} s (default)"


def channel_quality(rec: Recording, *, flat_min_s: float = FLAT_MIN_S) -> list[dict]:
    """Per channel: NaN fraction, flat-line fraction (with ``flat_min_s``/``flat_rule``: see :func:`flat_rule`),
    and finite min/max/std."""
    out = []
    types = list(getattr(rec, "ch_types", None) or [None] * rec.n_chans)
    for name, kind, row in zip(rec.ch_names, types, rec.data):
        finite = row[np.isfinite(row)]
        min_s, rule = flat_rule(name, kind, flat_min_s=flat_min_s)
        out.append({
            "name": name,
            "nan_fraction": float(np.isnan(row).mean()) if row.size else 0.0,
            "flat_fraction": flat_fraction(row, rec.sfreq, min_s=min_s),
            "flat_rule": rule,
            "min": float(finite.min()) if finite.size else None,
            "max": float(finite.max()) if finite.size else None,
            "std": float(finite.std()) if finite.size else None,
        })
    return out


def inspect_file(path: str, *, channels=None, sfreq=None, time_column=None, header_only: bool = False) -> dict:
    """``Recording.summary()`` plus ``format``, ``header`` and a ``quality`` list (see :func:`channel_quality`).

    Without ``channels``, a file whose channels have different rates gives the header
    summary only (``sfreq`` None, ``rates`` grouping the channels, a ``note``), as does
    ``header_only=True``. Raises RecordingError when the file or a chosen channel cannot be read.
    """
    from ..data.readers import read_header, read_recording

    header = read_header(path, sfreq=sfreq, time_column=time_column)
    if header_only or (channels is None and header.mixed_rates):
        info = header.summary()
        if header.mixed_rates and not header_only:
            info["note"] = ("the channels have different sampling rates; pick channels of one rate with "
                            "--channels to read them")
        return info
    rec = read_recording(path, channels=channels, sfreq=sfreq, time_column=time_column)
    info = rec.summary()
    info["format"] = header.format
    info["n_chans"] = rec.n_chans
    info["gap_s"] = round(sum(d for _, d in rec.gaps), 6)
    info["header"] = [c.to_dict() for c in header.channels]
    info["quality"] = channel_quality(rec)
    return info


def _run(args: argparse.Namespace) -> int:
    channels = None
    if args.channels:
        channels = [c.strip() for c in args.channels.split(";") if c.strip()]
    info = inspect_file(args.file, channels=channels, sfreq=args.sfreq, time_column=args.time_column,
                        header_only=args.header)
    json.dump(info, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "inspect", help="show channels, rate, duration, annotations and quality of a recording (JSON)",
        description="Read one recording (EDF/BDF, WFDB .hea, CSV/TSV/TXT/Parquet, NPZ) and print a JSON summary "
                    "with every channel's own rate, unit and flags, gaps, warnings, and per-channel NaN and "
                    "flat-line fractions.",
    )
    p.add_argument("file", help="recording file")
    p.add_argument("--channels", default=None, help='channels to keep, separated by ";" (e.g. "ECG II;PLETH")')
    p.add_argument("--sfreq", type=float, default=None, help="sampling rate (Hz) for tables without a time column")
    p.add_argument("--time-column", default=None,
                   help="name of a table's time column (unit from its name or values: s, ms, us, epoch, ISO)")
    p.add_argument("--header", action="store_true",
                   help="show only what the header says (each channel's rate, unit, flags) without reading samples")
    p.set_defaults(func=_run)
    return p
