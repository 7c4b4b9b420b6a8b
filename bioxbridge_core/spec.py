"""What an encoder needs as input: a leaf module shared by data and models."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MODALITIES = ("ECG", "PPG", "EEG", "EMG", "other")


@dataclass(frozen=True)
class SignalSpec:
    """Input contract of an encoder.

    Parameters
    ----------
    modality : one of ``MODALITIES``.
    sfreq : sampling rate in Hz the encoder was trained at.
    window_s : window length in seconds it was trained on.
    n_chans : number of channels, or ``None`` when any number works (channel-agnostic).
    ch_names : channel names it knows (e.g. 10-20 positions), ``None`` if names do not matter.
    flexible_length : whether other window lengths work (e.g. relative positions).
    normalisation : the per-window normalisation its inputs are expected to have.
    """

    modality: str
    sfreq: float
    window_s: float
    n_chans: int | None = 1
    ch_names: tuple[str, ...] | None = None
    flexible_length: bool = False
    normalisation: str = "zscore-window"

    def __post_init__(self) -> None:
        from .errors import ConfigError

        if self.modality not in MODALITIES:
            raise ConfigError(f"SignalSpec.modality must be one of {MODALITIES}, got {self.modality!r}.")
        if not (0 < self.sfreq <= 100_000):
            raise ConfigError(f"SignalSpec.sfreq must be in (0, 100000] Hz, got {self.sfreq!r}.")
        if not (0 < self.window_s <= 3600):
            raise ConfigError(f"SignalSpec.window_s must be in (0, 3600] s, got {self.window_s!r}.")

    @property
    def n_times(self) -> int:
        """Samples per window at ``sfreq``."""
        return int(round(self.window_s * self.sfreq))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ch_names"] = list(self.ch_names) if self.ch_names is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SignalSpec":
        d = dict(d)
        if d.get("ch_names") is not None:
            d["ch_names"] = tuple(d["ch_names"])
        return cls(**d)
