"""BIOT (Yang, Westover & Sun, NeurIPS 2023, "BIOT: Biosignal Transformer for Cross-data Learning in
the Wild") as an encoder adapter, loading the published ``BIOTEncoder`` checkpoints.

Written here from the authors' code (github.com/ycq091044/BIOT: ``model/biot.py``, ``utils.py``,
``run_example.py``) and from ``linear_attention_transformer`` 0.19 (github.com/lucidrains/
linear-attention-transformer), whose ``LinearAttentionTransformer`` BIOT uses. That package (and
its dependencies) is not a dependency here: the linear attention, pre-norm wrappers and layer
container are written below with the *same module names*, so the published state dict loads
strictly. Only the path BIOT takes through it is implemented (non-causal, global heads only, no
local attention, no reversible layers, ``ff_chunks=1``).

Checkpoints: ``pretrained-models/EEG-PREST-16-channels.ckpt``, ``EEG-SHHS+PREST-18-channels.ckpt``
and ``EEG-six-datasets-18-channels.ckpt`` are plain ``BIOTEncoder`` state dicts (their code does
``biot.load_state_dict(torch.load(path))``). Wrapped files (``{"state_dict": ...}``) and the
``biot.`` / ``module.`` / ``model.`` prefixes of a classifier or Lightning checkpoint are
accepted; a classifier's head is refused as unexpected. Keys: ``patch_embedding.projection``,
``transformer.layers.layers.{i}.0`` (attention: ``norm``, ``fn.to_q/to_k/to_v/to_out``),
``transformer.layers.layers.{i}.1`` (feed-forward: ``norm``, ``fn.fn.w1/w2``),
``positional_encoding.pe`` (sinusoidal table, 1000 rows), ``channel_tokens.weight`` and the
channel ``index`` (a stored LongTensor ``0..n-1``; channel at montage position p uses token
``index[p]``).

Architecture (BIOT: width 256, 4 layers, 8 heads, FF x4): each channel -> |STFT| (n_fft 200, hop
100, no centring, rectangular window) -> 101 frequency bins per 0.5 s hop -> linear to 256 ->
+ channel token + sinusoidal position (per channel) -> all channels' tokens concatenated -> linear
attention transformer; the published embedding is the mean over tokens. Width, depth and channel
count are read off the checkpoint; heads are not stored in the weights (8 as published).

Input contract: EEG at 200 Hz in bipolar "double banana" derivations: ``BIOT_16`` (the PREST
checkpoint) or ``BIOT_18`` (``BIOT_16`` + C3-A2, C4-A1; the SHHS+PREST and six-dataset
checkpoints), chosen by the checkpoint's number of channel tokens. A subset can be passed as
``ch_names`` (each keeps its montage token). Each channel of each window is divided by its 95th
percentile of |x| (+1e-8) inside ``prepare`` (their ``utils.py``), so units do not matter and no
other normalisation is applied (``normalisation="none"``). Windows of 1-30 s (default 10 s as
their TUAB/PREST samples; 30 s is their SHHS length; at least one 1 s STFT frame).

Stages: ``patch_embedding`` (STFT tokens + channel tokens + positions, all channels), then
``transformer.layers.layers.0`` ... each one residual attention + feed-forward layer; tokens are
``(n_chans * n_frames, width)`` with ``n_frames = (n_times - 200) // 100 + 1``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import nn

from ...errors import EncoderError
from ...spec import SignalSpec
from ..base import EncoderAdapter, Stage
from ._checkpoint import count_indexed, load_strict, read_state_dict, shape_of, strip_common_prefix
from ._inputs import check_names, clean_bipolar, resolve_window

log = logging.getLogger(__name__)

SFREQ_HZ = 200.0
WINDOW_S = 10.0
MIN_WINDOW_S = 1.0
MAX_WINDOW_S = 30.0
CHECKPOINT_HINT = ("EEG-PREST-16-channels.ckpt, EEG-SHHS+PREST-18-channels.ckpt or EEG-six-datasets-18-channels.ckpt "
                   "from github.com/ycq091044/BIOT (pretrained-models/): a BIOTEncoder state dict")

#: the 16 bipolar derivations of the PREST / TUAB / TUEV / CHB-MIT checkpoints, in token order
BIOT_16 = ("FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP2-F8", "F8-T8", "T8-P8", "P8-O2",
           "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4", "C4-P4", "P4-O2")
#: the 18-channel checkpoints add the two SHHS sleep derivations
BIOT_18 = BIOT_16 + ("C3-A2", "C4-A1")

#: parameters of the published 18-channel encoder (3,186,688 weights + the 18-entry index is a buffer here)
PUBLISHED_PARAMS = 3_186_688


@dataclass(frozen=True)
class BIOTConfig:
    """Hyper-parameters; defaults are the published BIOT encoder (18 channel tokens)."""

    emb_size: int = 256
    heads: int = 8
    depth: int = 4
    n_channels: int = 18
    n_fft: int = 200
    hop_length: int = 100
    ff_mult: int = 4
    max_len: int = 1000

    def __post_init__(self) -> None:
        if self.emb_size % self.heads:
            raise EncoderError(f"biot: width {self.emb_size} is not divisible by {self.heads} heads.")


# -- modules (names as in BIOT's model/biot.py and linear_attention_transformer) ----------------------
class PatchFrequencyEmbedding(nn.Module):
    def __init__(self, emb_size: int, n_freq: int) -> None:
        super().__init__()
        self.projection = nn.Linear(n_freq, emb_size)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, freq, frames) -> (B, frames, emb)."""
        return self.projection(spec.transpose(1, 2))


class PositionalEncoding(nn.Module):
    """Fixed sinusoidal table ``pe`` (1, max_len, d) -- stored in the published checkpoints."""

    def __init__(self, d_model: int, max_len: int = 1000) -> None:
        super().__init__()
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.pe.shape[1]:
            raise EncoderError(f"biot: {x.shape[1]} STFT frames per channel exceed the {self.pe.shape[1]}-row "
                               "positional table; use a shorter window.")
        return x + self.pe[:, : x.shape[1]]


class SelfAttention(nn.Module):
    """Global linear attention (Shen et al. 2021, "Efficient Attention"), as linear_attention_transformer does:
    softmax over each query's features, softmax of keys over the sequence, ``q (k^T v)``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.d_heads = dim // heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape

        def split(h: torch.Tensor) -> torch.Tensor:
            return h.reshape(b, t, self.heads, self.d_heads).transpose(1, 2)  # (B, H, T, dh)

        q, k, v = split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))
        q = q.softmax(dim=-1) * self.d_heads ** -0.5
        k = k.softmax(dim=-2)
        context = torch.einsum("bhnd,bhne->bhde", k, v)
        out = torch.einsum("bhnd,bhde->bhne", q, context)
        return self.to_out(out.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, dim * mult)
        self.act = nn.GELU()
        self.w2 = nn.Linear(dim * mult, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(self.act(self.w1(x)))


class Chunk(nn.Module):
    """``ff_chunks=1``: a pass-through holder (kept for the ``fn.fn`` key path)."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class SequentialSequence(nn.Module):
    """Holds ``layers`` = ModuleList of (attention, feed-forward) pairs, each applied residually."""

    def __init__(self, layers: nn.ModuleList) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for f, g in self.layers:
            x = x + f(x)
            x = x + g(x)
        return x


class LinearAttentionTransformer(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, ff_mult: int = 4) -> None:
        super().__init__()
        self.layers = SequentialSequence(nn.ModuleList([
            nn.ModuleList([PreNorm(dim, SelfAttention(dim, heads)), PreNorm(dim, Chunk(FeedForward(dim, ff_mult)))])
            for _ in range(depth)
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class _Layer(nn.Module):
    """Stage ``transformer.layers.layers.{i}``: ``x + attn(x)`` then ``x + ff(x)``."""

    def __init__(self, pair: nn.ModuleList) -> None:
        super().__init__()
        object.__setattr__(self, "_pair", pair)  # registered under transformer.layers.layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, g = self._pair
        x = x + f(x)
        return x + g(x)


class _Embed(nn.Module):
    """Stage ``patch_embedding``: (B, C, T) -> (B, C * frames, emb), channel after channel."""

    def __init__(self, adapter: "BIOTAdapter") -> None:
        super().__init__()
        object.__setattr__(self, "_adapter", adapter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self._adapter
        b, c, t = x.shape
        n_fft, hop = a.config.n_fft, a.config.hop_length
        if c != len(a.montage_pos):
            raise EncoderError(f"{a.encoder_name}: {c} channels given, the montage has {len(a.montage_pos)}.")
        if t < n_fft:
            raise EncoderError(f"{a.encoder_name}: a window of {t} samples is shorter than one STFT frame "
                               f"({n_fft} samples = {n_fft / SFREQ_HZ:g} s).")
        window = torch.ones(n_fft, dtype=x.dtype, device=x.device)  # torch.stft(window=None) is rectangular
        spec = torch.stft(x.reshape(b * c, t), n_fft=n_fft, hop_length=hop, window=window, center=False,
                          onesided=True, return_complex=True).abs()  # (B*C, 101, frames)
        emb = a.patch_embedding(spec)  # (B*C, frames, D)
        tokens = a.channel_tokens(a.index[a.montage_pos])  # (C, D)
        emb = emb.reshape(b, c, emb.shape[1], -1) + tokens[None, :, None, :]
        emb = a.positional_encoding(emb.flatten(0, 1)).reshape(b, c, emb.shape[2], -1)
        return emb.flatten(1, 2)


class BIOTAdapter(EncoderAdapter):
    """The BIOT encoder as stages (see module docstring).

    Parameters
    ----------
    cfg : hyper-parameters (``BIOTConfig()`` = the published encoder with 18 channel tokens).
    ch_names : bipolar derivations in the order of the input channels; each must be in the
        montage (``BIOT_16`` or ``BIOT_18``, by ``cfg.n_channels``); default: the whole montage.
    montage : the derivation behind each channel token (needed when ``n_channels`` is not 16/18).
    window_s : window length, 1-30 s.
    """

    def __init__(self, cfg: BIOTConfig = BIOTConfig(), *, ch_names: Sequence[str] | None = None,
                 montage: Sequence[str] | None = None, window_s: float | None = None, name: str = "biot") -> None:
        montage = _montage_for(cfg.n_channels, montage, who=name)
        names = check_names(montage if ch_names is None else ch_names, who=name)
        pos = [_montage_index(n, montage, who=name) for n in names]
        w = resolve_window(window_s, default_s=WINDOW_S, lo_s=MIN_WINDOW_S, hi_s=MAX_WINDOW_S, who=name)
        super().__init__(SignalSpec("EEG", SFREQ_HZ, w, n_chans=len(names), ch_names=names,
                                    min_window_s=MIN_WINDOW_S, max_window_s=MAX_WINDOW_S,
                                    normalisation="none", units="uV"))
        self.config = cfg
        self.montage = tuple(montage)
        self.encoder_name = name
        self.patch_embedding = PatchFrequencyEmbedding(cfg.emb_size, cfg.n_fft // 2 + 1)
        self.transformer = LinearAttentionTransformer(cfg.emb_size, cfg.depth, cfg.heads, cfg.ff_mult)
        self.positional_encoding = PositionalEncoding(cfg.emb_size, cfg.max_len)
        self.channel_tokens = nn.Embedding(cfg.n_channels, cfg.emb_size)
        # published as an nn.Parameter(requires_grad=False) of dtype long; a buffer has the same state-dict key
        self.register_buffer("index", torch.arange(cfg.n_channels, dtype=torch.long))
        self.register_buffer("montage_pos", torch.tensor(pos, dtype=torch.long), persistent=False)
        object.__setattr__(self, "_embed", _Embed(self))
        object.__setattr__(self, "_layers", [_Layer(p) for p in self.transformer.layers.layers])

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Divide each channel of each window by its 95th percentile of |x| (+1e-8), as BIOT's ``utils.py``."""
        return x / (abs_quantile(x, 0.95) + 1e-8)

    def stages(self) -> Sequence[Stage]:
        out = [Stage("patch_embedding", self._embed, "channels", "tokens")]
        out += [Stage(f"transformer.layers.layers.{i}", lay, "tokens", "tokens") for i, lay in enumerate(self._layers)]
        return out


def abs_quantile(x: torch.Tensor, q: float) -> torch.Tensor:
    """``numpy.quantile(|x|, q, method="linear", axis=-1, keepdims=True)`` for any size
    (``torch.quantile`` refuses inputs above 2**24 elements, a large batch of 30 s windows)."""
    v = x.abs().sort(dim=-1).values
    pos = q * (v.shape[-1] - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, v.shape[-1] - 1)
    return v[..., lo:lo + 1] + (v[..., hi:hi + 1] - v[..., lo:lo + 1]) * (pos - lo)


def _montage_for(n_channels: int, montage: Sequence[str] | None, *, who: str) -> tuple[str, ...]:
    if montage is not None:
        m = check_names(montage, who=who)
        if len(m) != n_channels:
            raise EncoderError(f"{who}: the checkpoint has {n_channels} channel tokens but {len(m)} montage names.")
        return m
    if n_channels == 16:
        return BIOT_16
    if n_channels == 18:
        return BIOT_18
    raise EncoderError(f"{who}: the checkpoint has {n_channels} channel tokens; the published ones have 16 or 18. "
                       f"Pass montage=[...] naming the derivation behind each token.")


def _montage_index(name: str, montage: Sequence[str], *, who: str) -> int:
    wanted = clean_bipolar(name)
    for i, m in enumerate(montage):
        if (wanted is not None and clean_bipolar(m) == wanted) or str(m).upper() == str(name).strip().upper():
            return i
    raise EncoderError(f"{who}: channel '{name}' is not one of this checkpoint's {len(montage)} bipolar "
                       f"derivations: {', '.join(montage)}.")


# -- checkpoint -------------------------------------------------------------------------------------------
_PREFIXES = ("module.", "model.", "biot.")


def config_from_state(state: Mapping[str, torch.Tensor]) -> BIOTConfig:
    d0 = BIOTConfig()
    proj = shape_of(state, "patch_embedding.projection.weight")
    tok = shape_of(state, "channel_tokens.weight")
    pe = shape_of(state, "positional_encoding.pe")
    w1 = shape_of(state, "transformer.layers.layers.0.1.fn.fn.w1.weight")
    emb = proj[0] if proj else d0.emb_size
    return BIOTConfig(emb_size=emb, heads=d0.heads,
                      depth=count_indexed(state, "transformer.layers.layers.") or d0.depth,
                      n_channels=tok[0] if tok else d0.n_channels,
                      n_fft=2 * (proj[1] - 1) if proj else d0.n_fft, hop_length=d0.hop_length,
                      ff_mult=w1[0] // emb if w1 else d0.ff_mult, max_len=pe[1] if pe else d0.max_len)


def _read(path: str | Path, who: str) -> dict[str, torch.Tensor]:
    return strip_common_prefix(read_state_dict(path, who=who, what=CHECKPOINT_HINT), _PREFIXES)


def load_biot(path: str | Path, *, ch_names: Sequence[str] | None = None, window_s: float | None = None,
              montage: Sequence[str] | None = None, name: str | None = None) -> BIOTAdapter:
    """Build the BIOT adapter from a published ``BIOTEncoder`` checkpoint (loaded strictly).

    Raises
    ------
    EncoderError
        Missing/unreadable file, keys that do not match (listed), unknown derivations, or a window
        outside 1-30 s.
    """
    who = name or f"biot:{path}"
    state = _read(path, who)
    cfg = config_from_state(state)
    model = BIOTAdapter(cfg, ch_names=ch_names, montage=montage, window_s=window_s, name=who)
    load_strict(model, state, who=who, path=path,
                hint="Expected a BIOTEncoder state dict (BIOT's pretrained-models/EEG-*.ckpt).")
    if not torch.equal(model.index, torch.arange(cfg.n_channels)):
        log.info("%s: stored channel index %s is not 0..n-1; tokens follow it", who, model.index.tolist())
    log.info("loaded BIOT from %s (%d parameters, %d channel tokens)", path, model.n_params(), cfg.n_channels)
    return model


def biot_spec(path: str | Path | None = None, *, ch_names: Sequence[str] | None = None,
              window_s: float | None = None, montage: Sequence[str] | None = None) -> SignalSpec:
    """Input contract; with a path, the montage (16 or 18) is read off the checkpoint's channel tokens."""
    who = f"biot:{path}" if path is not None else "biot"
    n = 18
    if path is not None:
        tok = shape_of(_read(path, who), "channel_tokens.weight")
        n = tok[0] if tok else n
    m = _montage_for(n, montage, who=who)
    names = check_names(m if ch_names is None else ch_names, who=who)
    for c in names:
        _montage_index(c, m, who=who)
    w = resolve_window(window_s, default_s=WINDOW_S, lo_s=MIN_WINDOW_S, hi_s=MAX_WINDOW_S, who=who)
    return SignalSpec("EEG", SFREQ_HZ, w, n_chans=len(names), ch_names=names, min_window_s=MIN_WINDOW_S,
                      max_window_s=MAX_WINDOW_S, normalisation="none", units="uV")
