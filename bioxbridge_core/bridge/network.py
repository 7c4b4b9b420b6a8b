"""The prototype bridge with low-rank weights (METHOD.md step 3).

``z`` (B, d_new) -> ``w = B (A z)`` reshaped (Np, N_old) -> ``h = P w``
(d_old, N_old) per window -> token-major (N_old, d_old) -> the old layer's
own layout via ``models.base.from_tokens``. No bias, no nonlinearity.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .._check import check_option
from ..errors import ConfigError
from ..models.base import LAYOUTS, Position, from_tokens
from ..models.subject_norm import Reference
from .config import BridgeConfig


class Bridge(nn.Module):
    """Map pooled new-model features at position m to the input of old-model position l.

    Parameters
    ----------
    d_new : width of the pooled new features.
    n_tokens_old : N_old, tokens the old layer consumes.
    d_old : width of each old-layer token.
    rank, n_prototypes : r and Np.
    out_layout : the old layer's input layout, ``"tokens"`` or ``"channels"``.
    seed : seeds the initialisation of ``A`` and (``"normal"``) of ``P``.

    Attributes ``A`` (r, d_new), ``B`` (Np*N_old, r), ``P`` (d_old, Np).
    ``B`` starts at zero, so the bridge's first output is exactly zero.
    """

    def __init__(self, d_new: int, n_tokens_old: int, d_old: int, *, rank: int = 8, n_prototypes: int = 50,
                 out_layout: str = "tokens", seed: int = 0) -> None:
        super().__init__()
        for name, v in (("d_new", d_new), ("n_tokens_old", n_tokens_old), ("d_old", d_old),
                        ("rank", rank), ("n_prototypes", n_prototypes)):
            if int(v) < 1:
                raise ConfigError(f"Bridge: '{name}' must be >= 1, got {v!r}.")
        check_option("out_layout", out_layout, LAYOUTS, owner="Bridge")
        self.d_new, self.n_tokens_old, self.d_old = int(d_new), int(n_tokens_old), int(d_old)
        self.rank, self.n_prototypes, self.out_layout = int(rank), int(n_prototypes), out_layout
        gen = torch.Generator().manual_seed(int(seed))
        self.A = nn.Parameter(torch.empty(self.rank, self.d_new))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5), generator=gen)
        self.B = nn.Parameter(torch.zeros(self.n_prototypes * self.n_tokens_old, self.rank))
        self.P = nn.Parameter(torch.randn(self.d_old, self.n_prototypes, generator=gen))

    # -- construction -----------------------------------------------------------
    @classmethod
    def from_positions(cls, new_pos: Position, old_pos: Position, config: BridgeConfig | None = None) -> "Bridge":
        """Size the bridge from a read position (new model, its output) and a write position (old, its input)."""
        config = config or BridgeConfig()
        if new_pos.out_width < 1:
            raise ConfigError(f"new position '{new_pos.name}' has no (tokens, width) output: {new_pos.out_shape}.")
        if old_pos.in_tokens < 1:
            raise ConfigError(f"old position '{old_pos.name}' has no (tokens, width) input: {old_pos.in_shape}.")
        bridge = cls(new_pos.out_width, old_pos.in_tokens, old_pos.in_width, rank=config.rank,
                     n_prototypes=config.n_prototypes, out_layout=old_pos.in_layout, seed=config.seed)
        if config.calibration == "subject":  # placeholders, filled by training or by loading the weights
            bridge.set_input_reference(Reference(torch.zeros(bridge.d_new), torch.ones(bridge.d_new)))
        return bridge

    def set_input_reference(self, reference: Reference) -> "Bridge":
        """Keep the reference statistics of per-subject input calibration as buffers (saved, not trained).

        ``reference.mean``/``.std``: shape ``(d_new,)``.
        """
        mean, std = torch.as_tensor(reference.mean).float(), torch.as_tensor(reference.std).float()
        if mean.shape != (self.d_new,) or std.shape != (self.d_new,):
            raise ConfigError(f"input reference must have shape ({self.d_new},); got {tuple(mean.shape)}.")
        device = self.A.device
        if "input_mean" in self._buffers:
            self.input_mean.copy_(mean.to(device))
            self.input_std.copy_(std.to(device))
        else:
            self.register_buffer("input_mean", mean.to(device))
            self.register_buffer("input_std", std.to(device))
        return self

    @property
    def input_reference(self) -> Reference | None:
        """Reference statistics for per-subject calibration of the input, or None (no calibration)."""
        if "input_mean" not in self._buffers:
            return None
        return Reference(self.input_mean, self.input_std)

    @torch.no_grad()
    def init_prototypes(self, tokens: torch.Tensor | np.ndarray, *, seed: int = 0) -> "Bridge":
        """Set ``P`` to Np tokens (rows of ``tokens``, shape (n, d_old)) drawn with ``seed``.

        Draws without replacement when there are at least Np tokens.
        """
        t = torch.as_tensor(np.asarray(tokens) if not isinstance(tokens, torch.Tensor) else tokens)
        if t.dim() != 2 or t.shape[1] != self.d_old or t.shape[0] == 0:
            raise ConfigError(f"prototype tokens must have shape (n, {self.d_old}); got {tuple(t.shape)}.")
        rng = np.random.default_rng(seed)
        n = t.shape[0]
        idx = rng.choice(n, size=self.n_prototypes, replace=n < self.n_prototypes)
        self.P.copy_(t[torch.as_tensor(idx)].T.to(self.P))
        return self

    # -- forward ----------------------------------------------------------------
    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        """Token-major output (B, N_old, d_old)."""
        if z.dim() != 2 or z.shape[1] != self.d_new:
            raise ConfigError(f"Bridge expects pooled features of shape (batch, {self.d_new}); got {tuple(z.shape)}.")
        w = (z @ self.A.T) @ self.B.T                      # (B, Np*N_old)
        w = w.view(z.shape[0], self.n_prototypes, self.n_tokens_old)
        return torch.einsum("dp,bpn->bnd", self.P, w)      # (B, N_old, d_old)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Output in the old layer's own layout: tokens (B, N_old, d_old) or channels (B, d_old, N_old)."""
        return from_tokens(self.tokens(z), self.out_layout)

    # -- bookkeeping --------------------------------------------------------------
    @staticmethod
    def param_count(r: int, Np: int, d_new: int, N_old: int, d_old: int) -> int:
        """Trainable parameters: ``r*d_new + r*Np*N_old + Np*d_old``."""
        return int(r * d_new + r * Np * N_old + Np * d_old)

    def n_params(self) -> int:
        return int(sum(p.numel() for p in self.parameters() if p.requires_grad))

    def dims(self) -> dict:
        """JSON-ready shape description (to rebuild or check a saved bridge)."""
        d = {"d_new": self.d_new, "n_tokens_old": self.n_tokens_old, "d_old": self.d_old, "rank": self.rank,
             "n_prototypes": self.n_prototypes, "out_layout": self.out_layout}
        if self.input_reference is not None:
            d["input_calibration"] = "subject"
        return d

    def extra_repr(self) -> str:
        return (f"d_new={self.d_new}, N_old={self.n_tokens_old}, d_old={self.d_old}, r={self.rank}, "
                f"Np={self.n_prototypes}, layout={self.out_layout}, params={self.n_params()}")
