"""Registry entries of the published foundation models loaded from their own checkpoints.

``labram:PATH``, ``biot:PATH``, ``cbramod:PATH``, ``papagei:PATH`` (``hubert-ecg:PATH`` is
registered beside them in ``registry._ensure_default_adapters``). Nothing is downloaded: each
entry says which published file to point at. Factories take ``(path, *, ch_names=None,
window_s=None)``; the modules are imported only when an entry is used.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..base import EncoderAdapter
from ...spec import SignalSpec


def _labram(path: str, *, ch_names: Sequence[str] | None = None, **options) -> EncoderAdapter:
    """LaBraM-base (Jiang et al. 2024) from labram-base.pth."""
    from .labram import load_labram

    return load_labram(path, ch_names=ch_names, **options)


def _labram_spec(path: str, *, ch_names: Sequence[str] | None = None, **options) -> SignalSpec:
    from .labram import labram_spec

    return labram_spec(path, ch_names=ch_names, **options)


def _biot(path: str, *, ch_names: Sequence[str] | None = None, **options) -> EncoderAdapter:
    """BIOT encoder (Yang et al. 2023) from an EEG-*.ckpt file."""
    from .biot import load_biot

    return load_biot(path, ch_names=ch_names, **options)


def _biot_spec(path: str, *, ch_names: Sequence[str] | None = None, **options) -> SignalSpec:
    from .biot import biot_spec

    return biot_spec(path, ch_names=ch_names, **options)


def _cbramod(path: str, *, ch_names: Sequence[str] | None = None, **options) -> EncoderAdapter:
    """CBraMod (Wang et al. 2025) from pretrained_weights.pth."""
    from .cbramod import load_cbramod

    return load_cbramod(path, ch_names=ch_names, **options)


def _cbramod_spec(path: str, *, ch_names: Sequence[str] | None = None, **options) -> SignalSpec:
    from .cbramod import cbramod_spec

    return cbramod_spec(path, ch_names=ch_names, **options)


def _papagei(path: str, *, ch_names: Sequence[str] | None = None, **options) -> EncoderAdapter:
    """PaPaGei-S (Pillai et al. 2025) from papagei_s.pt."""
    from .papagei import load_papagei

    return load_papagei(path, ch_names=ch_names, **options)


def _papagei_spec(path: str, *, ch_names: Sequence[str] | None = None, **options) -> SignalSpec:
    from .papagei import papagei_spec

    return papagei_spec(path, ch_names=ch_names, **options)


def _contract(module: str, fn: str) -> Callable[[], SignalSpec]:
    def contract() -> SignalSpec:
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{module}"), fn)(None)

    return contract


def register_foundation_adapters(register_adapter: Callable) -> None:
    """Register the four adapters with ``registry.register_adapter``."""
    from . import biot, cbramod, labram, papagei

    register_adapter(
        "labram", modality="EEG", spec_fn=_labram_spec, contract=_contract("labram", "labram_spec"),
        params=labram.PUBLISHED_PARAMS, checkpoint=labram.CHECKPOINT_HINT,
        description="LaBraM-base (Jiang et al. 2024): EEG, 200 Hz, 1-16 s in whole seconds (default 10 s), "
                    "any 10-20 channels (default 19), µV (divided by 100 inside).")(_labram)
    register_adapter(
        "biot", modality="EEG", spec_fn=_biot_spec, contract=_contract("biot", "biot_spec"),
        params=biot.PUBLISHED_PARAMS, checkpoint=biot.CHECKPOINT_HINT,
        description="BIOT (Yang et al. 2023): EEG, 200 Hz, 1-30 s (default 10 s), 16 or 18 bipolar channels "
                    "(FP1-F7 ...), each divided by its 95th percentile of |x| inside.")(_biot)
    register_adapter(
        "cbramod", modality="EEG", spec_fn=_cbramod_spec, contract=_contract("cbramod", "cbramod_spec"),
        params=cbramod.PUBLISHED_PARAMS, checkpoint=cbramod.CHECKPOINT_HINT,
        description="CBraMod (Wang et al. 2025): EEG, 200 Hz, 1-30 s in whole seconds (default 10 s), any "
                    "channels in a fixed order (default the 19 of TUEG), µV (divided by 100 inside).")(_cbramod)
    register_adapter(
        "papagei", modality="PPG", spec_fn=_papagei_spec, contract=_contract("papagei", "papagei_spec"),
        params=papagei.PUBLISHED_PARAMS, checkpoint=papagei.CHECKPOINT_HINT,
        description="PaPaGei-S (Pillai et al. 2025): 1 PPG channel, 125 Hz, 2-60 s (default 10 s, as "
                    "pre-trained), z-scored per window.")(_papagei)
