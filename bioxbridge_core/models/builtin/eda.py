"""Built-in EDA encoder: small conv front-end + pre-norm transformer at 4 Hz.

Input: one electrodermal-activity channel at 4 Hz (the Empatica E4 rate;
recordings at higher rates are low-passed at 1 Hz and resampled to 4 Hz by
the pipeline), z-scored per window; any window of 2-60 s (8-240 samples;
default 10 s = 40 samples like the other built-ins, although skin-conductance
responses rise over 1-3 s and recover over several seconds, so longer windows
such as 30 s show more of them).

The front-end keeps the time resolution a 4 Hz signal has: a stride-1 conv
(kernel 5 = 1.25 s), a stride-2 conv (one token per 0.5 s: 4 tokens at 2 s,
120 at 60 s) and a kernel-3 conv, then a linear projection and fixed
sinusoidal positions (any token count works with the same weights).
Pre-norm transformer blocks and a final LayerNorm follow, as in the ECG
encoder, so both read the same way in the bridge.

Stages (positions): ``embed`` (channels (1, T) -> tokens (ceil(T/2), width)),
``blocks.0`` ... ``blocks.{depth-1}``, ``norm``.
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
class EDAConfig:
    """Sizes of the built-in EDA encoder."""

    sfreq: float = 4.0
    window_s: float = 10.0
    min_window_s: float = 2.0
    max_window_s: float = 60.0
    width: int = 96
    depth: int = 4
    n_heads: int = 4
    mlp_ratio: float = 2.0
    dropout: float = 0.1


def eda_spec(cfg: EDAConfig | None = None) -> SignalSpec:
    """Input contract of the EDA encoder (no model built)."""
    cfg = cfg or EDAConfig()
    return SignalSpec("EDA", cfg.sfreq, cfg.window_s, n_chans=1, min_window_s=cfg.min_window_s,
                      max_window_s=cfg.max_window_s)


class SlowConvTokenizer(nn.Module):
    """(B, 1, T) -> (B, ceil(T/2), width): convs with strides 1, 2, 1 plus sinusoidal positions."""

    def __init__(self, width: int, in_chans: int = 1) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            ConvGNAct(in_chans, 32, kernel=5, stride=1),
            ConvGNAct(32, 64, kernel=3, stride=2),
            ConvGNAct(64, width, kernel=3, stride=1),
        )
        self.proj = nn.Linear(width, width)
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(self.convs(x).transpose(1, 2))
        return tokens + sinusoidal_positions(tokens.shape[1], self.width, device=tokens.device, dtype=tokens.dtype)


class EDAEncoder(EncoderAdapter):
    """Conv front-end + transformer for single-channel EDA at 4 Hz (see module docstring)."""

    def __init__(self, config: EDAConfig | None = None) -> None:
        cfg = config or EDAConfig()
        super().__init__(eda_spec(cfg))
        self.config = cfg
        self.embed = SlowConvTokenizer(cfg.width)
        self.blocks = nn.ModuleList(
            [TransformerBlock(cfg.width, cfg.n_heads, mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout)
             for _ in range(cfg.depth)]
        )
        self.norm = nn.LayerNorm(cfg.width)
        init_transformer_weights(self)
        self.encoder_name = "builtin:eda"

    def stages(self) -> Sequence[Stage]:
        return ([Stage("embed", self.embed, "channels", "tokens")]
                + [Stage(f"blocks.{i}", b, "tokens", "tokens") for i, b in enumerate(self.blocks)]
                + [Stage("norm", self.norm, "tokens", "tokens")])
