"""Everything frozen in bridge training, computed once per window (METHOD.md step 4).

Both encoders are frozen and deterministic per window, so the pooled new
features at m, the old model's last-layer output on the real old window and
(optionally) a sample of real old layer-l input tokens are computed in one
batched, gradient-free pass. Each training step then only runs the old
stages from l on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..models.base import EncoderAdapter, iter_batches, pool, to_tokens

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]


@dataclass
class BridgeCache:
    """Cached tensors (CPU unless small enough to live on the device).

    z : (n, d_new) pooled new features at m.
    target : (n, *last_out_shape) old last-layer output on the real old windows.
    proto_tokens : (k, d_old) sampled real old layer-l input tokens, or None.
    """

    z: torch.Tensor
    target: torch.Tensor
    proto_tokens: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.z.shape[0])

    def nbytes(self) -> int:
        return int(self.z.numel() * self.z.element_size() + self.target.numel() * self.target.element_size())

    def to(self, device: torch.device) -> "BridgeCache":
        return BridgeCache(self.z.to(device), self.target.to(device),
                           None if self.proto_tokens is None else self.proto_tokens.to(device))


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


@torch.no_grad()
def compute_cache(old_encoder: EncoderAdapter, new_encoder: EncoderAdapter, x_old: np.ndarray | torch.Tensor,
                  x_new: np.ndarray | torch.Tensor, *, new_position: str | int, old_position: str | int,
                  batch_size: int = 64, proto_rows: np.ndarray | None = None, n_proto_tokens: int = 0,
                  seed: int = 0, on_progress: ProgressFn | None = None) -> BridgeCache:
    """One gradient-free pass over all pairs.

    ``proto_rows`` (window indices, e.g. the training split) with ``n_proto_tokens > 0`` also
    samples that many real old layer-l input tokens (token-major rows of width d_old) with ``seed``.
    """
    new_pos = new_encoder.position(new_position)
    old_pos = old_encoder.position(old_position)
    old_stages = list(old_encoder.stages())
    x_old_t, x_new_t = _as_tensor(x_old), _as_tensor(x_new)
    n = x_old_t.shape[0]
    dev_new, dev_old = new_encoder._param_device(), old_encoder._param_device()

    # which (window, token) pairs become prototypes, chosen up front so one pass suffices
    wanted: dict[int, np.ndarray] = {}
    if n_proto_tokens > 0 and old_pos.in_tokens > 0:
        rows = np.arange(n) if proto_rows is None else np.asarray(proto_rows)
        n_tok = old_pos.in_tokens
        total = rows.size * n_tok
        rng = np.random.default_rng(seed)
        flat = rng.choice(total, size=n_proto_tokens, replace=total < n_proto_tokens)
        for win, tok in zip(rows[flat // n_tok], flat % n_tok):
            wanted.setdefault(int(win), []).append(int(tok))  # type: ignore[arg-type]
    picked: list[torch.Tensor] = []

    zs: list[torch.Tensor] = []
    target: torch.Tensor | None = None  # filled in place: holding batches and a concatenated copy doubles the peak
    batches = list(iter_batches(n, batch_size))
    for i, sl in enumerate(batches):
        zs.append(pool(new_encoder.forward_until(x_new_t[sl].to(dev_new), new_pos.index), new_pos.out_layout).float().cpu())
        h = old_encoder.prepare(x_old_t[sl].to(dev_old))
        for j, st in enumerate(old_stages):
            if j == old_pos.index and wanted:
                tok = to_tokens(h, st.in_layout)
                for b in range(sl.start, sl.stop):
                    for t in wanted.get(b, ()):
                        picked.append(tok[b - sl.start, t].float().cpu())
            h = st.module(h)
        if target is None:
            target = torch.empty((n, *h.shape[1:]), dtype=torch.float32)
        target[sl] = h.float().cpu()
        if on_progress is not None:
            on_progress(i + 1, len(batches), "caching frozen features")
    cache = BridgeCache(torch.cat(zs), target, torch.stack(picked) if picked else None)
    logger.info("cached %d pairs: z %s, target %s (%.1f MB)", n, tuple(cache.z.shape), tuple(cache.target.shape),
                cache.nbytes() / 1e6)
    return cache
