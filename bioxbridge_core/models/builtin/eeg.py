"""Built-in EEG encoder: channel-agnostic patch transformer in the style of LaBraM.

Input: any subset of standard 10-20 electrodes at 100 Hz, z-scored per window
and channel; any window of 2-60 s (default 10 s). Each channel is cut into
1 s patches (100 samples; a tail shorter than one patch is not used, so use
whole seconds); a small temporal conv encodes each patch into one token, plus
a linear projection of the patch's log power spectrum (1-50 Hz in 1 Hz bins,
as BIOT tokenises EEG by its spectrum: Yang et al. NeurIPS 2023; LaBraM's
tokenizer is trained to reconstruct the same Fourier amplitudes), so band
power is one linear map away from every token; to this a learned *electrode* embedding (indexed by the 10-20 name, so the
weights do not depend on the montage) and a learned *temporal* embedding
(patch index 0..59, one row per second up to the 60 s maximum) are added.
Pre-training samples window lengths across the whole range, so every row of
the temporal table is trained. Transformer blocks then attend over all
(channel, patch) tokens, ordered channel-major.

The montage is fixed when the encoder is built (``ch_names``); channel names
are matched with ``recording.eeg_position`` (``"EEG Fp1"`` -> ``FP1``); the
old/new names T3/T4/T5/T6 share the embedding of T7/T8/P7/P8 (and M1/M2 of
A1/A2). Without ``ch_names`` the 19 channels of the standard 10-20 montage
are assumed (``DEFAULT_MONTAGE``).

Stages (positions): ``embed`` (channels (n_chans, T) -> tokens
(n_chans * T/100, width)), ``blocks.0`` ... ``blocks.{depth-1}``, ``norm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ...data.channels import check_single_electrodes
from ...data.recording import EEG_1020, eeg_position
from ...errors import EncoderError
from ...spec import SignalSpec
from ..base import EncoderAdapter, Stage
from .layers import TransformerBlock, init_transformer_weights

DEFAULT_MONTAGE = ("FP1", "FP2", "F7", "F3", "FZ", "F4", "F8", "T3", "C3", "CZ", "C4", "T4",
                   "T5", "P3", "PZ", "P4", "T6", "O1", "O2")
_ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8", "M1": "A1", "M2": "A2"}


def electrode_index(position: str) -> int:
    """Row of the electrode embedding table for a 10-20 name (aliases share a row)."""
    return EEG_1020.index(_ALIASES.get(position, position))


def montage_positions(ch_names: Sequence[str]) -> tuple[str, ...]:
    """10-20 names for the given channel names; raises EncoderError naming unknown/duplicate ones."""
    if isinstance(ch_names, str) or len(ch_names) == 0:
        raise EncoderError(f"builtin:eeg needs a non-empty list of EEG channel names, got {ch_names!r}.")
    check_single_electrodes([str(c) for c in ch_names], "builtin:eeg")  # bipolar 'Fpz-Cz' is no electrode
    positions = [eeg_position(str(c)) for c in ch_names]
    unknown = [str(c) for c, p in zip(ch_names, positions) if p is None]
    if unknown:
        raise EncoderError(
            f"builtin:eeg: channel(s) {unknown} are not standard 10-20/10-10 electrodes "
            f"(known: {', '.join(EEG_1020)}). Rename them or leave them out."
        )
    seen: dict[int, str] = {}
    for c, p in zip(ch_names, positions):
        idx = electrode_index(p)
        if idx in seen:
            raise EncoderError(f"builtin:eeg: channels '{seen[idx]}' and '{c}' are the same electrode ({p}).")
        seen[idx] = str(c)
    return tuple(positions)  # type: ignore[arg-type]


def eeg_spec(ch_names: Sequence[str] | None = None, cfg: "EEGConfig | None" = None) -> SignalSpec:
    """Input contract of the EEG encoder for a montage (default: the 19 10-20 channels); no model built."""
    cfg = cfg or EEGConfig()
    positions = montage_positions(ch_names if ch_names is not None else DEFAULT_MONTAGE)
    return SignalSpec("EEG", cfg.sfreq, cfg.window_s, n_chans=len(positions), ch_names=positions,
                      min_window_s=cfg.min_window_s, max_window_s=cfg.max_window_s)


@dataclass(frozen=True)
class EEGConfig:
    """Sizes of the built-in EEG encoder."""

    sfreq: float = 100.0
    window_s: float = 10.0
    min_window_s: float = 2.0
    max_window_s: float = 60.0
    patch_samples: int = 100
    max_patches: int = 60
    width: int = 128
    depth: int = 6
    n_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.1


class PatchEmbed(nn.Module):
    """(B, C, T) -> (B, C * T/patch, width): temporal conv per patch + electrode + time embeddings."""

    def __init__(self, cfg: EEGConfig, electrodes: Sequence[int]) -> None:
        super().__init__()
        if cfg.max_patches * cfg.patch_samples < cfg.max_window_s * cfg.sfreq:
            raise EncoderError(f"EEGConfig: max_patches={cfg.max_patches} of {cfg.patch_samples} samples do "
                               f"not cover max_window_s={cfg.max_window_s:g} s at {cfg.sfreq:g} Hz.")
        self.patch_samples = cfg.patch_samples
        self.conv = nn.Sequential(
            nn.Conv1d(1, 16, 9, stride=4, padding=4), nn.GroupNorm(4, 16), nn.GELU(),
            nn.Conv1d(16, 16, 5, stride=2, padding=2), nn.GroupNorm(4, 16), nn.GELU(),
        )
        with torch.no_grad():
            n_out = self.conv(torch.zeros(1, 1, cfg.patch_samples)).numel()
        self.proj = nn.Linear(n_out, cfg.width)
        self.spec_proj = nn.Linear(cfg.patch_samples // 2, cfg.width)  # rFFT bins 1..patch/2
        self.electrode_embed = nn.Embedding(len(EEG_1020), cfg.width)
        self.time_embed = nn.Embedding(cfg.max_patches, cfg.width)
        self.register_buffer("electrodes", torch.as_tensor(list(electrodes), dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        n_patch = t // self.patch_samples
        if n_patch == 0 or n_patch > self.time_embed.num_embeddings:
            raise RuntimeError(f"{t} samples give {n_patch} patches of {self.patch_samples}; "
                               f"1..{self.time_embed.num_embeddings} patches (seconds) are supported")
        patches = x[:, :, : n_patch * self.patch_samples].reshape(b * c * n_patch, 1, self.patch_samples)
        power = torch.fft.rfft(patches[:, 0], dim=-1).abs().pow(2)[:, 1:] / self.patch_samples
        tokens = self.proj(self.conv(patches).flatten(1)) + self.spec_proj(torch.log(power + 1e-6))
        tokens = tokens.reshape(b, c, n_patch, -1)
        tokens = (tokens + self.electrode_embed(self.electrodes)[None, :, None, :]
                  + self.time_embed.weight[:n_patch][None, None, :, :])
        return tokens.reshape(b, c * n_patch, -1)


class EEGEncoder(EncoderAdapter):
    """Channel-agnostic EEG patch transformer (see module docstring)."""

    def __init__(self, ch_names: Sequence[str] | None = None, config: EEGConfig | None = None) -> None:
        cfg = config or EEGConfig()
        positions = montage_positions(ch_names if ch_names is not None else DEFAULT_MONTAGE)
        super().__init__(eeg_spec(positions, cfg))
        self.config = cfg
        self.embed = PatchEmbed(cfg, [electrode_index(p) for p in positions])
        self.blocks = nn.ModuleList(
            [TransformerBlock(cfg.width, cfg.n_heads, mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout)
             for _ in range(cfg.depth)]
        )
        self.norm = nn.LayerNorm(cfg.width)
        init_transformer_weights(self)
        nn.init.trunc_normal_(self.embed.electrode_embed.weight, std=0.02)
        nn.init.trunc_normal_(self.embed.time_embed.weight, std=0.02)
        self.encoder_name = "builtin:eeg"

    def stages(self) -> Sequence[Stage]:
        return ([Stage("embed", self.embed, "channels", "tokens")]
                + [Stage(f"blocks.{i}", b, "tokens", "tokens") for i, b in enumerate(self.blocks)]
                + [Stage("norm", self.norm, "tokens", "tokens")])
