"""Toy encoders with a planted answer for the alignment tests.

Windows are (B, 1, 128) and become 16 tokens of width 8. A stage that
multiplies by a zero-sum ±1 token pattern (a Walsh function) hides a constant
signal from mean pooling; multiplying by the same pattern again reveals it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bioxbridge_core.models.base import SequentialAdapter, Stage
from bioxbridge_core.spec import SignalSpec

N_TOKENS, WIDTH = 16, 8
SPEC = SignalSpec("other", sfreq=16.0, window_s=8.0, n_chans=1)


def walsh(k: int) -> torch.Tensor:
    """Zero-sum ±1 pattern over tokens (k = 1, 2, 3: period 2, 4, 8)."""
    period = 2 ** k
    t = torch.arange(N_TOKENS)
    return torch.where((t // (period // 2)) % 2 == 0, 1.0, -1.0)


class SignFlip(nn.Module):
    """Multiply each token by a fixed ±1 pattern; counts its calls."""

    def __init__(self, pattern: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("pattern", pattern.view(1, -1, 1).clone())
        self.calls = 0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return h * self.pattern


class TokenAdapter(SequentialAdapter):
    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], N_TOKENS, WIDTH)


def toy_encoder(patterns: list[int], *, prefix: str, name: str) -> TokenAdapter:
    stages = [Stage(f"{prefix}{i}", SignFlip(walsh(k)), "tokens", "tokens") for i, k in enumerate(patterns)]
    return TokenAdapter(SPEC, stages, name=name).freeze()


def planted_pair(n: int = 120, seed: int = 0) -> dict:
    """New model: only stage 'n1' output carries the label. Old model: only write position 'o2'
    receives (as input) an orthogonal mix of that feature."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    tokens = rng.standard_normal((n, N_TOKENS, WIDTH))
    tokens[:, :, 0] += 2.0 * y[:, None]
    q, _ = np.linalg.qr(rng.standard_normal((WIDTH, WIDTH)))
    x_new = tokens.reshape(n, 1, -1).astype(np.float32)
    x_old = (tokens @ q).reshape(n, 1, -1).astype(np.float32)
    new = toy_encoder([1, 1, 2, 3], prefix="n", name="toy-new")  # n1 = n0∘n0 reveals the signal
    old = toy_encoder([1, 1, 2, 3], prefix="o", name="toy-old")  # input of o2 = x_old
    groups = np.repeat(np.arange(6), n // 6 + 1)[:n].astype(str)
    return {"new": new, "old": old, "x_new": x_new, "x_old": x_old, "y": y, "groups": groups}


def forward_calls(enc: TokenAdapter) -> int:
    return sum(m.calls for m in enc.stage_modules)
