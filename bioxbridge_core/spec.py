"""What an encoder needs as input: a leaf module shared by data and models."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

MODALITIES = ("ECG", "PPG", "EEG", "EMG", "EDA", "other")


@dataclass(frozen=True)
class SignalSpec:
    """Input contract of an encoder.

    Parameters
    ----------
    modality : one of ``MODALITIES``.
    sfreq : sampling rate in Hz the encoder runs at (windows are resampled to it).
    window_s : window length in seconds currently in use (the default one for a freshly loaded encoder).
    n_chans : number of channels, or ``None`` when any number works (channel-agnostic).
    ch_names : channel names it knows (e.g. 10-20 positions or bipolar derivations), ``None`` if names
        do not matter.
    min_window_s, max_window_s : the range of window lengths the encoder accepts (seconds, inclusive).
        ``None`` means exactly ``window_s`` (a fixed-length encoder).
    normalisation : the per-window normalisation its inputs are expected to have.
    units : what the encoder expects its input scaled to (``"zscore"`` after per-window normalisation,
        or a physical unit such as ``"uV"`` for models trained on raw amplitudes).

    Raises
    ------
    ConfigError
        For an unknown modality, an impossible rate, or a window outside its own range.
    """

    modality: str
    sfreq: float
    window_s: float
    n_chans: int | None = 1
    ch_names: tuple[str, ...] | None = None
    min_window_s: float | None = None
    max_window_s: float | None = None
    normalisation: str = "zscore-window"
    units: str = "zscore"

    def __post_init__(self) -> None:
        from .errors import ConfigError

        if self.modality not in MODALITIES:
            raise ConfigError(f"SignalSpec.modality must be one of {MODALITIES}, got {self.modality!r}.")
        if not (0 < self.sfreq <= 100_000):
            raise ConfigError(f"SignalSpec.sfreq must be in (0, 100000] Hz, got {self.sfreq!r}.")
        if not (0 < self.window_s <= 3600):
            raise ConfigError(f"SignalSpec.window_s must be in (0, 3600] s, got {self.window_s!r}.")
        lo, hi = self.window_range
        if not (0 < lo <= hi):
            raise ConfigError(f"SignalSpec window range [{lo}, {hi}] s is empty.")
        if not (lo - 1e-9 <= self.window_s <= hi + 1e-9):
            raise ConfigError(f"SignalSpec.window_s={self.window_s:g} s is outside its range {lo:g}-{hi:g} s.")

    @property
    def window_range(self) -> tuple[float, float]:
        """``(min_window_s, max_window_s)`` in seconds, inclusive."""
        lo = self.window_s if self.min_window_s is None else float(self.min_window_s)
        hi = self.window_s if self.max_window_s is None else float(self.max_window_s)
        return lo, hi

    @property
    def flexible_length(self) -> bool:
        """Whether window lengths other than ``window_s`` work."""
        lo, hi = self.window_range
        return hi - lo > 1e-9

    def accepts_window(self, window_s: float) -> bool:
        lo, hi = self.window_range
        return lo - 1e-9 <= float(window_s) <= hi + 1e-9

    def check_window(self, window_s: float, *, encoder: str | None = None) -> None:
        """Raise ``ConfigError`` (with the allowed range) when ``window_s`` is outside the range."""
        from .errors import ConfigError

        if not self.accepts_window(window_s):
            lo, hi = self.window_range
            who = f"encoder '{encoder}'" if encoder else f"the {self.modality} encoder"
            allowed = f"exactly {lo:g} s" if not self.flexible_length else f"{lo:g}-{hi:g} s"
            raise ConfigError(f"{who} accepts windows of {allowed}; {float(window_s):g} s was asked for.")

    def with_window(self, window_s: float, *, encoder: str | None = None) -> "SignalSpec":
        """This spec at another window length (checked against the range)."""
        self.check_window(window_s, encoder=encoder)
        return replace(self, window_s=float(window_s))

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
        if d.pop("flexible_length", None) and d.get("min_window_s") is None:
            # specs saved before window ranges existed: flexible meant "any length"
            d["min_window_s"], d["max_window_s"] = 1.0, 600.0
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})
