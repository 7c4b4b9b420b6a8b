"""BioX-Bridge Studio engine: move a working biosignal model to a new modality without labels.

Importable without Streamlit. Public names are listed in ``__all__`` and
loaded lazily so ``import bioxbridge_core`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (relative to this package)
_PUBLIC = {
    "BioXError": ".errors", "RecordingError": ".errors", "ManifestError": ".errors",
    "WindowingError": ".errors", "ConfigError": ".errors", "EncoderError": ".errors",
    "LayerNotFoundError": ".errors", "NotFittedError": ".errors", "RunError": ".errors",
    "StopRequested": ".errors",
    "SignalSpec": ".spec",
    "Recording": ".data.recording", "Annotation": ".data.recording", "infer_ch_type": ".data.recording",
    "PairedWindows": ".data.windows",
    "EncoderAdapter": ".models.base", "Position": ".models.base", "Stage": ".models.base",
    "resolve_device": ".device",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def _register(names: dict[str, str]) -> None:
    """Add public names defined in submodules (used as the engine grows)."""
    _PUBLIC.update(names)
    __all__[:] = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        module = importlib.import_module(_PUBLIC[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'bioxbridge_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
