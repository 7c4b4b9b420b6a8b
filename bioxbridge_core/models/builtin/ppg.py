"""Built-in PPG encoder: a 1-D ResNet (as in PaPaGei and most PPG models).

Input: one channel at 50 Hz, z-scored per window; any window of 2-60 s
(default 10 s = 500 samples). A stem conv (stride 2) then four residual
stages of two basic blocks each, widths 32 -> 64 -> 128 -> 256, stages 2-4
downsampling by 2 (500 -> 250 -> 250 -> 125 -> 63 -> 32 time steps at 10 s;
7 at 2 s, 188 at 60 s). Fully convolutional, so every length in the range
uses the same weights (pre-training samples lengths across the range).

Stages (positions), all in layout ``"channels"`` (width, time): ``stem``,
``layer1.0``, ``layer1.1``, ``layer2.0``, ..., ``layer4.1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import nn

from ...spec import SignalSpec
from ..base import EncoderAdapter, Stage
from .layers import BasicBlock1d


@dataclass(frozen=True)
class PPGConfig:
    """Sizes of the built-in PPG encoder."""

    sfreq: float = 50.0
    window_s: float = 10.0
    min_window_s: float = 2.0
    max_window_s: float = 60.0
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks_per_stage: int = 2
    kernel: int = 5


def ppg_spec(cfg: PPGConfig | None = None) -> SignalSpec:
    """Input contract of the PPG encoder (no model built)."""
    cfg = cfg or PPGConfig()
    return SignalSpec("PPG", cfg.sfreq, cfg.window_s, n_chans=1, min_window_s=cfg.min_window_s,
                      max_window_s=cfg.max_window_s)


class PPGEncoder(EncoderAdapter):
    """1-D ResNet for single-channel PPG (see module docstring)."""

    def __init__(self, config: PPGConfig | None = None) -> None:
        cfg = config or PPGConfig()
        super().__init__(ppg_spec(cfg))
        self.config = cfg
        self.stem = nn.Sequential(
            nn.Conv1d(1, cfg.widths[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm1d(cfg.widths[0]),
            nn.ReLU(),
        )
        in_ch = cfg.widths[0]
        for i, width in enumerate(cfg.widths):
            blocks = []
            for j in range(cfg.blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock1d(in_ch, width, stride=stride, kernel=cfg.kernel))
                in_ch = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        self.encoder_name = "builtin:ppg"

    def stages(self) -> Sequence[Stage]:
        out = [Stage("stem", self.stem, "channels", "channels")]
        for i in range(len(self.config.widths)):
            layer = getattr(self, f"layer{i + 1}")
            out += [Stage(f"layer{i + 1}.{j}", blk, "channels", "channels") for j, blk in enumerate(layer)]
        return out
