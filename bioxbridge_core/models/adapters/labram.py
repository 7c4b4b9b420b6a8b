"""LaBraM (Jiang, Zhao & Lu, ICLR 2024, "Large Brain Model for Learning Generic Representations with
Tremendous EEG Data in BCI") as an encoder adapter, loading the published ``labram-base.pth``.

Written here from the authors' code (github.com/935963004/LaBraM: ``modeling_pretrain.py``,
``modeling_finetune.py``, ``run_class_finetuning.py``, ``utils.py``), with their parameter names,
so the published checkpoint loads strictly. Not braindecode's ``Labram``: braindecode pulls
torchaudio, whose wheels pin one torch build.

Checkpoint: ``{"model": {"student.…": …, "lm_head.…": …, "projection_head.…": …}, "args": …}`` as
saved by their pre-training (``NeuralTransformerForMEM``). The ``student.`` encoder is kept; the
masked-modelling parts (``student.mask_token``, ``student.lm_head``, ``lm_head``,
``projection_head``) are dropped by name; any other key is an error. Their pickled ``args``
namespace is read under ``weights_only=True`` (see ``_checkpoint.SAFE_EXTRA_GLOBALS``).
A bare encoder state dict (no ``student.`` prefix), DDP ``module.`` prefixes and ``.safetensors``
files are accepted too.

Architecture (LaBraM-base: 12 blocks, width 200, 10 heads, ``TemporalConv`` with 8 channels,
layer-scale ``gamma_1/2``, q/k LayerNorm, no qkv bias, LayerNorm eps 1e-6): 1 s patches of
200 samples per channel are embedded by ``TemporalConv`` (conv 15/stride 8 -> 25 steps x 8
channels = 200); a ``cls_token`` is prepended; each channel's ``pos_embed`` row (looked up by
name in ``STANDARD_1020``, row 0 = cls) and each patch's ``time_embed`` row are added -- the
time embedding has 16 rows and is sliced to the window's patch count. Hyper-parameters are read
off the checkpoint's tensor shapes (width, depth, heads from the q-norm size, MLP width,
TemporalConv channels, table sizes).

Input contract (``SignalSpec``): EEG at 200 Hz, microvolts; the adapter divides by 100 (their
``engine_for_finetuning.py`` feeds ``samples / 100``, i.e. units of 100 µV) and applies no other
normalisation (``normalisation="none"``). Their pre-processing: 0.1-75 Hz band-pass, 50 Hz
notch, 200 Hz. Windows of 1-16 s in whole seconds (default 10 s, as their TUAB fine-tuning);
channels are any names in ``STANDARD_1020`` (default ``TUEG_19``), at most 128.

Stages: ``patch_embed`` (TemporalConv + cls + position/time embeddings), ``blocks.0`` ...
``blocks.{depth-1}``, ``norm`` (the student's final LayerNorm). Every stage returns all tokens,
``(1 + n_chans * n_patches, width)`` with the cls token first; the fine-tuning model's
``fc_norm``/``head`` are not part of the pre-trained checkpoint and are not built. The cls token
receives ``pos_embed`` row 0, as in their fine-tuning model.
"""

from __future__ import annotations

import fnmatch
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
from ._checkpoint import count_indexed, load_strict, read_state_dict, shape_of, split_prefix, strip_common_prefix
from ._inputs import TUEG_19, check_names, clean_electrode, n_patches, resolve_window

log = logging.getLogger(__name__)

SFREQ_HZ = 200.0
PATCH = 200
WINDOW_S = 10.0
MIN_WINDOW_S = 1.0
CHECKPOINT_HINT = ("labram-base.pth from github.com/935963004/LaBraM (checkpoints/): "
                   "{'model': {'student.…'}} as saved by their pre-training, or a .safetensors of it")

#: LaBraM's electrode table (their ``utils.standard_1020``): ``pos_embed`` row = index + 1
STANDARD_1020 = (
    "FP1", "FPZ", "FP2", "AF9", "AF7", "AF5", "AF3", "AF1", "AFZ", "AF2", "AF4", "AF6", "AF8", "AF10",
    "F9", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8", "F10",
    "FT9", "FT7", "FC5", "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "FT10",
    "T9", "T7", "C5", "C3", "C1", "CZ", "C2", "C4", "C6", "T8", "T10",
    "TP9", "TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "TP10",
    "P9", "P7", "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8", "P10",
    "PO9", "PO7", "PO5", "PO3", "PO1", "POZ", "PO2", "PO4", "PO6", "PO8", "PO10",
    "O1", "OZ", "O2", "O9", "CB1", "CB2",
    "IZ", "O10", "T3", "T5", "T4", "T6", "M1", "M2", "A1", "A2",
    "CFC1", "CFC2", "CFC3", "CFC4", "CFC5", "CFC6", "CFC7", "CFC8",
    "CCP1", "CCP2", "CCP3", "CCP4", "CCP5", "CCP6", "CCP7", "CCP8",
    "T1", "T2", "FTT9h", "TTP7h", "TPP9h", "FTT10h", "TPP8h", "TPP10h",
    "FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP2-F8", "F8-T8", "T8-P8", "P8-O2", "FP1-F3", "F3-C3", "C3-P3",
    "P3-O1", "FP2-F4", "F4-C4", "C4-P4", "P4-O2",
)
_INDEX = {n.upper(): i for i, n in enumerate(STANDARD_1020)}

#: keys of the masked-modelling heads in the published file (dropped, never loaded)
PRETRAINING_KEYS = ("mask_token", "lm_head.*")
OUTER_PRETRAINING_KEYS = ("lm_head.*", "projection_head.*")


@dataclass(frozen=True)
class LaBraMConfig:
    """Hyper-parameters; defaults are LaBraM-base (``labram_base_patch200_1600_8k_vocab``, 5.8 M)."""

    embed_dim: int = 200
    depth: int = 12
    num_heads: int = 10
    mlp_hidden: int = 800
    out_chans: int = 8
    qkv_bias: bool = False
    qk_norm: bool = True
    layer_scale: bool = True
    n_pos: int = 129
    n_time: int = 16

    def __post_init__(self) -> None:
        if self.out_chans % 4 or self.out_chans * 25 != self.embed_dim:
            raise EncoderError(f"labram: TemporalConv gives 25 x out_chans features, so out_chans={self.out_chans} "
                               f"does not fit embed_dim={self.embed_dim} (LaBraM-base: 8 and 200).")
        if self.embed_dim % self.num_heads:
            raise EncoderError(f"labram: embed_dim {self.embed_dim} is not divisible by {self.num_heads} heads.")


#: parameters of the published LaBraM-base encoder (student without its lm_head and mask token)
PUBLISHED_PARAMS = 5_819_936


# -- modules (names as in modeling_finetune.py / modeling_pretrain.py) ---------------------------------
class TemporalConv(nn.Module):
    """(B, N, 200) patches -> (B, N, 25 * out_chans): three conv/GroupNorm/GELU layers over time."""

    def __init__(self, out_chans: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, out_chans, kernel_size=(1, 15), stride=(1, 8), padding=(0, 7))
        self.gelu1 = nn.GELU()
        self.norm1 = nn.GroupNorm(4, out_chans)
        self.conv2 = nn.Conv2d(out_chans, out_chans, kernel_size=(1, 3), padding=(0, 1))
        self.gelu2 = nn.GELU()
        self.norm2 = nn.GroupNorm(4, out_chans)
        self.conv3 = nn.Conv2d(out_chans, out_chans, kernel_size=(1, 3), padding=(0, 1))
        self.norm3 = nn.GroupNorm(4, out_chans)
        self.gelu3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(1)  # (B, 1, N, 200)
        h = self.gelu1(self.norm1(self.conv1(h)))
        h = self.gelu2(self.norm2(self.conv2(h)))
        h = self.gelu3(self.norm3(self.conv3(h)))  # (B, C, N, 25)
        return h.permute(0, 2, 3, 1).flatten(2)  # features ordered (time step, conv channel)


class Attention(nn.Module):
    """Multi-head self-attention with optional q/v bias and per-head q/k LayerNorm."""

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool, qk_norm: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.q_norm = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else None
        self.k_norm = nn.LayerNorm(head_dim, eps=1e-6) if qk_norm else None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(head_dim)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block with LayerScale: ``x + g1 * attn(norm1(x))``, ``x + g2 * mlp(norm2(x))``."""

    def __init__(self, cfg: LaBraMConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, cfg.num_heads, qkv_bias=cfg.qkv_bias, qk_norm=cfg.qk_norm)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = Mlp(d, cfg.mlp_hidden)
        if cfg.layer_scale:
            self.gamma_1 = nn.Parameter(torch.ones(d))
            self.gamma_2 = nn.Parameter(torch.ones(d))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn(self.norm1(x))
        x = x + (a if self.gamma_1 is None else self.gamma_1 * a)
        m = self.mlp(self.norm2(x))
        return x + (m if self.gamma_2 is None else self.gamma_2 * m)


class _Embed(nn.Module):
    """Stage ``patch_embed``: (B, C, T) in 100 µV -> (B, 1 + C * T/200, width) tokens."""

    def __init__(self, adapter: "LaBraMAdapter") -> None:
        super().__init__()
        object.__setattr__(self, "_adapter", adapter)  # parameters stay registered on the adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self._adapter
        b, c, t = x.shape
        if c != len(a.input_chans) - 1:
            raise EncoderError(f"{a.encoder_name}: {c} channels given, the montage has {len(a.input_chans) - 1}.")
        n_t = n_patches(t, PATCH, who=a.encoder_name, sfreq=SFREQ_HZ, max_patches=a.time_embed.shape[1])
        tokens = a.patch_embed(x.reshape(b, c * n_t, PATCH))  # channel-major: channel i, patch j -> i * n_t + j
        pos = a.pos_embed[:, a.input_chans]  # (1, 1 + C, D): cls row then one row per channel
        pos_tokens = pos[:, 1:].unsqueeze(2).expand(-1, -1, n_t, -1).flatten(1, 2)
        time_tokens = a.time_embed[:, :n_t].unsqueeze(1).expand(-1, c, -1, -1).flatten(1, 2)
        cls = (a.cls_token + pos[:, :1]).expand(b, -1, -1)
        return torch.cat((cls, tokens + pos_tokens + time_tokens), dim=1)


class LaBraMAdapter(EncoderAdapter):
    """LaBraM's pre-trained student encoder as stages (see module docstring).

    Parameters
    ----------
    cfg : hyper-parameters (``LaBraMConfig()`` = LaBraM-base).
    ch_names : EEG channel names, each found in ``STANDARD_1020`` (``'EEG Fp1-REF'`` is read as FP1).
    window_s : window length in whole seconds, 1 to the time-embedding size (16 s for LaBraM-base).
    """

    def __init__(self, cfg: LaBraMConfig = LaBraMConfig(), *, ch_names: Sequence[str] | None = None,
                 window_s: float | None = None, name: str = "labram") -> None:
        names = check_names(TUEG_19 if ch_names is None else ch_names, who=name)
        rows = [_pos_row(n, who=name) for n in names]
        if max(rows) >= cfg.n_pos:
            raise EncoderError(f"{name}: the checkpoint's pos_embed has {cfg.n_pos} rows; channel "
                               f"{names[rows.index(max(rows))]} needs row {max(rows)}.")
        w = resolve_window(window_s, default_s=min(WINDOW_S, float(cfg.n_time)), lo_s=MIN_WINDOW_S,
                           hi_s=float(cfg.n_time), who=name, patch_s=PATCH / SFREQ_HZ)
        super().__init__(SignalSpec("EEG", SFREQ_HZ, w, n_chans=len(names), ch_names=names,
                                    min_window_s=MIN_WINDOW_S, max_window_s=float(cfg.n_time),
                                    normalisation="none", units="uV"))
        self.config = cfg
        self.encoder_name = name
        d = cfg.embed_dim
        self.patch_embed = TemporalConv(cfg.out_chans)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.n_pos, d))
        self.time_embed = nn.Parameter(torch.zeros(1, cfg.n_time, d))
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.register_buffer("input_chans", torch.tensor([0] + rows, dtype=torch.long), persistent=False)
        for p in (self.cls_token, self.pos_embed, self.time_embed):
            nn.init.trunc_normal_(p, std=0.02)
        object.__setattr__(self, "_embed", _Embed(self))  # a view on the parameters above, not a submodule

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """µV -> units of 100 µV, as LaBraM was trained."""
        return x / 100.0

    def stages(self) -> Sequence[Stage]:
        out = [Stage("patch_embed", self._embed, "channels", "tokens")]
        out += [Stage(f"blocks.{i}", blk, "tokens", "tokens") for i, blk in enumerate(self.blocks)]
        out.append(Stage("norm", self.norm, "tokens", "tokens"))
        return out


def _pos_row(name: str, *, who: str) -> int:
    for candidate in (str(name).strip().upper(), clean_electrode(name)):
        if candidate in _INDEX:
            return _INDEX[candidate] + 1
    raise EncoderError(f"{who}: channel '{name}' is not in LaBraM's electrode table "
                       f"(10-20/10-10 names such as {', '.join(STANDARD_1020[:6])}, ...; T3/T4/T5/T6 and "
                       "bipolar FP1-F7 ... P4-O2 are listed too). Rename it or leave it out.")


# -- checkpoint -------------------------------------------------------------------------------------------
def config_from_state(state: Mapping[str, torch.Tensor]) -> LaBraMConfig:
    """Hyper-parameters read off tensor shapes (defaults where a key is absent)."""
    d0 = LaBraMConfig()
    cls = shape_of(state, "cls_token")
    d = cls[-1] if cls else d0.embed_dim
    qn = shape_of(state, "blocks.0.attn.q_norm.weight")
    fc1 = shape_of(state, "blocks.0.mlp.fc1.weight")
    conv = shape_of(state, "patch_embed.conv1.weight")
    pos = shape_of(state, "pos_embed")
    tim = shape_of(state, "time_embed")
    has_blocks = any(k.startswith("blocks.") for k in state)
    return LaBraMConfig(
        embed_dim=d, depth=count_indexed(state, "blocks.") or d0.depth,
        num_heads=d // qn[0] if qn else d0.num_heads, mlp_hidden=fc1[0] if fc1 else 4 * d,
        out_chans=conv[0] if conv else d // 25, qkv_bias="blocks.0.attn.q_bias" in state,
        qk_norm=(qn is not None) if has_blocks else d0.qk_norm,
        layer_scale="blocks.0.gamma_1" in state, n_pos=pos[1] if pos else d0.n_pos,
        n_time=tim[1] if tim else d0.n_time)


def encoder_state(raw: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The student's state (prefixes removed) and the keys found outside it."""
    state = strip_common_prefix(raw, ("module.",))
    return split_prefix(state, "student.")


def load_labram(path: str | Path, *, ch_names: Sequence[str] | None = None, window_s: float | None = None,
                name: str | None = None) -> LaBraMAdapter:
    """Build the LaBraM adapter from a published checkpoint file (loaded strictly; see module docstring).

    Raises
    ------
    EncoderError
        Missing/unreadable file, keys that do not match the published layout (listed), unknown
        channel names, or a window outside 1-16 s / not whole seconds.
    """
    who = name or f"labram:{path}"
    state, outside = encoder_state(read_state_dict(path, who=who, what=CHECKPOINT_HINT))
    cfg = config_from_state(state)
    model = LaBraMAdapter(cfg, ch_names=ch_names, window_s=window_s, name=who)
    outside = [k for k in outside if not any(fnmatch.fnmatchcase(k, pat) for pat in OUTER_PRETRAINING_KEYS)]
    load_strict(model, state, who=who, path=path, ignore=PRETRAINING_KEYS, extra_unexpected=outside,
                hint="Expected LaBraM's pre-training checkpoint ({'model': {'student.…'}}).")
    log.info("loaded LaBraM from %s (%d parameters, depth %d)", path, model.n_params(), cfg.depth)
    return model


def labram_spec(path: str | Path | None = None, *, ch_names: Sequence[str] | None = None,
                window_s: float | None = None) -> SignalSpec:
    """Input contract without loading weights (LaBraM-base tables; the file, if given, must exist)."""
    from ._checkpoint import check_file

    if path is not None:
        check_file(path, who=f"labram:{path}", what=CHECKPOINT_HINT)
    names = check_names(TUEG_19 if ch_names is None else ch_names, who="labram")
    for n in names:
        _pos_row(n, who="labram")
    w = resolve_window(window_s, default_s=WINDOW_S, lo_s=MIN_WINDOW_S, hi_s=16.0, who="labram", patch_s=1.0)
    return SignalSpec("EEG", SFREQ_HZ, w, n_chans=len(names), ch_names=names, min_window_s=MIN_WINDOW_S,
                      max_window_s=16.0, normalisation="none", units="uV")
