"""Input-contract helpers shared by the foundation adapters: channel tables and window checks.

The adapters only need to find each requested channel in *their model's own* table (an index
into a learned embedding); general channel matching for recordings lives in ``data/``.
"""

from __future__ import annotations

import re
from typing import Sequence

from ...errors import EncoderError

#: 19 channels of TUEG (TUH EEG corpus) in the order CBraMod pre-trained on (their
#: ``preprocessing_tueg_for_pretraining.py``); LaBraM's TUAB/TUEV fine-tuning uses the same names.
TUEG_19 = ("FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T3", "T4", "T5", "T6",
           "FZ", "CZ", "PZ")

#: old 10-20 names and their 10-10 equivalents (both spellings occur in published montages)
ALIASES_10_10 = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8", "M1": "A1", "M2": "A2"}

_DROP = {"EEG", "REF", "LE", "AR", "AV"}


def clean_electrode(name: str) -> str:
    """Upper-case electrode name without 'EEG' / '-REF' / '-LE' decorations (``'EEG Fp1-REF'`` -> ``'FP1'``)."""
    tokens = [t for t in re.split(r"[\s\-_:./()]+", str(name).strip().upper()) if t and t not in _DROP]
    return tokens[0] if len(tokens) == 1 else str(name).strip().upper()


def clean_bipolar(name: str) -> tuple[str, str] | None:
    """``'EEG Fp1-F7'`` -> ``('FP1', 'F7')`` in 10-10 spelling; None when it is not 'A-B'."""
    text = re.sub(r"^\s*EEG\s+", "", str(name).strip().upper())
    parts = [p.strip() for p in text.split("-")]
    if len(parts) != 2 or not all(parts):
        return None
    return tuple(ALIASES_10_10.get(p, p) for p in parts)  # type: ignore[return-value]


def check_names(ch_names: Sequence[str] | None, *, who: str) -> tuple[str, ...]:
    """A non-empty tuple of unique channel names (strings), or ``EncoderError``."""
    if ch_names is None or isinstance(ch_names, str) or len(ch_names) == 0:
        raise EncoderError(f"{who}: ch_names must be a non-empty list of channel names, got {ch_names!r}.")
    names = tuple(str(c) for c in ch_names)
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise EncoderError(f"{who}: channel(s) {dup} appear twice in ch_names.")
    return names


def resolve_window(window_s: float | None, *, default_s: float, lo_s: float, hi_s: float, who: str,
                   patch_s: float | None = None) -> float:
    """``window_s`` (or the default) checked against ``[lo_s, hi_s]`` and, for patch models, whole patches."""
    w = float(default_s if window_s is None else window_s)
    if not (lo_s - 1e-9 <= w <= hi_s + 1e-9):
        raise EncoderError(f"{who} accepts windows of {lo_s:g}-{hi_s:g} s; {w:g} s was asked for.")
    if patch_s is not None and abs(w / patch_s - round(w / patch_s)) > 1e-6:
        raise EncoderError(f"{who} reads {patch_s:g} s patches, so windows must be whole multiples of "
                           f"{patch_s:g} s ({lo_s:g}-{hi_s:g} s); {w:g} s was asked for.")
    return w


def n_patches(n_times: int, patch: int, *, who: str, sfreq: float, max_patches: int | None = None) -> int:
    """Patches in a window of ``n_times`` samples; ``EncoderError`` when not whole or too many."""
    if n_times % patch or n_times == 0:
        raise EncoderError(f"{who} reads patches of {patch} samples ({patch / sfreq:g} s at {sfreq:g} Hz); a window "
                           f"of {n_times} samples ({n_times / sfreq:g} s) is not a whole number of patches.")
    n = n_times // patch
    if max_patches is not None and n > max_patches:
        raise EncoderError(f"{who} has time embeddings for at most {max_patches} patches "
                           f"({max_patches * patch / sfreq:g} s); got {n} ({n_times / sfreq:g} s).")
    return n
