"""The four built-in encoders (ECG, PPG, EEG, EDA) and their constructor.

``build_builtin(name, ch_names=None)`` returns a freshly initialised (random,
deterministic) encoder; ``models.registry.load_encoder("builtin:<name>")``
adds the pre-trained weights from ``assets/encoders/<name>.safetensors``.
``builtin_spec(name, ch_names=None)`` gives the input contract (rate,
channels, window range) without building a model.

Every built-in accepts any window length in its declared range
(``SignalSpec.window_range``, 2-60 s for all four) with the same weights.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..._check import suggest
from ...errors import EncoderError
from ...spec import SignalSpec
from ..base import EncoderAdapter
from .ecg import ECGConfig, ECGEncoder, ecg_spec
from .eda import EDAConfig, EDAEncoder, eda_spec
from .eeg import DEFAULT_MONTAGE, EEGConfig, EEGEncoder, eeg_spec
from .ppg import PPGConfig, PPGEncoder, ppg_spec

BUILTIN_NAMES = ("ecg", "ppg", "eeg", "eda")

DESCRIPTIONS = {
    "ecg": "Single-lead ECG, 100 Hz, 2-60 s windows: strided conv front-end (one token per 0.1 s) + 6 pre-norm "
           "transformer blocks.",
    "ppg": "Single-channel PPG, 50 Hz, 2-60 s windows: 1-D ResNet (stem + 4 stages x 2 basic blocks, "
           "32-256 channels).",
    "eeg": "EEG, 100 Hz, 2-60 s windows, any 10-20 montage: LaBraM-style 1 s patches (conv + log-spectrum "
           "embedding) + electrode/time embeddings + 6 transformer blocks.",
    "eda": "Single-channel EDA, 4 Hz, 2-60 s windows: stride-1/2 conv front-end (one token per 0.5 s) + 4 "
           "pre-norm transformer blocks.",
}


def _key(name: str) -> str:
    key = name.split(":", 1)[1] if name.startswith("builtin:") else name
    if key not in BUILTIN_NAMES:
        raise EncoderError(f"Unknown built-in encoder '{name}'. Built-ins: {', '.join(BUILTIN_NAMES)}."
                           + suggest(key, BUILTIN_NAMES))
    return key


def builtin_spec(name: str, ch_names: Sequence[str] | None = None) -> SignalSpec:
    """Input contract of built-in ``name`` (``ch_names``: EEG montage, ignored otherwise); builds no model."""
    key = _key(name)
    if key == "ecg":
        return ecg_spec()
    if key == "ppg":
        return ppg_spec()
    if key == "eda":
        return eda_spec()
    return eeg_spec(ch_names)


def build_builtin(name: str, *, ch_names: Sequence[str] | None = None, seed: int = 0) -> EncoderAdapter:
    """Build built-in encoder ``name`` (``"ecg"``, ``"ppg"``, ``"eeg"``, ``"eda"`` or ``"builtin:..."``).

    Weights are random but deterministic for ``seed`` (the global torch RNG is
    left untouched). ``ch_names`` is the EEG montage (ignored for the others).
    Raises ``EncoderError`` for an unknown name (with a suggestion).
    """
    key = _key(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if key == "ecg":
            model: EncoderAdapter = ECGEncoder()
        elif key == "ppg":
            model = PPGEncoder()
        elif key == "eda":
            model = EDAEncoder()
        else:
            model = EEGEncoder(ch_names)
    model.encoder_name = f"builtin:{key}"
    return model


__all__ = ["build_builtin", "builtin_spec", "BUILTIN_NAMES", "DESCRIPTIONS", "ECGEncoder", "PPGEncoder",
           "EEGEncoder", "EDAEncoder", "ECGConfig", "PPGConfig", "EEGConfig", "EDAConfig", "DEFAULT_MONTAGE"]
