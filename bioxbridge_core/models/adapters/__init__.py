"""Adapters for external foundation models (optional extras) and arbitrary modules.

- ``hubert_ecg``: HuBERT-ECG via ``transformers`` (optional; imported lazily).
- ``generic``: any ``nn.Module`` plus its block names (sequential or hook mode).

LaBraM (Jiang et al. 2024) is not wrapped yet. ``pip download braindecode
--no-deps`` (1.8.1) shows ``torch>=2.0`` -- fine -- but also ``torchaudio>=2.0``,
whose wheels pin one exact torch version, plus mne_bids, skorch, h5py,
linear_attention_transformer, docstring_inheritance and pydantic. Installing
it could replace the project's torch build, so it is not a dependency. A
user who has braindecode can wrap its ``Labram`` model with
``generic.GenericAdapter(model, ["blocks.0", ...], spec=..., mode="hooks")``.
"""
