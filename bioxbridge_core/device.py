"""Pick the torch device: CUDA when present, never assume CPU."""

from __future__ import annotations


def resolve_device(device: str | None = None):
    """Return a ``torch.device``; ``None`` or ``"auto"`` picks CUDA if available."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        from .errors import ConfigError

        raise ConfigError(f"device '{device}' was asked for but CUDA is not available here; use 'cpu' or 'auto'.")
    return dev
