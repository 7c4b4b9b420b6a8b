"""BridgedModel: new encoder to m -> pool -> bridge -> old encoder from l -> old task head.

Needs only new-modality windows: the old encoder is entered at stage l and
never sees raw old-modality input (its ``prepare`` and stages before l are not run).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models.base import EncoderAdapter, iter_batches, pool, to_tokens
from .network import Bridge


def new_features(encoder: EncoderAdapter, x: torch.Tensor, position: str | int) -> torch.Tensor:
    """Pooled output of new-model stage ``position``: (B, d_new)."""
    pos = encoder.position(position)
    return pool(encoder.forward_until(x, pos.index), pos.out_layout)


def head_logits(head: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Logits of the old task head for last-layer tokens (B, n_tokens, width)."""
    return head(tokens)


class BridgedModel(nn.Module):
    """The composed predictor ``g_old(f_old[l..](b(pool(f_new[..m](x_new)))))``.

    Parameters
    ----------
    new_encoder, old_encoder : frozen adapters.
    bridge : a ``Bridge`` sized for (new_position, old_position).
    head : the old task head: maps last-layer tokens (B, n_tokens, width) to logits.
    new_position, old_position : read position m (new model) and write position l (old model).
    label_names : class names (defaults to ``head.label_names``).
    info : free JSON-ready description (the bundle's contents) kept for inference.
    """

    def __init__(self, new_encoder: EncoderAdapter, old_encoder: EncoderAdapter, bridge: Bridge, head: nn.Module,
                 *, new_position: str | int, old_position: str | int, label_names: Sequence[str] | None = None,
                 info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.new_encoder, self.old_encoder, self.bridge, self.head = new_encoder, old_encoder, bridge, head
        self.new_pos = new_encoder.position(new_position)
        self.old_pos = old_encoder.position(old_position)
        if self.old_pos.index == 0:
            raise ConfigError("The bridge cannot write the input of the old model's first stage; pick a later one.")
        if (bridge.d_new, bridge.n_tokens_old, bridge.d_old, bridge.out_layout) != (
                self.new_pos.out_width, self.old_pos.in_tokens, self.old_pos.in_width, self.old_pos.in_layout):
            raise ConfigError(
                f"Bridge shape {bridge.dims()} does not fit new '{self.new_pos.name}' (width {self.new_pos.out_width}) "
                f"-> old '{self.old_pos.name}' input {self.old_pos.in_shape} ({self.old_pos.in_layout})."
            )
        names = label_names if label_names is not None else getattr(head, "label_names", None)
        self.label_names = [str(n) for n in names] if names is not None else []
        self.info = dict(info or {})

    @property
    def new_spec(self):
        return self.new_encoder.spec

    def _device(self) -> torch.device:
        return self.bridge.A.device

    def forward(self, x_new: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) from new-modality windows (B, n_chans, n_times)."""
        z = new_features(self.new_encoder, x_new, self.new_pos.index)
        h = self.bridge(z)
        last = self.old_encoder.forward_from(h, self.old_pos.index)
        tokens = to_tokens(last, self.old_encoder.positions[-1].out_layout)
        return head_logits(self.head, tokens)

    @torch.no_grad()
    def predict_proba(self, x_new: np.ndarray | torch.Tensor, *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (n_windows, n_classes); needs only the new modality."""
        x = self.new_encoder.check_input(x_new, name="x_new")
        was = self.training
        self.eval()
        try:
            out = [torch.softmax(self(x[sl].to(self._device())), dim=1).float().cpu() for sl in
                   iter_batches(x.shape[0], batch_size)]
        finally:
            self.train(was)
        return torch.cat(out).numpy()

    def predict(self, x_new: np.ndarray | torch.Tensor, *, batch_size: int = 64) -> np.ndarray:
        """Predicted class index per window."""
        return self.predict_proba(x_new, batch_size=batch_size).argmax(axis=1)

    def trainable_params(self) -> int:
        """Parameters trained by bridging (the bridge only)."""
        return self.bridge.n_params()
