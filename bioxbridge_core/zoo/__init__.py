"""Model zoo: pre-training and linear-probe evaluation of the built-in encoders.

A maintainer tool, run as ``python -m bioxbridge_core.zoo pretrain|probe|card --encoder ecg|ppg|eeg``;
it writes ``assets/encoders/<name>.safetensors``, ``pretrain_<name>.json``, ``probe_<name>.json`` and
``MODEL_CARD_<name>.md``. The product only reads the weights (``models.registry``).
"""

from __future__ import annotations

__all__ = ["data", "pretrain", "probe_eval", "card"]
