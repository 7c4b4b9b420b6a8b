"""Everything frozen in bridge training, computed once per window (METHOD.md step 4).

Both encoders are frozen and deterministic per window, so the pooled new features
at m (z), the old model's last-layer output on the real old window (the target)
and (optionally) a sample of real old layer-l input tokens are computed once, in
gradient-free batched passes. Each training step then only runs the old stages
from l on.

z and the targets come from the shared feature store (``alignment.features``):
memory-mapped ``.npy`` files in the cache folder (alignment's z at m is reused),
read one batch at a time, so memory does not grow with the number of pairs.
Targets can be stored as float16 (``target_dtype``), halving disk and reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from .. import _npy
from ..alignment.features import extract_features, feature_key
from ..errors import ConfigError
from ..models.base import EncoderAdapter, to_tokens

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
#: read this many bytes from the memory maps before dropping their pages from the process
RELEASE_EVERY_BYTES = 8 * 2**20


def _tensor(arr: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``arr``'s memory (a memory map stays on disk until rows are read)."""
    if isinstance(arr, torch.Tensor):
        return arr
    if not arr.flags.writeable:  # torch wants writable memory (``_npy.open_npy`` maps copy-on-write)
        arr = np.array(arr)
    return torch.from_numpy(arr)


@dataclass
class BridgeCache:
    """Cached frozen outputs (CPU memory maps, or device tensors when small enough).

    z : (n, d_new) float32 pooled new features at m.
    target : (n, *last_out_shape) float32 or float16, old last-layer output on the real old windows.
    proto_tokens : (k, d_old) sampled real old layer-l input tokens, or None.

    ``rows(name, idx)`` reads rows as float32 on a device and keeps the process's resident
    memory flat by dropping pages of the maps it has read.
    """

    z: torch.Tensor
    target: torch.Tensor
    proto_tokens: torch.Tensor | None = None
    maps: tuple = field(default=(), repr=False)
    _read: int = field(default=0, repr=False)

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def nbytes(self) -> int:
        return int(self.z.numel() * self.z.element_size() + self.target.numel() * self.target.element_size())

    def to(self, device: torch.device) -> "BridgeCache":
        """Load everything onto ``device`` (reads the maps once)."""
        out = BridgeCache(self.z.to(device), self.target.to(device),
                          None if self.proto_tokens is None else self.proto_tokens.to(device))
        self.release()
        return out

    def release(self) -> None:
        """Drop pages of the memory maps this process has read (they stay in the OS page cache)."""
        _npy.release(*self.maps)
        self._read = 0

    def rows(self, name: str, idx: np.ndarray | slice, device: torch.device | None = None) -> torch.Tensor:
        """``z`` or ``target`` rows ``idx`` as float32 on ``device``."""
        src = self.z if name == "z" else self.target
        if isinstance(idx, slice):
            out = src[idx]
        else:
            idx = np.asarray(idx, dtype=np.int64)
            order = np.argsort(idx, kind="stable")  # read in file order
            out = torch.empty((idx.size, *src.shape[1:]), dtype=src.dtype, device=src.device)
            out[torch.from_numpy(order).to(src.device)] = src[torch.from_numpy(idx[order]).to(src.device)]
        if self.maps:
            self._read += out.numel() * out.element_size()
            if self._read > RELEASE_EVERY_BYTES:
                self.release()
        out = out.to(device) if device is not None else out
        return out.float()


def streaming_target_stats(cache: BridgeCache, rows: np.ndarray, *, chunk_rows: int | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of every flattened last-layer feature over ``rows``, in float64 chunks.

    Same numbers and the same std floor as ``trainer.target_stats`` (which needs all targets
    in memory), computed without holding more than ``chunk_rows`` targets (default: about
    8 MB of float64 per chunk).
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    if rows.size < 2:
        raise ConfigError("target statistics need at least 2 training pairs.")
    if chunk_rows is None:
        chunk_rows = max(1, (8 * 2**20) // (8 * max(1, int(np.prod(cache.target.shape[1:])))))
    s1 = s2 = None
    for i in range(0, rows.size, chunk_rows):
        t = cache.rows("target", rows[i: i + chunk_rows]).flatten(1).double()
        if s1 is None:
            s1, s2 = torch.zeros(t.shape[1], dtype=torch.float64), torch.zeros(t.shape[1], dtype=torch.float64)
        s1 += t.sum(dim=0).cpu()
        s2 += (t * t).sum(dim=0).cpu()
    n = rows.size
    mean = s1 / n
    var = ((s2 - n * mean * mean) / (n - 1)).clamp_min(0.0)  # unbiased, as torch.std
    std = var.sqrt().float()
    return mean.float(), std.clamp_min(1e-3 * float(std.mean()) + 1e-8)


def _proto_tokens(old_encoder: EncoderAdapter, x_old: np.ndarray, old_index: int, rows: np.ndarray,
                  n_proto_tokens: int, seed: int) -> torch.Tensor | None:
    """``n_proto_tokens`` real layer-l input tokens drawn uniformly from (window in rows, token), with ``seed``."""
    old_pos = old_encoder.positions[old_index]
    if n_proto_tokens <= 0 or old_pos.in_tokens <= 0:
        return None
    n_tok = old_pos.in_tokens
    total = rows.size * n_tok
    rng = np.random.default_rng(seed)
    flat = rng.choice(total, size=n_proto_tokens, replace=total < n_proto_tokens)
    wanted: dict[int, list[int]] = {}
    for win, tok in zip(rows[flat // n_tok], flat % n_tok):
        wanted.setdefault(int(win), []).append(int(tok))
    wins = np.array(sorted(wanted), dtype=np.int64)
    dev = old_encoder._param_device()
    picked: list[torch.Tensor] = []
    with torch.no_grad():
        for s in range(0, wins.size, 64):
            chunk = wins[s: s + 64]
            xb = torch.from_numpy(_npy.take_rows(x_old, chunk).astype(np.float32, copy=False)).to(dev)
            h = old_encoder.forward_until(xb, old_index - 1) if old_index > 0 else old_encoder.prepare(xb)
            tok = to_tokens(h, old_pos.in_layout)
            for j, w in enumerate(chunk):
                for t in wanted[int(w)]:
                    picked.append(tok[j, t].float().cpu())
    return torch.stack(picked) if picked else None


@torch.no_grad()
def compute_cache(old_encoder: EncoderAdapter, new_encoder: EncoderAdapter, x_old: np.ndarray | torch.Tensor,
                  x_new: np.ndarray | torch.Tensor, *, new_position: str | int, old_position: str | int,
                  batch_size: int = 64, proto_rows: np.ndarray | None = None, n_proto_tokens: int = 0,
                  seed: int = 0, on_progress: ProgressFn | None = None, cache: bool | str | Path = True,
                  target_dtype: str = "float32",
                  features: Mapping[str, np.ndarray] | None = None) -> BridgeCache:
    """z at m and the old model's last-layer targets for every pair, plus prototype tokens.

    Parameters
    ----------
    x_old, x_new : paired windows ``(n, C, T)`` (arrays, memory maps or tensors), row-aligned.
    new_position, old_position : m (read) and l (write).
    proto_rows : window indices (e.g. the training split) that prototype tokens come from;
        with ``n_proto_tokens > 0`` that many real old layer-l input tokens (token-major rows
        of width d_old) are drawn with ``seed``.
    cache : where the features live (``extract_features``): the shared cache folder (True), a
        folder, or memory (False).
    target_dtype : ``"float32"`` or ``"float16"`` storage of the targets.
    features : precomputed ``{"new:out:<m>": z, "old:last": target}`` arrays (the union of
        ``features`` shards); then neither encoder runs over all pairs.
    """
    if isinstance(x_old, torch.Tensor):
        x_old = x_old.detach().cpu().numpy()
    if isinstance(x_new, torch.Tensor):
        x_new = x_new.detach().cpu().numpy()
    new_pos = new_encoder.position(new_position)
    old_pos = old_encoder.position(old_position)
    n = int(x_old.shape[0])
    if int(x_new.shape[0]) != n:
        raise ConfigError(f"x_old has {n} windows but x_new has {x_new.shape[0]}; pairs must be row-aligned.")
    z_key = feature_key("out", new_pos.name)
    if features is not None:
        z_np, t_np = features.get(f"new:{z_key}"), features.get("old:last")
        if z_np is None or t_np is None:
            raise ConfigError(f"the given features lack new:{z_key} or old:last (have {sorted(features)}).")
        if len(z_np) != n or len(t_np) != n:
            raise ConfigError(f"the given features have {len(z_np)} rows but there are {n} pairs.")
    else:
        z_np = extract_features(new_encoder, x_new, [z_key], batch_size=batch_size, cache=cache,
                                device=new_encoder._param_device(), on_progress=on_progress)[z_key]
        t_np = extract_features(old_encoder, x_old, ["last"], batch_size=batch_size, cache=cache,
                                last_dtype=target_dtype, device=old_encoder._param_device(),
                                on_progress=on_progress)["last"]
    rows = np.arange(n) if proto_rows is None else np.asarray(proto_rows)
    proto = _proto_tokens(old_encoder, x_old, old_pos.index, rows, n_proto_tokens, seed)
    maps = tuple(a for a in (z_np, t_np) if _npy.is_mapped(a))
    out = BridgeCache(_tensor(z_np), _tensor(t_np), proto, maps=maps)
    logger.info("cached %d pairs: z %s, target %s %s (%.1f MB on %s)", n, tuple(out.z.shape),
                tuple(out.target.shape), str(out.target.dtype).replace("torch.", ""), out.nbytes() / 1e6,
                "disk" if maps else "memory")
    return out
