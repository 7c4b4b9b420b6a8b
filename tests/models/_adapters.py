"""Builders for every adapter kind the shared tests run over (random weights, tiny where possible)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bioxbridge_core.models.adapters.generic import GenericAdapter
from bioxbridge_core.spec import SignalSpec

ADAPTER_KINDS = ("builtin:ecg", "builtin:ppg", "builtin:eeg", "hubert-ecg", "generic-seq", "generic-hooks",
                 "labram", "biot", "cbramod", "papagei")


class Patchify(nn.Module):
    """(B, 1, T) -> (B, T/10, 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 16, 10, stride=10)

    def forward(self, x):
        return self.conv(x).transpose(1, 2)


class ChainNet(nn.Module):
    """Forward is exactly embed -> block0 -> block1 ... (sequential mode applies)."""

    def __init__(self, depth: int = 5) -> None:
        super().__init__()
        self.embed = Patchify()
        self.blocks = nn.ModuleList([nn.Sequential(nn.LayerNorm(16), nn.Linear(16, 16), nn.GELU())
                                     for _ in range(depth)])

    def forward(self, x):
        h = self.embed(x)
        for b in self.blocks:
            h = b(h)
        return h


class ScaledBlock(nn.Module):
    """A residual block that needs an extra argument (like a layer taking an attention mask)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(16, 16)

    def forward(self, h, scale):
        return h + scale * torch.tanh(self.lin(h))


class GluedNet(nn.Module):
    """Not a plain chain: glue between blocks (transpose, GELU), an extra argument, a final pooling."""

    def __init__(self, depth: int = 5) -> None:
        super().__init__()
        self.stem = nn.Conv1d(1, 16, 10, stride=10)
        self.blocks = nn.ModuleList([ScaledBlock() for _ in range(depth)])

    def forward(self, x):
        h = self.stem(x).transpose(1, 2)
        for b in self.blocks:
            h = torch.nn.functional.gelu(b(h, 0.5))
        return h.mean(dim=1)


def tiny_hubert_folder(root: Path) -> Path:
    """Save a tiny random HuBERT (save_pretrained layout) under ``root`` and return the folder."""
    from transformers import HubertConfig, HubertModel

    cfg = HubertConfig(hidden_size=32, num_hidden_layers=5, num_attention_heads=2, intermediate_size=64,
                       conv_dim=(16, 16, 16), conv_stride=(5, 2, 2), conv_kernel=(10, 3, 3),
                       num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    torch.manual_seed(0)
    folder = root / "hubert_tiny"
    HubertModel(cfg).save_pretrained(folder)
    return folder


def build(kind: str, tmp_path: Path):
    from bioxbridge_core.models.registry import load_encoder

    torch.manual_seed(0)
    spec = SignalSpec("ECG", 100.0, 2.0, n_chans=1)
    if kind.startswith("builtin:"):
        return load_encoder(kind, device="cpu", pretrained=False)
    if kind == "hubert-ecg":
        return load_encoder(f"hubert-ecg:{tiny_hubert_folder(tmp_path)}", device="cpu", ch_names=["I", "II"])
    if kind in ("labram", "biot", "cbramod", "papagei"):  # published layouts, small sizes (_fm_checkpoints)
        import importlib

        from _fm_checkpoints import TEST_WINDOW_S, write

        loader = getattr(importlib.import_module(f"bioxbridge_core.models.adapters.{kind}"), f"load_{kind}")
        return loader(write(kind, tmp_path), window_s=TEST_WINDOW_S[kind]).freeze()
    if kind == "generic-seq":
        return GenericAdapter(ChainNet(), [f"blocks.{i}" for i in range(5)], spec=spec, embed="embed",
                              name="generic-seq").freeze()
    if kind == "generic-hooks":
        layouts = {"stem": ("channels", "tokens"), **{f"blocks.{i}": ("tokens", "tokens") for i in range(5)}}
        return GenericAdapter(GluedNet(), [f"blocks.{i}" for i in range(5)], spec=spec, embed="stem",
                              layouts=layouts, name="generic-hooks").freeze()
    raise ValueError(kind)
