"""PaPaGei-S (Pillai, Spathis, Kawsar & Malekzadeh, ICLR 2025, "PaPaGei: Open Foundation Models for
Optical Physiological Signals") as an encoder adapter, loading the published ``papagei_s.pt``.

Written here from the authors' code (github.com/Nokia-Bell-Labs/papagei-foundation-model:
``models/resnet.py`` ``ResNet1DMoE``, ``linearprobing/utils.py``, ``README.md``,
``example_papagei.ipynb``) with their parameter names, so the published file loads strictly.

Checkpoint: ``papagei_s.pt`` (Zenodo record 13983110) is the ``ResNet1DMoE`` state dict saved
from a DDP-wrapped model, so every key starts with ``module.`` (their loader strips it; so does
this one). Wrappers (``{"state_dict": ...}``) and ``.safetensors`` are accepted. The two
mixture-of-experts regression heads (``expert_layers_1/2``, ``gating_network_1/2``) and, when
present, the ``projector`` are loaded strictly but not run.

Architecture (PaPaGei-S: ``base_filters=32, kernel_size=3, stride=2, n_block=18, n_classes=512,
n_experts=3``): a "same"-padded 1-D conv + BatchNorm + ReLU, 18 pre-activation residual blocks
(downsampling by 2 at every odd block, doubling the filters every 4 blocks: 32 ... 512), a final
BatchNorm + ReLU, then their embedding ``dense(mean over time)`` (512-d, what their README
extracts as ``outputs[0]``). Filters, kernel, block count, embedding size and experts are read
off the checkpoint; the conv stride (2) is not stored and is taken as published.

Input contract: one PPG channel at 125 Hz, z-scored per window (their pipeline: 0.5-12 Hz
Chebyshev band-pass, 10 s segments, z-score, resample to 125 Hz). Pre-trained on 10 s segments
(the default); the ResNet accepts any length, and 2-60 s are allowed here.

Stages: ``first_block_conv`` (conv + ``first_block_bn`` + ReLU), ``basicblock_list.0`` ...
``basicblock_list.{n_block-1}``, ``final_bn`` (+ ReLU), ``dense`` (the embedding layer applied at
every time step: its token mean equals their pooled embedding, since ``dense`` is linear).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import EncoderError
from ...spec import SignalSpec
from ..base import EncoderAdapter, Stage
from ._checkpoint import count_indexed, load_strict, read_state_dict, shape_of, strip_common_prefix
from ._inputs import check_names, resolve_window

log = logging.getLogger(__name__)

SFREQ_HZ = 125.0
WINDOW_S = 10.0
MIN_WINDOW_S = 2.0
MAX_WINDOW_S = 60.0
CHECKPOINT_HINT = ("papagei_s.pt from zenodo.org/records/13983110 (linked from "
                   "github.com/Nokia-Bell-Labs/papagei-foundation-model): the ResNet1DMoE state dict")

#: parameters of the published PaPaGei-S (ResNet1DMoE with 3 experts), heads included
PUBLISHED_PARAMS = 5_785_612


@dataclass(frozen=True)
class PaPaGeiConfig:
    """Hyper-parameters; defaults are PaPaGei-S (their README's ``model_config``)."""

    base_filters: int = 32
    kernel_size: int = 3
    stride: int = 2
    groups: int = 1
    n_block: int = 18
    n_classes: int = 512
    n_experts: int = 3
    downsample_gap: int = 2
    increasefilter_gap: int = 4
    use_projection: bool = False

    def block_channels(self) -> list[tuple[int, int, bool]]:
        """(in, out, downsample) per residual block, by their rule."""
        out = []
        for i in range(self.n_block):
            c_in = self.base_filters if i == 0 else int(self.base_filters * 2 ** ((i - 1) // self.increasefilter_gap))
            c_out = c_in * 2 if (i % self.increasefilter_gap == 0 and i != 0) else c_in
            out.append((c_in, c_out, i % self.downsample_gap == 1))
        return out


# -- modules (names as in models/resnet.py) ---------------------------------------------------------------
def _same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow-style 'same' padding (their MyConv1dPadSame / MyMaxPool1dPadSame)."""
    n = x.shape[-1]
    out = (n + stride - 1) // stride
    p = max(0, (out - 1) * stride + kernel - n)
    return F.pad(x, (p // 2, p - p // 2), "constant", 0.0)


class MyConv1dPadSame(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_same_pad(x, self.kernel_size, self.stride))


class MyMaxPool1dPadSame(nn.Module):
    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.max_pool = nn.MaxPool1d(kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.max_pool(_same_pad(x, self.kernel_size, 1))


class BasicBlock(nn.Module):
    """Pre-activation residual block; the identity is max-pooled when downsampling and zero-padded in
    channels when the block widens (as published)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int,
                 downsample: bool, *, is_first_block: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.downsample = downsample
        self.stride = stride if downsample else 1
        self.is_first_block = is_first_block
        self.bn1 = nn.BatchNorm1d(in_channels)  # present (and stored) even in the first block, where it is unused
        self.relu1 = nn.ReLU()
        self.do1 = nn.Dropout(p=0.5)
        self.conv1 = MyConv1dPadSame(in_channels, out_channels, kernel_size, self.stride, groups)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.relu2 = nn.ReLU()
        self.do2 = nn.Dropout(p=0.5)
        self.conv2 = MyConv1dPadSame(out_channels, out_channels, kernel_size, 1, groups)
        self.max_pool = MyMaxPool1dPadSame(kernel_size=self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if not self.is_first_block:
            out = self.do1(self.relu1(self.bn1(out)))
        out = self.conv1(out)
        out = self.conv2(self.do2(self.relu2(self.bn2(out))))
        identity = self.max_pool(x) if self.downsample else x
        if self.out_channels != self.in_channels:
            extra = self.out_channels - self.in_channels
            identity = F.pad(identity, (0, 0, extra // 2, extra - extra // 2), "constant", 0.0)
        return out + identity


class _FirstBlock(nn.Module):
    def __init__(self, adapter: "PaPaGeiAdapter") -> None:
        super().__init__()
        object.__setattr__(self, "_adapter", adapter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self._adapter
        return F.relu(a.first_block_bn(a.first_block_conv(x)))


class _FinalBlock(nn.Module):
    def __init__(self, adapter: "PaPaGeiAdapter") -> None:
        super().__init__()
        object.__setattr__(self, "_adapter", adapter)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self._adapter.final_bn(h))


class _Dense(nn.Module):
    """(B, C, T) channels -> (B, T, n_classes) tokens: the embedding layer at every time step."""

    def __init__(self, adapter: "PaPaGeiAdapter") -> None:
        super().__init__()
        object.__setattr__(self, "_adapter", adapter)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self._adapter.dense(h.transpose(1, 2))


class PaPaGeiAdapter(EncoderAdapter):
    """PaPaGei-S's ResNet1DMoE as stages (see module docstring).

    Parameters
    ----------
    cfg : hyper-parameters (``PaPaGeiConfig()`` = PaPaGei-S).
    ch_names : the one PPG channel's name (default ``("PPG",)``).
    window_s : window length, 2-60 s.
    """

    def __init__(self, cfg: PaPaGeiConfig = PaPaGeiConfig(), *, ch_names: Sequence[str] | None = None,
                 window_s: float | None = None, name: str = "papagei") -> None:
        names = check_names(("PPG",) if ch_names is None else ch_names, who=name)
        if len(names) != 1:
            raise EncoderError(f"{name}: PaPaGei reads one PPG channel; got {len(names)}: {list(names)}.")
        w = resolve_window(window_s, default_s=WINDOW_S, lo_s=MIN_WINDOW_S, hi_s=MAX_WINDOW_S, who=name)
        super().__init__(SignalSpec("PPG", SFREQ_HZ, w, n_chans=1, ch_names=names, min_window_s=MIN_WINDOW_S,
                                    max_window_s=MAX_WINDOW_S, normalisation="zscore-window", units="zscore"))
        self.config = cfg
        self.encoder_name = name
        self.first_block_conv = MyConv1dPadSame(1, cfg.base_filters, cfg.kernel_size, 1)
        self.first_block_bn = nn.BatchNorm1d(cfg.base_filters)
        self.first_block_relu = nn.ReLU()
        self.basicblock_list = nn.ModuleList([
            BasicBlock(c_in, c_out, cfg.kernel_size, cfg.stride, cfg.groups, down, is_first_block=(i == 0))
            for i, (c_in, c_out, down) in enumerate(cfg.block_channels())
        ])
        width = cfg.block_channels()[-1][1] if cfg.n_block else cfg.base_filters
        if cfg.use_projection:
            self.projector = nn.Sequential(nn.Linear(width, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 128))
        self.final_bn = nn.BatchNorm1d(width)
        self.final_relu = nn.ReLU()
        self.dense = nn.Linear(width, cfg.n_classes)
        self.expert_layers_1 = nn.ModuleList([
            nn.Sequential(nn.Linear(width, width // 2), nn.ReLU(), nn.Linear(width // 2, 1))
            for _ in range(cfg.n_experts)])
        self.gating_network_1 = nn.Sequential(nn.Linear(width, cfg.n_experts), nn.Softmax(dim=1))
        self.expert_layers_2 = nn.ModuleList([
            nn.Sequential(nn.Linear(width, width // 2), nn.ReLU(), nn.Dropout(0.3), nn.Linear(width // 2, 1))
            for _ in range(cfg.n_experts)])
        self.gating_network_2 = nn.Sequential(nn.Linear(width, cfg.n_experts), nn.Softmax(dim=1))
        object.__setattr__(self, "_first", _FirstBlock(self))
        object.__setattr__(self, "_final", _FinalBlock(self))
        object.__setattr__(self, "_dense", _Dense(self))

    def stages(self) -> Sequence[Stage]:
        out = [Stage("first_block_conv", self._first, "channels", "channels")]
        out += [Stage(f"basicblock_list.{i}", blk, "channels", "channels")
                for i, blk in enumerate(self.basicblock_list)]
        out.append(Stage("final_bn", self._final, "channels", "channels"))
        out.append(Stage("dense", self._dense, "channels", "tokens"))
        return out


# -- checkpoint -------------------------------------------------------------------------------------------
_PREFIXES = ("module.", "model.")


def config_from_state(state: Mapping[str, torch.Tensor]) -> PaPaGeiConfig:
    d0 = PaPaGeiConfig()
    first = shape_of(state, "first_block_conv.conv.weight")
    dense = shape_of(state, "dense.weight")
    return PaPaGeiConfig(
        base_filters=first[0] if first else d0.base_filters, kernel_size=first[2] if first else d0.kernel_size,
        n_block=count_indexed(state, "basicblock_list.") or d0.n_block,
        n_classes=dense[0] if dense else d0.n_classes,
        n_experts=count_indexed(state, "expert_layers_1.") or d0.n_experts,
        use_projection=any(k.startswith("projector.") for k in state))


def load_papagei(path: str | Path, *, ch_names: Sequence[str] | None = None, window_s: float | None = None,
                 name: str | None = None) -> PaPaGeiAdapter:
    """Build the PaPaGei-S adapter from ``papagei_s.pt`` (``module.`` prefixes stripped, loaded strictly).

    Raises
    ------
    EncoderError
        Missing/unreadable file, keys that do not match (listed), or a window outside 2-60 s.
    """
    who = name or f"papagei:{path}"
    state = strip_common_prefix(read_state_dict(path, who=who, what=CHECKPOINT_HINT), _PREFIXES)
    cfg = config_from_state(state)
    model = PaPaGeiAdapter(cfg, ch_names=ch_names, window_s=window_s, name=who)
    load_strict(model, state, who=who, path=path,
                hint="Expected PaPaGei-S's papagei_s.pt (a ResNet1DMoE state dict).")
    log.info("loaded PaPaGei from %s (%d parameters, %d blocks)", path, model.n_params(), cfg.n_block)
    return model


def papagei_spec(path: str | Path | None = None, *, ch_names: Sequence[str] | None = None,
                 window_s: float | None = None) -> SignalSpec:
    """Input contract without loading weights (the file, if given, must exist)."""
    from ._checkpoint import check_file

    who = f"papagei:{path}" if path is not None else "papagei"
    if path is not None:
        check_file(path, who=who, what=CHECKPOINT_HINT)
    names = check_names(("PPG",) if ch_names is None else ch_names, who=who)
    if len(names) != 1:
        raise EncoderError(f"{who}: PaPaGei reads one PPG channel; got {len(names)}: {list(names)}.")
    w = resolve_window(window_s, default_s=WINDOW_S, lo_s=MIN_WINDOW_S, hi_s=MAX_WINDOW_S, who=who)
    return SignalSpec("PPG", SFREQ_HZ, w, n_chans=1, ch_names=names, min_window_s=MIN_WINDOW_S,
                      max_window_s=MAX_WINDOW_S, normalisation="zscore-window", units="zscore")
