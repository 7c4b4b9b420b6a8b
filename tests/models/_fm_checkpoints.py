"""Random-weight checkpoints written in each published format, from key tables written out here.

The tables list the parameter names and shapes the authors' code produces (read from their
repositories: LaBraM ``modeling_pretrain.py``, BIOT ``model/biot.py`` + linear_attention_transformer,
CBraMod ``models/cbramod.py``, PaPaGei ``models/resnet.py``), independently of the adapters'
module trees, so a renamed parameter in an adapter makes the strict load fail.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

Shapes = dict[str, tuple[int, ...]]


# -- key tables -----------------------------------------------------------------------------------------
def labram_shapes(*, dim=200, depth=12, heads=10, out_chans=8, mlp=800, n_pos=129, n_time=16, vocab=8192) -> Shapes:
    """``NeuralTransformerForMEM.state_dict()`` of their pre-training (qkv_bias False, layer scale on)."""
    s: Shapes = {"student.cls_token": (1, 1, dim), "student.mask_token": (1, 1, dim),
                 "student.pos_embed": (1, n_pos, dim), "student.time_embed": (1, n_time, dim)}
    for i, (cin, k) in enumerate([(1, 15), (out_chans, 3), (out_chans, 3)], start=1):
        s[f"student.patch_embed.conv{i}.weight"] = (out_chans, cin, 1, k)
        s[f"student.patch_embed.conv{i}.bias"] = (out_chans,)
        s[f"student.patch_embed.norm{i}.weight"] = (out_chans,)
        s[f"student.patch_embed.norm{i}.bias"] = (out_chans,)
    for b in range(depth):
        p = f"student.blocks.{b}."
        s.update({p + "gamma_1": (dim,), p + "gamma_2": (dim,), p + "norm1.weight": (dim,), p + "norm1.bias": (dim,),
                  p + "attn.qkv.weight": (3 * dim, dim),
                  p + "attn.q_norm.weight": (dim // heads,), p + "attn.q_norm.bias": (dim // heads,),
                  p + "attn.k_norm.weight": (dim // heads,), p + "attn.k_norm.bias": (dim // heads,),
                  p + "attn.proj.weight": (dim, dim), p + "attn.proj.bias": (dim,),
                  p + "norm2.weight": (dim,), p + "norm2.bias": (dim,),
                  p + "mlp.fc1.weight": (mlp, dim), p + "mlp.fc1.bias": (mlp,),
                  p + "mlp.fc2.weight": (dim, mlp), p + "mlp.fc2.bias": (dim,)})
    s.update({"student.norm.weight": (dim,), "student.norm.bias": (dim,),
              "student.lm_head.weight": (vocab, dim), "student.lm_head.bias": (vocab,),
              "lm_head.weight": (vocab, dim), "lm_head.bias": (vocab,),
              "projection_head.0.weight": (dim, dim), "projection_head.0.bias": (dim,)})
    return s


LABRAM_HEADS = ("student.mask_token", "student.lm_head.", "lm_head.", "projection_head.")


def biot_shapes(*, emb=256, depth=4, n_channels=18, n_freq=101, ff=4, max_len=1000) -> Shapes:
    """``BIOTEncoder.state_dict()`` (``index`` is an int64 parameter there)."""
    s: Shapes = {"index": (n_channels,), "patch_embedding.projection.weight": (emb, n_freq),
                 "patch_embedding.projection.bias": (emb,)}
    for i in range(depth):
        p = f"transformer.layers.layers.{i}."
        s.update({p + "0.fn.to_q.weight": (emb, emb), p + "0.fn.to_k.weight": (emb, emb),
                  p + "0.fn.to_v.weight": (emb, emb), p + "0.fn.to_out.weight": (emb, emb),
                  p + "0.fn.to_out.bias": (emb,), p + "0.norm.weight": (emb,), p + "0.norm.bias": (emb,),
                  p + "1.fn.fn.w1.weight": (ff * emb, emb), p + "1.fn.fn.w1.bias": (ff * emb,),
                  p + "1.fn.fn.w2.weight": (emb, ff * emb), p + "1.fn.fn.w2.bias": (emb,),
                  p + "1.norm.weight": (emb,), p + "1.norm.bias": (emb,)})
    s.update({"positional_encoding.pe": (1, max_len, emb), "channel_tokens.weight": (n_channels, emb)})
    return s


def cbramod_shapes(*, d=200, depth=12, ff=800, out_dim=200) -> Shapes:
    """``CBraMod.state_dict()``."""
    s: Shapes = {"patch_embedding.mask_encoding": (200,),
                 "patch_embedding.positional_encoding.0.weight": (d, 1, 19, 7),
                 "patch_embedding.positional_encoding.0.bias": (d,)}
    for i, (cin, k) in zip((0, 3, 6), [(1, 49), (25, 3), (25, 3)]):
        s[f"patch_embedding.proj_in.{i}.weight"] = (25, cin, 1, k)
        s[f"patch_embedding.proj_in.{i}.bias"] = (25,)
        s[f"patch_embedding.proj_in.{i + 1}.weight"] = (25,)
        s[f"patch_embedding.proj_in.{i + 1}.bias"] = (25,)
    s.update({"patch_embedding.spectral_proj.0.weight": (d, 101), "patch_embedding.spectral_proj.0.bias": (d,)})
    h = d // 2
    for i in range(depth):
        p = f"encoder.layers.{i}."
        for a in ("self_attn_s", "self_attn_t"):
            s.update({p + f"{a}.in_proj_weight": (3 * h, h), p + f"{a}.in_proj_bias": (3 * h,),
                      p + f"{a}.out_proj.weight": (h, h), p + f"{a}.out_proj.bias": (h,)})
        s.update({p + "linear1.weight": (ff, d), p + "linear1.bias": (ff,), p + "linear2.weight": (d, ff),
                  p + "linear2.bias": (d,), p + "norm1.weight": (d,), p + "norm1.bias": (d,),
                  p + "norm2.weight": (d,), p + "norm2.bias": (d,)})
    s.update({"proj_out.0.weight": (out_dim, d), "proj_out.0.bias": (out_dim,)})
    return s


def papagei_shapes(*, base=32, kernel=3, n_block=18, n_classes=512, n_experts=3) -> Shapes:
    """``ResNet1DMoE.state_dict()`` (no projector), before DDP adds ``module.``."""
    def bn(p: str, c: int) -> Shapes:
        return {p + "weight": (c,), p + "bias": (c,), p + "running_mean": (c,), p + "running_var": (c,),
                p + "num_batches_tracked": ()}

    s: Shapes = {"first_block_conv.conv.weight": (base, 1, kernel), "first_block_conv.conv.bias": (base,)}
    s.update(bn("first_block_bn.", base))
    c_out = base
    for i in range(n_block):
        c_in = base if i == 0 else int(base * 2 ** ((i - 1) // 4))
        c_out = c_in * 2 if (i % 4 == 0 and i != 0) else c_in
        p = f"basicblock_list.{i}."
        s.update(bn(p + "bn1.", c_in))
        s.update({p + "conv1.conv.weight": (c_out, c_in, kernel), p + "conv1.conv.bias": (c_out,)})
        s.update(bn(p + "bn2.", c_out))
        s.update({p + "conv2.conv.weight": (c_out, c_out, kernel), p + "conv2.conv.bias": (c_out,)})
    s.update(bn("final_bn.", c_out))
    s.update({"dense.weight": (n_classes, c_out), "dense.bias": (n_classes,)})
    for head, last in (("expert_layers_1", 2), ("expert_layers_2", 3)):
        for e in range(n_experts):
            s.update({f"{head}.{e}.0.weight": (c_out // 2, c_out), f"{head}.{e}.0.bias": (c_out // 2,),
                      f"{head}.{e}.{last}.weight": (1, c_out // 2), f"{head}.{e}.{last}.bias": (1,)})
    for g in ("gating_network_1", "gating_network_2"):
        s.update({f"{g}.0.weight": (n_experts, c_out), f"{g}.0.bias": (n_experts,)})
    return s


# -- random tensors -------------------------------------------------------------------------------------------
def n_float(shapes: Shapes, *, skip: tuple[str, ...] = ()) -> int:
    """Number of floating-point weights (what ``n_params`` counts) outside the ``skip`` prefixes."""
    ints = ("index", "num_batches_tracked", "running_mean", "running_var", "positional_encoding.pe")
    return sum(math.prod(v) for k, v in shapes.items()
               if not k.startswith(skip) and not k.split(".")[-1] in ints and not k.endswith(ints))


def materialise(shapes: Shapes, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with sensible values (norm weights near 1, positive variances, int64 index/counters)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        leaf = k.split(".")[-1]
        if leaf == "index":
            out[k] = torch.arange(shape[0], dtype=torch.long)
        elif leaf == "num_batches_tracked":
            out[k] = torch.tensor(1000, dtype=torch.long)
        elif leaf == "running_var":
            out[k] = 0.5 + torch.rand(shape, generator=g)
        elif k.endswith("positional_encoding.pe"):
            out[k] = _sinusoid(shape[1], shape[2])
        elif leaf == "weight" and len(shape) == 1 or leaf.startswith("gamma"):
            out[k] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            out[k] = torch.randn(shape, generator=g) / math.sqrt(max(fan_in, 1)) * (1.0 if len(shape) > 1 else 0.1)
    return out


def _sinusoid(n: int, d: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe[None]


# -- files in the published layouts ----------------------------------------------------------------------------
TINY = {
    "labram": dict(dim=100, depth=4, heads=4, out_chans=4, mlp=200, vocab=64),
    "biot": dict(emb=32, depth=5, n_channels=16),
    "cbramod": dict(depth=5, ff=64),
    "papagei": dict(base=8, n_block=5, n_classes=16, n_experts=2),
}


def write_labram(path: Path, seed: int = 0, **sizes) -> dict[str, torch.Tensor]:
    """``{"model": {...}, "args": Namespace(numpy scalars), "epoch": 49}`` like labram-base.pth."""
    sd = materialise(labram_shapes(**{**TINY["labram"], **sizes}), seed)
    torch.save({"model": sd, "args": argparse.Namespace(lr=np.float64(5e-4), epochs=np.int64(50), model="labram"),
                "epoch": 49}, path)
    return sd


def write_biot(path: Path, seed: int = 0, **sizes) -> dict[str, torch.Tensor]:
    """A bare BIOTEncoder state dict like EEG-*-channels.ckpt."""
    sd = materialise(biot_shapes(**{**TINY["biot"], **sizes}), seed)
    torch.save(sd, path)
    return sd


def write_cbramod(path: Path, seed: int = 0, **sizes) -> dict[str, torch.Tensor]:
    """A bare CBraMod state dict like pretrained_weights.pth."""
    sd = materialise(cbramod_shapes(**{**TINY["cbramod"], **sizes}), seed)
    torch.save(sd, path)
    return sd


def write_papagei(path: Path, seed: int = 0, **sizes) -> dict[str, torch.Tensor]:
    """A DDP state dict (every key under ``module.``) like papagei_s.pt."""
    sd = materialise(papagei_shapes(**{**TINY["papagei"], **sizes}), seed)
    torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    return sd


WRITERS = {"labram": write_labram, "biot": write_biot, "cbramod": write_cbramod, "papagei": write_papagei}
FILE_NAMES = {"labram": "labram-base.pth", "biot": "EEG-PREST-16-channels.ckpt",
              "cbramod": "pretrained_weights.pth", "papagei": "papagei_s.pt"}
#: small windows for the shared adapter checks (their length test doubles the window)
TEST_WINDOW_S = {"labram": 4.0, "biot": 4.0, "cbramod": 4.0, "papagei": 10.0}


def write(kind: str, folder: Path, seed: int = 0, **sizes) -> Path:
    path = Path(folder) / FILE_NAMES[kind]
    WRITERS[kind](path, seed, **sizes)
    return path
