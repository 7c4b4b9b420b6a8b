"""Shared assertions every reader test applies to what it read."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from bioxbridge_core.data.recording import CH_TYPES, Recording


def check_recording(rec: Recording, *, n_chans: int | None = None, n_times: int | None = None,
                    ch_names: Sequence[str] | None = None, sfreq: float | None = None,
                    source_name: str | None = None) -> Recording:
    """Assert the invariants of any Recording a reader returns; return it for chaining."""
    assert isinstance(rec, Recording)
    assert rec.data.dtype == np.float32
    assert rec.data.ndim == 2 and rec.data.flags["C_CONTIGUOUS"]
    assert rec.data.shape == (len(rec.ch_names), rec.n_times)
    assert len(rec.ch_types) == rec.n_chans and all(t in CH_TYPES for t in rec.ch_types)
    assert len(rec.units) == rec.n_chans and all(isinstance(u, str) for u in rec.units)
    assert all(u.isascii() for u in rec.units), rec.units
    if n_chans is not None:
        assert rec.n_chans == n_chans
    if n_times is not None:
        assert rec.n_times == n_times
    if ch_names is not None:
        assert rec.ch_names == list(ch_names)  # order matters
    if sfreq is not None:
        assert rec.sfreq == sfreq
    if source_name is not None:
        assert Path(rec.source).name == source_name
    text = repr(rec)
    assert rec.name in text and f"{rec.sfreq:g} Hz" in text and f"{rec.n_chans} ch" in text
    for a in rec.annotations:
        assert 0 <= a.onset_s <= rec.duration_s + 1e-6 and a.duration_s >= 0
    return rec
