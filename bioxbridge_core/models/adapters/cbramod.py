"""CBraMod (Wang et al., ICLR 2025, "CBraMod: A Criss-Cross Brain Foundation Model for EEG Decoding")
as an encoder adapter, loading the published ``pretrained_weights.pth``.

Written here from the authors' code (github.com/wjq-learning/CBraMod: ``models/cbramod.py``,
``models/criss_cross_transformer.py``, ``pretrain_trainer.py``, ``datasets/*``) with their
parameter names, so the published file loads strictly.

Checkpoint: ``pretrained_weights.pth`` (Hugging Face ``weighting666/CBraMod``) is the plain
``CBraMod`` state dict (their README: ``model.load_state_dict(torch.load(...))``). DDP
``module.``/``backbone.`` prefixes, ``{"state_dict": ...}`` wrappers and ``.safetensors`` are
accepted. The reconstruction head ``proj_out`` is part of the file and is loaded (strictly) but
not run: downstream they set ``proj_out = nn.Identity()`` and read the encoder output.

Architecture (width 200, 12 criss-cross layers, 8 heads, FF 800): each channel is cut into 1 s
patches of 200 samples; ``patch_embedding`` = a conv stack (``proj_in``: 25 filters, 49/stride 25,
then 3 and 3, GroupNorm + GELU, giving 25 x 8 = 200 features) + the patch's |rFFT| (101 bins,
``norm="forward"``) through ``spectral_proj``, then an asymmetric conditional positional encoding
(a depth-wise 19 x 7 conv over the channel x patch grid, added). Each layer (pre-norm): the first
half of the features attends across channels at each patch (``self_attn_s``), the second half
across patches of each channel (``self_attn_t``); then a GELU feed-forward. Depth and FF width are
read off the checkpoint; the width is fixed at 200 by the patch embedding, heads are not stored
(8 as published).

Input contract: EEG at 200 Hz in microvolts; the adapter divides by 100 (their ``pretrain_trainer``
and datasets feed ``x / 100``, i.e. units of 100 µV) and applies no other normalisation
(``normalisation="none"``). Their pre-training pre-processing: 0.3-75 Hz band-pass, 60 Hz notch,
200 Hz, 30 s samples of the 19 TUEG channels (``TUEG_19`` order, the default ``ch_names``).
The model has no channel table: any channels work, but their *order* feeds the 19 x 7
positional conv, so keep a consistent, spatially sensible order. Windows of 1-30 s in whole
seconds (default 10 s, as their TUAB fine-tuning; 30 s as pre-trained).

Stages: ``patch_embedding``, ``encoder.layers.0`` ... ``encoder.layers.{depth-1}``; tokens are the
``(n_chans * n_patches, 200)`` patch embeddings, channel after channel.
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
from ._inputs import TUEG_19, check_names, n_patches, resolve_window

log = logging.getLogger(__name__)

SFREQ_HZ = 200.0
PATCH = 200
WINDOW_S = 10.0
MIN_WINDOW_S = 1.0
MAX_WINDOW_S = 30.0
CHECKPOINT_HINT = ("pretrained_weights.pth from huggingface.co/weighting666/CBraMod (linked from "
                   "github.com/wjq-learning/CBraMod): the CBraMod state dict")

#: parameters of the published model (4,883,800 in the encoder + 40,200 in the unused proj_out head)
PUBLISHED_PARAMS = 4_924_000


@dataclass(frozen=True)
class CBraModConfig:
    """Hyper-parameters; defaults are the published CBraMod."""

    d_model: int = 200
    dim_feedforward: int = 800
    n_layer: int = 12
    nhead: int = 8
    out_dim: int = 200

    def __post_init__(self) -> None:
        if self.d_model != 200:
            raise EncoderError(f"cbramod: the patch embedding gives 200 features (25 filters x 8 steps); "
                               f"d_model={self.d_model} cannot be built.")
        if (self.d_model // 2) % (self.nhead // 2):
            raise EncoderError(f"cbramod: {self.d_model // 2} features per branch not divisible by "
                               f"{self.nhead // 2} heads.")


# -- modules (names as in models/cbramod.py and models/criss_cross_transformer.py) ----------------------
class PatchEmbedding(nn.Module):
    """(B, C, S, 200) patches -> (B, C, S, d_model): conv features + spectrum + conditional positions."""

    def __init__(self, d_model: int = 200, in_dim: int = PATCH) -> None:
        super().__init__()
        self.d_model = d_model
        self.positional_encoding = nn.Sequential(
            nn.Conv2d(d_model, d_model, kernel_size=(19, 7), stride=(1, 1), padding=(9, 3), groups=d_model))
        self.mask_encoding = nn.Parameter(torch.zeros(in_dim), requires_grad=False)  # used only when masking
        self.proj_in = nn.Sequential(
            nn.Conv2d(1, 25, kernel_size=(1, 49), stride=(1, 25), padding=(0, 24)), nn.GroupNorm(5, 25), nn.GELU(),
            nn.Conv2d(25, 25, kernel_size=(1, 3), stride=(1, 1), padding=(0, 1)), nn.GroupNorm(5, 25), nn.GELU(),
            nn.Conv2d(25, 25, kernel_size=(1, 3), stride=(1, 1), padding=(0, 1)), nn.GroupNorm(5, 25), nn.GELU(),
        )
        self.spectral_proj = nn.Sequential(nn.Linear(in_dim // 2 + 1, d_model), nn.Dropout(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, s, p = x.shape
        flat = x.reshape(b, 1, c * s, p)
        emb = self.proj_in(flat)  # (B, 25, C*S, 8)
        emb = emb.permute(0, 2, 1, 3).reshape(b, c, s, self.d_model)  # features ordered (filter, step)
        spectral = torch.fft.rfft(flat.reshape(b * c * s, p), dim=-1, norm="forward").abs()
        emb = emb + self.spectral_proj(spectral.reshape(b, c, s, -1))
        pos = self.positional_encoding(emb.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return emb + pos


class TransformerEncoderLayer(nn.Module):
    """Criss-cross pre-norm layer: spatial attention on the first half of the features, temporal on the second."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn_s = nn.MultiheadAttention(d_model // 2, nhead // 2, dropout=dropout, batch_first=True)
        self.self_attn_t = nn.MultiheadAttention(d_model // 2, nhead // 2, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=1e-5)
        self.norm2 = nn.LayerNorm(d_model, eps=1e-5)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _criss_cross(self, x: torch.Tensor) -> torch.Tensor:
        b, c, s, d = x.shape
        half = d // 2
        xs = x[..., :half].transpose(1, 2).reshape(b * s, c, half)  # across channels, per patch
        xt = x[..., half:].reshape(b * c, s, half)  # across patches, per channel
        xs = self.self_attn_s(xs, xs, xs, need_weights=False)[0].reshape(b, s, c, half).transpose(1, 2)
        xt = self.self_attn_t(xt, xt, xt, need_weights=False)[0].reshape(b, c, s, half)
        return self.dropout1(torch.cat((xs, xt), dim=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._criss_cross(self.norm1(x))
        return x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x))))))


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: CBraModConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList([TransformerEncoderLayer(cfg.d_model, cfg.nhead, cfg.dim_feedforward)
                                     for _ in range(cfg.n_layer)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class _Grid(nn.Module):
    """Run a (B, C, S, D) module on (B, C*S, D) tokens (C fixed by the montage)."""

    def __init__(self, fn: nn.Module, adapter: "CBraModAdapter") -> None:
        super().__init__()
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_adapter", adapter)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        c = self._adapter.spec.n_chans
        b, n, d = h.shape
        return self._fn(h.reshape(b, c, n // c, d)).reshape(b, n, d)


class _Embed(nn.Module):
    """Stage ``patch_embedding``: (B, C, T) in 100 µV -> (B, C * T/200, 200)."""

    def __init__(self, adapter: "CBraModAdapter") -> None:
        super().__init__()
        object.__setattr__(self, "_adapter", adapter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self._adapter
        b, c, t = x.shape
        if c != a.spec.n_chans:
            raise EncoderError(f"{a.encoder_name}: {c} channels given, the montage has {a.spec.n_chans}.")
        s = n_patches(t, PATCH, who=a.encoder_name, sfreq=SFREQ_HZ)
        return a.patch_embedding(x.reshape(b, c, s, PATCH)).flatten(1, 2)


class CBraModAdapter(EncoderAdapter):
    """CBraMod's encoder as stages (see module docstring).

    Parameters
    ----------
    cfg : hyper-parameters (``CBraModConfig()`` = the published model).
    ch_names : EEG channel names in input order (default ``TUEG_19``); any names, order matters.
    window_s : window length in whole seconds, 1-30 s.
    """

    def __init__(self, cfg: CBraModConfig = CBraModConfig(), *, ch_names: Sequence[str] | None = None,
                 window_s: float | None = None, name: str = "cbramod") -> None:
        names = check_names(TUEG_19 if ch_names is None else ch_names, who=name)
        w = resolve_window(window_s, default_s=WINDOW_S, lo_s=MIN_WINDOW_S, hi_s=MAX_WINDOW_S, who=name,
                           patch_s=PATCH / SFREQ_HZ)
        super().__init__(SignalSpec("EEG", SFREQ_HZ, w, n_chans=len(names), ch_names=names,
                                    min_window_s=MIN_WINDOW_S, max_window_s=MAX_WINDOW_S,
                                    normalisation="none", units="uV"))
        self.config = cfg
        self.encoder_name = name
        self.patch_embedding = PatchEmbedding(cfg.d_model)
        self.encoder = TransformerEncoder(cfg)
        self.proj_out = nn.Sequential(nn.Linear(cfg.d_model, cfg.out_dim))  # reconstruction head: loaded, not run
        object.__setattr__(self, "_embed", _Embed(self))
        object.__setattr__(self, "_layers", [_Grid(layer, self) for layer in self.encoder.layers])

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """µV -> units of 100 µV, as CBraMod was trained."""
        return x / 100.0

    def stages(self) -> Sequence[Stage]:
        out = [Stage("patch_embedding", self._embed, "channels", "tokens")]
        out += [Stage(f"encoder.layers.{i}", g, "tokens", "tokens") for i, g in enumerate(self._layers)]
        return out


# -- checkpoint -------------------------------------------------------------------------------------------
_PREFIXES = ("module.", "backbone.", "model.")


def config_from_state(state: Mapping[str, torch.Tensor]) -> CBraModConfig:
    d0 = CBraModConfig()
    l1 = shape_of(state, "encoder.layers.0.linear1.weight")
    out = shape_of(state, "proj_out.0.weight")
    return CBraModConfig(d_model=d0.d_model, dim_feedforward=l1[0] if l1 else d0.dim_feedforward,
                         n_layer=count_indexed(state, "encoder.layers.") or d0.n_layer, nhead=d0.nhead,
                         out_dim=out[0] if out else d0.out_dim)


def load_cbramod(path: str | Path, *, ch_names: Sequence[str] | None = None, window_s: float | None = None,
                 name: str | None = None) -> CBraModAdapter:
    """Build the CBraMod adapter from ``pretrained_weights.pth`` (loaded strictly).

    Raises
    ------
    EncoderError
        Missing/unreadable file, keys that do not match (listed), or a window outside 1-30 s /
        not whole seconds.
    """
    who = name or f"cbramod:{path}"
    state = strip_common_prefix(read_state_dict(path, who=who, what=CHECKPOINT_HINT), _PREFIXES)
    cfg = config_from_state(state)
    model = CBraModAdapter(cfg, ch_names=ch_names, window_s=window_s, name=who)
    load_strict(model, state, who=who, path=path,
                hint="Expected CBraMod's pretrained_weights.pth (the CBraMod state dict).")
    log.info("loaded CBraMod from %s (%d parameters, %d layers)", path, model.n_params(), cfg.n_layer)
    return model


def cbramod_spec(path: str | Path | None = None, *, ch_names: Sequence[str] | None = None,
                 window_s: float | None = None) -> SignalSpec:
    """Input contract without loading weights (the file, if given, must exist)."""
    from ._checkpoint import check_file

    who = f"cbramod:{path}" if path is not None else "cbramod"
    if path is not None:
        check_file(path, who=who, what=CHECKPOINT_HINT)
    names = check_names(TUEG_19 if ch_names is None else ch_names, who=who)
    w = resolve_window(window_s, default_s=WINDOW_S, lo_s=MIN_WINDOW_S, hi_s=MAX_WINDOW_S, who=who, patch_s=1.0)
    return SignalSpec("EEG", SFREQ_HZ, w, n_chans=len(names), ch_names=names, min_window_s=MIN_WINDOW_S,
                      max_window_s=MAX_WINDOW_S, normalisation="none", units="uV")
