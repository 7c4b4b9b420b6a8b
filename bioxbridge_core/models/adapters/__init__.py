"""Adapters for published foundation models (loaded from their own checkpoints) and arbitrary modules.

- ``labram``, ``biot``, ``cbramod``, ``papagei``: LaBraM-base, BIOT, CBraMod and PaPaGei-S written
  here with the authors' parameter names, so their published files load strictly
  (``_checkpoint.py`` reads them safely; ``foundation.py`` registers ``ADAPTER:PATH`` names).
- ``hubert_ecg``: HuBERT-ECG via ``transformers`` (optional; imported lazily).
- ``generic``: any ``nn.Module`` plus its block names (sequential or hook mode).

braindecode (which also implements LaBraM, BIOT and CBraMod) is deliberately not used: it pulls
torchaudio, whose wheels pin one exact torch build and would fight the project's torch pin.
"""
