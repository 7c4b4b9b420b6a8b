"""The three built-in encoders (ECG, PPG, EEG) and their constructor.

``build_builtin(name, ch_names=None)`` returns a freshly initialised (random,
deterministic) encoder; ``models.registry.load_encoder("builtin:<name>")``
adds the pre-trained weights from ``assets/encoders/<name>.safetensors``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..._check import suggest
from ...errors import EncoderError
from ..base import EncoderAdapter
from .ecg import ECGConfig, ECGEncoder
from .eeg import DEFAULT_MONTAGE, EEGConfig, EEGEncoder
from .ppg import PPGConfig, PPGEncoder

BUILTIN_NAMES = ("ecg", "ppg", "eeg")

DESCRIPTIONS = {
    "ecg": "Single-lead ECG, 100 Hz, 10 s: strided conv front-end (100 tokens) + 6 pre-norm transformer blocks.",
    "ppg": "Single-channel PPG, 50 Hz, 10 s: 1-D ResNet (stem + 4 stages x 2 basic blocks, 32-256 channels).",
    "eeg": "EEG, 100 Hz, 10 s, any 10-20 montage: LaBraM-style 1 s patches + electrode/time embeddings "
           "+ 6 transformer blocks.",
}


def build_builtin(name: str, *, ch_names: Sequence[str] | None = None, seed: int = 0) -> EncoderAdapter:
    """Build built-in encoder ``name`` (``"ecg"``, ``"ppg"``, ``"eeg"`` or ``"builtin:..."``).

    Weights are random but deterministic for ``seed`` (the global torch RNG is
    left untouched). ``ch_names`` is the EEG montage (ignored for ECG/PPG).
    """
    key = name.split(":", 1)[1] if name.startswith("builtin:") else name
    if key not in BUILTIN_NAMES:
        raise EncoderError(f"Unknown built-in encoder '{name}'. Built-ins: {', '.join(BUILTIN_NAMES)}."
                           + suggest(key, BUILTIN_NAMES))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if key == "ecg":
            model: EncoderAdapter = ECGEncoder()
        elif key == "ppg":
            model = PPGEncoder()
        else:
            model = EEGEncoder(ch_names)
    model.encoder_name = f"builtin:{key}"
    return model


__all__ = ["build_builtin", "BUILTIN_NAMES", "DESCRIPTIONS", "ECGEncoder", "PPGEncoder", "EEGEncoder",
           "ECGConfig", "PPGConfig", "EEGConfig", "DEFAULT_MONTAGE"]
