"""Building blocks shared by the built-in encoders.

Small, standard pieces: a pre-norm transformer block (ViT style), sinusoidal
positions, a conv + GroupNorm + GELU unit and a 1-D ResNet basic block.
Every block maps a batch to a batch of the same rank so that each can be a
stage of an ``EncoderAdapter``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def sinusoidal_positions(n_tokens: int, width: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed sine/cosine position table ``(n_tokens, width)`` (Vaswani et al. 2017); any length works."""
    pos = torch.arange(n_tokens, device=device, dtype=torch.float32)[:, None]
    half = width // 2
    freq = torch.exp(-math.log(10_000.0) * torch.arange(half, device=device, dtype=torch.float32) / max(half, 1))
    table = torch.zeros(n_tokens, width, device=device, dtype=torch.float32)
    table[:, 0:2 * half:2] = torch.sin(pos * freq)
    table[:, 1:2 * half:2] = torch.cos(pos * freq)
    return table.to(dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention over ``(B, N, width)`` using PyTorch's fused kernel."""

    def __init__(self, width: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if width % n_heads:
            raise ValueError(f"width {width} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=drop)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))``."""

    def __init__(self, width: int, n_heads: int, *, mlp_ratio: float = 4.0, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, n_heads, dropout)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, width), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class ConvGNAct(nn.Sequential):
    """Conv1d -> GroupNorm -> GELU with 'same'-style padding."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups_norm: int = 8) -> None:
        super().__init__(
            nn.Conv1d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.GroupNorm(min(groups_norm, out_ch), out_ch),
            nn.GELU(),
        )


class BasicBlock1d(nn.Module):
    """ResNet basic block (He et al. 2016) in 1-D: two convs, BatchNorm, identity or 1x1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int, *, stride: int = 1, kernel: int = 5) -> None:
        super().__init__()
        pad = kernel // 2
        self.conv1 = nn.Conv1d(in_ch, out_ch, kernel, stride=stride, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm1d(out_ch)
        self.conv2 = nn.Conv1d(out_ch, out_ch, kernel, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm1d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv1d(in_ch, out_ch, 1, stride=stride, bias=False),
                                          nn.BatchNorm1d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def init_transformer_weights(module: nn.Module) -> None:
    """ViT-style init: truncated normal (std 0.02) for linear layers, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
