"""Built-in ECG encoder: strided conv front-end + pre-norm transformer.

Input: one lead at 100 Hz, z-scored per window; any window of 2-60 s
(default 10 s = 1000 samples). The conv front-end (total stride 10, like
wav2vec/HuBERT feature extractors) turns the signal into one token per 0.1 s
(20 tokens at 2 s, 600 at 60 s); fixed sinusoidal positions are added, so
every length in the range uses the same weights (pre-training samples window
lengths across the whole range). Then pre-norm transformer blocks and a
final LayerNorm.

Stages (positions): ``embed`` (channels (1, T) -> tokens (T/10, width)),
``blocks.0`` ... ``blocks.{depth-1}`` (tokens -> tokens), ``norm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ...spec import SignalSpec
from ..base import EncoderAdapter, Stage
from .layers import ConvGNAct, TransformerBlock, init_transformer_weights, sinusoidal_positions


@dataclass(frozen=True)
class ECGConfig:
    """Sizes of the built-in ECG encoder."""

    sfreq: float = 100.0
    window_s: float = 10.0
    min_window_s: float = 2.0
    max_window_s: float = 60.0
    width: int = 128
    depth: int = 6
    n_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1


def ecg_spec(cfg: ECGConfig | None = None) -> SignalSpec:
    """Input contract of the ECG encoder (no model built)."""
    cfg = cfg or ECGConfig()
    return SignalSpec("ECG", cfg.sfreq, cfg.window_s, n_chans=1, min_window_s=cfg.min_window_s,
                      max_window_s=cfg.max_window_s)


class ConvTokenizer(nn.Module):
    """(B, 1, T) -> (B, T/10, width): three conv units (strides 2, 5, 1) plus sinusoidal positions."""

    def __init__(self, width: int, in_chans: int = 1) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            ConvGNAct(in_chans, 64, kernel=7, stride=2),
            ConvGNAct(64, 128, kernel=5, stride=5),
            ConvGNAct(128, width, kernel=3, stride=1),
        )
        self.proj = nn.Linear(width, width)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(self.convs(x).transpose(1, 2))
        return tokens + sinusoidal_positions(tokens.shape[1], self.width, device=tokens.device, dtype=tokens.dtype)


class ECGEncoder(EncoderAdapter):
    """Conv front-end + transformer for single-lead ECG (see module docstring)."""

    def __init__(self, config: ECGConfig | None = None) -> None:
        cfg = config or ECGConfig()
        super().__init__(ecg_spec(cfg))
        self.config = cfg
        self.embed = ConvTokenizer(cfg.width)
        self.blocks = nn.ModuleList(
            [TransformerBlock(cfg.width, cfg.n_heads, mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout)
             for _ in range(cfg.depth)]
        )
        self.norm = nn.LayerNorm(cfg.width)
        init_transformer_weights(self)
        self.encoder_name = "builtin:ecg"

    def stages(self) -> Sequence[Stage]:
        return ([Stage("embed", self.embed, "channels", "tokens")]
                + [Stage(f"blocks.{i}", b, "tokens", "tokens") for i, b in enumerate(self.blocks)]
                + [Stage("norm", self.norm, "tokens", "tokens")])
