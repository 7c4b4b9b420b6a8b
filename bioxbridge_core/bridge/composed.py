"""BridgedModel: new encoder to m -> pool -> bridge -> old encoder from l -> old task head.

Needs only new-modality windows: the old encoder is entered at stage l and
never sees raw old-modality input (its ``prepare`` and stages before l are not run).

With per-subject calibration (a bridge trained with ``calibration="subject"`` and/or a
calibrating head), ``predict_proba(x_new, subjects=...)`` takes each subject's statistics
from all of that subject's windows passed in; ``subjects=None`` treats all windows as one
subject -- for a new upload, its own windows (see ``models.subject_norm``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models.base import EncoderAdapter, iter_batches, pool, to_tokens
from ..models.subject_norm import calibrate
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

    @property
    def calibrated(self) -> bool:
        """True when the bridge input or the head is calibrated per subject."""
        return self.bridge.input_reference is not None or getattr(self.head, "calibration", "none") == "subject"

    def forward(self, x_new: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) from new-modality windows (B, n_chans, n_times).

        A calibrated model takes its statistics from this batch as one subject; use
        ``predict_proba`` to calibrate over all of a subject's windows.
        """
        z = new_features(self.new_encoder, x_new, self.new_pos.index)
        if self.bridge.input_reference is not None:
            z = calibrate(z, None, self.bridge.input_reference)
        last = self.old_encoder.forward_from(self.bridge(z), self.old_pos.index)
        if hasattr(self.head, "logits_from_pooled"):
            return self.head.logits_from_pooled(pool(last, self.old_encoder.positions[-1].out_layout))
        return head_logits(self.head, to_tokens(last, self.old_encoder.positions[-1].out_layout))

    @torch.no_grad()
    def logits(self, x_new: np.ndarray | torch.Tensor, *, subjects=None, batch_size: int = 64) -> torch.Tensor:
        """Logits (n_windows, n_classes), CPU float32; ``subjects`` = one id per window (None: one subject)."""
        x = self.new_encoder.check_input(x_new, name="x_new")
        if not self.calibrated or not hasattr(self.head, "logits_from_pooled"):
            return torch.cat([self(x[sl].to(self._device())).float().cpu() for sl in iter_batches(x.shape[0], batch_size)])
        dev = self._device()
        z = torch.cat([new_features(self.new_encoder, x[sl].to(dev), self.new_pos.index)
                       for sl in iter_batches(x.shape[0], batch_size)])
        if self.bridge.input_reference is not None:
            z = calibrate(z, subjects, self.bridge.input_reference)
        layout = self.old_encoder.positions[-1].out_layout
        pooled = torch.cat([pool(self.old_encoder.forward_from(self.bridge(z[sl]), self.old_pos.index), layout)
                            for sl in iter_batches(z.shape[0], batch_size)])
        return self.head.logits_from_pooled(pooled, subjects).float().cpu()

    def predict_proba(self, x_new: np.ndarray | torch.Tensor, *, subjects=None, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (n_windows, n_classes); needs only the new modality.

        ``subjects``: subject id per window for per-subject calibration (``None``: all windows
        are one subject, e.g. one upload).
        """
        was = self.training
        self.eval()
        try:
            return torch.softmax(self.logits(x_new, subjects=subjects, batch_size=batch_size), dim=1).numpy()
        finally:
            self.train(was)

    def predict(self, x_new: np.ndarray | torch.Tensor, *, subjects=None, batch_size: int = 64) -> np.ndarray:
        """Predicted class index per window."""
        return self.predict_proba(x_new, subjects=subjects, batch_size=batch_size).argmax(axis=1)

    def trainable_params(self) -> int:
        """Parameters trained by bridging (the bridge only)."""
        return self.bridge.n_params()
