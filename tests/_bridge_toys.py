"""Toy encoders and paired data for bridge/training/jobs tests (no registry needed).

``tokens`` encoder: transformer-like, stages in (n_tokens, width) layout.
``channels`` encoder: conv-like, stages in (width, n_tokens) layout.
``make_encoder(name, device=None, ch_names=None)`` mirrors ``registry.load_encoder`` for job tests;
``TOY_SLEEP_S`` (env) adds a pause to every forward pass of the last stage, to make jobs slow.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

from bioxbridge_core.models.base import SequentialAdapter, Stage
from bioxbridge_core.spec import SignalSpec


class Patchify(nn.Module):
    def __init__(self, patch: int, width: int) -> None:
        super().__init__()
        self.patch, self.proj = patch, nn.Linear(patch, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T) -> (B, T/patch, width)
        b, _, t = x.shape
        return self.proj(x.reshape(b, t // self.patch, self.patch))


class Sleepy(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pause = float(os.environ.get("TOY_SLEEP_S", "0") or 0)
        if pause > 0:
            time.sleep(pause)
        return self.inner(x)


class Boom(Exception):
    """Raised by patched methods to prove they were not called."""


def tokens_encoder(seed: int = 0, *, width: int = 16) -> SequentialAdapter:
    torch.manual_seed(seed)
    spec = SignalSpec("ECG", sfreq=50.0, window_s=2.0, n_chans=1)

    def block():
        return nn.TransformerEncoderLayer(width, 2, dim_feedforward=2 * width, dropout=0.1, batch_first=True)

    stages = [
        Stage("embed", Patchify(10, width), "channels", "tokens"),
        Stage("blocks.0", block(), "tokens", "tokens"),
        Stage("blocks.1", block(), "tokens", "tokens"),
        Stage("blocks.2", Sleepy(block()), "tokens", "tokens"),
    ]
    return SequentialAdapter(spec, stages, name="toy:tokens").freeze()


def channels_encoder(seed: int = 1) -> SequentialAdapter:
    torch.manual_seed(seed)
    spec = SignalSpec("PPG", sfreq=25.0, window_s=2.0, n_chans=1)
    stages = [
        Stage("stem", nn.Sequential(nn.Conv1d(1, 8, 5, stride=2, padding=2), nn.ReLU()), "channels", "channels"),
        Stage("layer1", nn.Sequential(nn.Conv1d(8, 12, 3, padding=1), nn.BatchNorm1d(12), nn.ReLU()),
              "channels", "channels"),
        Stage("layer2", Sleepy(nn.Sequential(nn.Conv1d(12, 12, 3, padding=1), nn.Tanh())), "channels", "channels"),
    ]
    return SequentialAdapter(spec, stages, name="toy:channels").freeze()


def make_encoder(name: str, *, device=None, ch_names=None, pretrained: bool = True) -> SequentialAdapter:
    enc = {"toy:tokens": tokens_encoder, "toy:channels": channels_encoder}[name]()
    return enc.to(device) if device is not None else enc


class ToyHead(nn.Module):
    """Mean-pool last-layer tokens (B, n_tokens, width) + Linear, like models.heads.TaskHead."""

    def __init__(self, width: int, label_names: list[str], seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.label_names = list(label_names)
        self.linear = nn.Linear(width, len(label_names))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(tokens.mean(dim=1))


def zscore(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-6)).astype(np.float32)


def paired_data(n: int = 48, *, n_subjects: int = 4, seed: int = 0):
    """Time-synchronised toy pairs: one latent oscillation seen at 50 Hz (old) and 25 Hz (new, distorted)."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.5, 4.0, size=(n, 1, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    amp2 = rng.uniform(0, 1, size=(n, 1, 1))
    t_old, t_new = np.arange(100) / 50.0, np.arange(50) / 25.0
    old = np.sin(2 * np.pi * f * t_old + phase) + amp2 * np.sin(4 * np.pi * f * t_old)
    new = np.tanh(np.sin(2 * np.pi * f * t_new + phase) + amp2 * np.sin(4 * np.pi * f * t_new))
    new = new + 0.05 * rng.standard_normal(new.shape)
    groups = np.repeat([f"s{i}" for i in range(n_subjects)], int(np.ceil(n / n_subjects)))[:n]
    labels = (f[:, 0, 0] > 2.25).astype(int)
    return zscore(old), zscore(new), groups, labels
