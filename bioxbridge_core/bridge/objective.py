"""What the bridge's last-layer loss compares (METHOD.md step 4, with two options).

The loss is always taken at the old model's **last** layer against the frozen old model's
output on the real old window. Two settings of ``BridgeConfig`` decide which view of
that output is compared:

``loss_on``
    ``"pooled"`` (default): the last-layer output mean-pooled over tokens, i.e. exactly the
    vector the old task head reads. ``"tokens"``: every token of the flattened output (the
    paper's ``1 - cos(flatten(pred), flatten(target))``). Why pooled by default: the bridge
    sees one pooled new-model vector per window, so the per-token part of the target
    (where in the window each beat falls, which the pooled input cannot know) is
    unpredictable noise that dominates the flattened loss. On the 864-window demo (as it was then) the
    tokens loss moved from 1.00 to 0.97 in 20 epochs and left the bridge at 0.667 balanced
    accuracy; the pooled loss fell from 1.05 to 0.50 and reached 0.93-1.00 (bench/RESULTS.md).

``calibration``
    ``"subject"``: per-subject feature calibration (``models.subject_norm``). The bridge input
    ``z`` (pooled new features at m) of every pair is standardised with its subject's own
    pairs and mapped onto the training pairs' statistics (kept in the bridge as buffers so
    prediction does the same with the upload's own windows), and the pooled target is
    calibrated the same way, so the bridge is not asked to reproduce between-subject offsets
    it cannot see. Needs ``loss_on="pooled"`` for the target part.

``target_norm="standardise"`` then z-scores each compared feature with the training pairs'
statistics (label-free), as before.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.base import pool
from ..models.subject_norm import Reference, calibrate
from ..training.cache import BridgeCache
from .config import BridgeConfig


class BridgeObjective:
    """Prepares cached targets/inputs and pools predictions for the configured loss.

    Parameters
    ----------
    config : the BridgeConfig (``loss_on``, ``calibration``).
    last_layout : layout of the old model's last stage output (``"tokens"``/``"channels"``).

    After ``prepare``: ``z_reference`` (``Reference`` of the bridge input, calibration only) and
    ``old_logits_all`` (the old model's own logits for every pair, for the agreement check).
    """

    def __init__(self, config: BridgeConfig, last_layout: str) -> None:
        self.config = config
        self.last_layout = last_layout
        self.z_reference: Reference | None = None
        self.groups: np.ndarray | None = None
        self._raw_pooled: torch.Tensor | None = None

    @property
    def pooled(self) -> bool:
        return self.config.loss_on == "pooled"

    def pool(self, last: torch.Tensor) -> torch.Tensor:
        """Mean over tokens of a last-layer output ``(B, ...)`` -> ``(B, width)``."""
        return pool(last, self.last_layout)

    def prepare(self, cache: BridgeCache, groups, train_idx: np.ndarray) -> BridgeCache:
        """Pool (and calibrate) the cached targets and calibrate the cached bridge inputs.

        ``groups``: subject id per pair (``None`` = one subject). Returns a cache whose targets are the
        pooled ``(n, width)`` vectors held in memory (``loss_on="pooled"``), or the given cache's
        (possibly memory-mapped) targets otherwise. Targets are read in chunks, never all at once.
        """
        n = len(cache)
        self.groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups).astype(str)
        rows = torch.as_tensor(np.asarray(train_idx, dtype=np.int64))
        chunk = max(1, (8 * 2**20) // (4 * max(1, int(np.prod(cache.target.shape[1:])))))
        self._raw_pooled = torch.cat([self.pool(cache.rows("target", slice(i, i + chunk)))
                                      for i in range(0, n, chunk)])
        z, target, maps = cache.z, cache.target, getattr(cache, "maps", ())
        if self.config.calibration == "subject":
            z = cache.rows("z", slice(0, n))
            self.z_reference = Reference.of(z[rows.to(z.device)].cpu())
            z = calibrate(z, self.groups, self.z_reference)
        if self.pooled:
            target = self._raw_pooled
            if self.config.calibration == "subject":
                target = calibrate(target, self.groups, Reference.of(target[rows.to(target.device)].cpu()))
            if z is cache.z:
                z = cache.rows("z", slice(0, n))  # small: keep it in memory with the pooled targets
            maps = ()
        if hasattr(cache, "release"):
            cache.release()
        if maps:
            return BridgeCache(z, target, cache.proto_tokens, maps=maps)
        return BridgeCache(z, target, cache.proto_tokens)

    def attach(self, bridge) -> None:
        """Store the input reference in the bridge (buffers saved with its weights)."""
        if self.z_reference is not None:
            bridge.set_input_reference(self.z_reference)

    def view(self, last: torch.Tensor) -> torch.Tensor:
        """What the loss compares of a last-layer output: pooled ``(B, width)`` or the output itself."""
        return self.pool(last) if self.pooled else last

    @torch.no_grad()
    def agreement(self, head, pooled_pred: torch.Tensor, idx: np.ndarray) -> float:
        """Share of pairs ``idx`` where the bridged prediction equals the old model's on the real old window.

        ``pooled_pred``: pooled bridged last-layer outputs of ``idx`` (in that order). A calibrating
        head calibrates both sides per subject with the rows of ``idx``.
        """
        idx = np.asarray(idx)
        subj = self.groups[idx]
        ref_pooled = self._raw_pooled[torch.as_tensor(idx)].to(pooled_pred.device)
        mine = _logits(head, pooled_pred, subj).argmax(dim=1)
        theirs = _logits(head, ref_pooled, subj).argmax(dim=1)
        return float((mine == theirs).float().mean())


def _logits(head, pooled: torch.Tensor, subjects) -> torch.Tensor:
    if hasattr(head, "logits_from_pooled"):
        return head.logits_from_pooled(pooled, subjects)
    return head.linear(pooled) if hasattr(head, "linear") else head(pooled[:, None, :])
