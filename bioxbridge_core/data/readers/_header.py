"""What a file holds, without its samples: channels with their own rates, units, types and flags.

``RecordingHeader`` is what ``read_header`` returns for every format and what
the readers use to pick channels *before* assembling a signal: a file whose
channels have different rates (PSG EDF, WFDB with several samples per frame)
reads fine when the requested channels share a rate (``resolve_channels``).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Sequence

from ..._check import suggest
from ...errors import RecordingError
from ..channels import is_bipolar
from ..recording import CH_TYPES, infer_ch_type


@dataclass
class ChannelInfo:
    """One channel as its file describes it.

    name : label (decoded; see ``flags`` when the header text was not ASCII).
    sfreq : this channel's own sampling rate in Hz.
    unit : normalised physical unit (``'uV'``, ``'mV'``, ``'NU'``; ``''`` when none).
    type : modality guessed from the name (one of ``CH_TYPES``).
    n_samples : samples of this channel in the file, when known without reading it.
    problems : reasons the channel cannot be read (a degenerate header range...), each naming
        the header field; reading it raises RecordingError with the first one.
    flags : notes that do not stop reading (``'bipolar derivation'``, ``'label not ASCII'``...).
    """

    name: str
    sfreq: float
    unit: str = ""
    type: str = "other"
    n_samples: int | None = None
    problems: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"name": self.name, "sfreq": self.sfreq, "unit": self.unit, "type": self.type,
                "n_samples": self.n_samples, "usable": self.usable, "problems": list(self.problems),
                "flags": list(self.flags)}


@dataclass
class RecordingHeader:
    """A file's channels and timing, read without loading samples (``read_header``).

    source : the file (for messages). format : ``'EDF'``, ``'EDF+C'``, ``'EDF+D'``, ``'BDF+C'``,
    ``'WFDB'``, ``'WFDB multi-segment'``, ``'CSV'``, ``'NPZ'``... channels : one ``ChannelInfo``
    each, in file order. start_time : as ``Recording.start_time`` (same rule). duration_s : from
    the first to past the last sample, gaps included, when known. gaps : as ``Recording.gaps``
    when known from the header (EDF+D record times, WFDB null segments). warnings : notes on the
    header as a whole.
    """

    source: str
    format: str
    channels: list[ChannelInfo]
    start_time: _dt.datetime | None = None
    duration_s: float | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ch_names(self) -> list[str]:
        return [c.name for c in self.channels]

    def channel(self, name: str) -> ChannelInfo:
        return self.channels[self.ch_names.index(name)]

    def rates(self) -> dict[float, list[str]]:
        """Channel names grouped by sampling rate, fastest first."""
        groups: dict[float, list[str]] = {}
        for c in self.channels:
            groups.setdefault(c.sfreq, []).append(c.name)
        return dict(sorted(groups.items(), key=lambda kv: -kv[0]))

    @property
    def mixed_rates(self) -> bool:
        return len(self.rates()) > 1

    def rate_listing(self) -> str:
        """``'256 Hz: EEG Fp1, EEG Fp2; 512 Hz: ECG'`` style text (fastest first)."""
        return "; ".join(f"{r:g} Hz: {', '.join(names)}" for r, names in self.rates().items())

    def summary(self) -> dict:
        """JSON-ready description (``inspect --header``)."""
        rates = self.rates()
        return {
            "source": self.source,
            "format": self.format,
            "sfreq": next(iter(rates)) if len(rates) == 1 else None,
            "rates": {f"{r:g}": names for r, names in rates.items()},
            "duration_s": None if self.duration_s is None else round(self.duration_s, 6),
            "start_time": self.start_time.isoformat() if self.start_time else None,
            "channels": [c.to_dict() for c in self.channels],
            "gaps": [{"onset_s": round(o, 6), "duration_s": round(d, 6)} for o, d in self.gaps],
            "warnings": list(self.warnings),
        }


def channel_flags(name: str) -> list[str]:
    """Notes every reader adds from a channel's name alone."""
    return ["bipolar derivation"] if is_bipolar(name) else []


def split_channels(channels) -> list[str] | str | None:
    """``"A;B"`` -> ``['A', 'B']``; a single name or modality stays a string; None stays None."""
    if isinstance(channels, str):
        if ";" in channels:
            return [c for c in (s.strip() for s in channels.split(";")) if c]
        return channels
    if channels is None:
        return None
    return [str(c) for c in channels]


def resolve_channels(header: RecordingHeader, channels, *, where: str) -> list[str]:
    """Channel names of ``header`` to read for ``channels``, checked to share one rate and be usable.

    ``channels`` : None (all channels), names (exact, else case-insensitive), ``"A;B"``, or a
    modality such as ``'ECG'`` (every channel of that type, unless a channel has that name).
    Raises RecordingError naming ``where`` when a name is missing, when the chosen channels have
    different rates (listing each with its rate), or when a chosen channel is unusable (naming
    the header field).
    """
    names = header.ch_names
    if not names:
        raise RecordingError(f"{where}: the file holds no signal channels.")
    channels = split_channels(channels)
    if channels is None:
        wanted = list(names)
    elif isinstance(channels, str) and channels in CH_TYPES and channels not in names \
            and channels.lower() not in [n.lower() for n in names]:
        wanted = [c.name for c in header.channels if (c.type or infer_ch_type(c.name)) == channels]
        if not wanted:
            types = ", ".join(f"{c.name} ({c.type})" for c in header.channels)
            raise RecordingError(f"{where} has no {channels} channel. Channels: {types}.")
    else:
        wanted = []
        for c in ([channels] if isinstance(channels, str) else channels):
            wanted.append(_find(names, c, where))
        if not wanted:
            raise RecordingError(f"{where}: no channels were given to pick.")
    chosen = [header.channel(n) for n in dict.fromkeys(wanted)]
    rates = {c.sfreq for c in chosen}
    if len(rates) > 1:
        if channels is None:
            raise RecordingError(
                f"{where}: its signals have different sampling rates ({header.rate_listing()}). "
                "Readers never resample: pick channels that share one rate (channels=, or --channels in "
                "the command line).")
        listing = ", ".join(f"'{c.name}' ({c.sfreq:g} Hz)" for c in chosen)
        raise RecordingError(
            f"{where}: the channels {listing} have different sampling rates; readers never resample. "
            "Read channels of each rate separately (e.g. one side of a manifest row per rate).")
    bad = [c for c in chosen if c.problems]
    if bad:
        what = "; ".join(f"channel '{c.name}': {c.problems[0]}" for c in bad)
        others = [x.name for x in header.channels if x.usable and x.sfreq == bad[0].sfreq]
        hint = f" Pick other channels (usable: {', '.join(others)})." if others and channels is None else ""
        raise RecordingError(f"{where}: cannot be used -- {what}.{hint}")
    return wanted


def _find(names: Sequence[str], name: str, where: str) -> str:
    if name in names:
        return name
    low = [n.lower() for n in names]
    if low.count(str(name).lower()) == 1:
        return names[low.index(str(name).lower())]
    avail = ", ".join(repr(c) for c in names)
    raise RecordingError(f"Channel '{name}' not in {where}. Available: {avail}.{suggest(name, list(names))}")
