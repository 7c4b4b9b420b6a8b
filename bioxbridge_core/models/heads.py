"""The old model's task head: mean-pool of last-layer tokens, then one linear layer.

``train_task_head`` runs the frozen encoder once over all windows (batched,
no gradients, on the encoder's device), then fits the linear layer on the
pooled features with class-weighted cross-entropy using full-batch L-BFGS
(convex, started from zeros, so deterministic). Features are standardised
while fitting and the standardisation is folded back into the layer, so the
saved head is exactly ``Linear(mean_tokens(last_layer))``.

``fine_tune=True`` additionally trains the encoder with the head: after the
linear fit it runs ``epochs`` (default 3) of Adam over shuffled mini-batches,
lr 1e-5 for the encoder and 1e-3 for the head, dropout on. The encoder passed
in is updated in place and frozen again afterwards (load a fresh copy to undo).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._check import check_option, check_random_state
from ..errors import ConfigError, EncoderError, NotFittedError
from .base import EncoderAdapter, iter_batches, pool

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None] | None
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)


class TaskHead(nn.Module):
    """``logits = Linear(mean over tokens of the encoder's last-layer output)``.

    Attributes: ``label_names`` (one per class), ``encoder_name``, ``width``,
    ``n_classes``, ``linear``; after training also ``l2_`` and ``train_metrics_``.
    """

    def __init__(self, width: int, n_classes: int, *, label_names: Sequence[str] | None = None,
                 encoder_name: str = "") -> None:
        super().__init__()
        if n_classes < 2:
            raise ConfigError(f"A task head needs at least 2 classes, got {n_classes}.")
        names = [str(n) for n in (label_names if label_names is not None else range(n_classes))]
        if len(names) != n_classes:
            raise ConfigError(f"{len(names)} label names for {n_classes} classes.")
        self.width = int(width)
        self.n_classes = int(n_classes)
        self.label_names = names
        self.encoder_name = encoder_name
        self.linear = nn.Linear(self.width, self.n_classes)
        self.fitted = False

    # -- forward ---------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits from last-layer tokens ``(B, n_tokens, width)``."""
        return self.linear(tokens.mean(dim=1))

    def from_pooled(self, z: torch.Tensor) -> torch.Tensor:
        """Logits from already pooled features ``(B, width)``."""
        return self.linear(z)

    def from_last_output(self, h: torch.Tensor, layout: str) -> torch.Tensor:
        """Logits from the last stage's output in its own layout (e.g. ``forward_from`` output)."""
        return self.linear(pool(h, layout))

    # -- inference -------------------------------------------------------------------
    def _check_encoder(self, encoder: EncoderAdapter) -> None:
        if not self.fitted:
            raise NotFittedError("This TaskHead is not trained yet: call train_task_head or TaskHead.load.")
        width = encoder.positions[-1].out_width
        if width != self.width:
            raise EncoderError(f"Head expects {self.width}-wide features but encoder "
                               f"'{encoder.encoder_name}' gives {width}.")
        if self.encoder_name and encoder.encoder_name != self.encoder_name:
            log.warning("head was trained on '%s' but is used with '%s'", self.encoder_name, encoder.encoder_name)

    def predict_proba(self, encoder: EncoderAdapter, x, *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities ``(n_windows, n_classes)`` for windows ``x``."""
        self._check_encoder(encoder)
        z = pooled_last(encoder, x, batch_size=batch_size)
        with torch.no_grad():
            logits = self.linear.to(z.device)(z)
        return torch.softmax(logits, dim=1).cpu().numpy()

    def predict(self, encoder: EncoderAdapter, x, *, batch_size: int = 64) -> np.ndarray:
        return self.predict_proba(encoder, x, batch_size=batch_size).argmax(axis=1).astype(np.int64)

    # -- persistence -----------------------------------------------------------------
    def metadata(self) -> dict:
        return {"format": "bioxbridge-task-head/1", "label_names": self.label_names,
                "encoder_name": self.encoder_name, "width": self.width, "n_classes": self.n_classes,
                "l2": getattr(self, "l2_", None)}

    def save(self, path: str | Path) -> Path:
        """Write ``<path>.safetensors`` (weights + metadata) and a ``.json`` sidecar; returns the weights path."""
        from .._io import atomic_save_safetensors, atomic_write_json

        if not self.fitted:
            raise NotFittedError("Refusing to save an untrained TaskHead.")
        path = Path(path)
        path = path if path.suffix == ".safetensors" else path.with_suffix(".safetensors")
        meta = self.metadata()
        atomic_save_safetensors(path, {"weight": self.linear.weight, "bias": self.linear.bias},
                                metadata={"bioxbridge": json.dumps(meta)})
        atomic_write_json(path.with_suffix(".json"), meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TaskHead":
        """Read a head written by ``save`` (safetensors only, never pickle)."""
        from safetensors import safe_open

        from .._io import load_safetensors

        path = Path(path)
        path = path if path.suffix == ".safetensors" else path.with_suffix(".safetensors")
        if not path.is_file():
            raise EncoderError(f"Task head file not found: {path}")
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("bioxbridge")
        if raw is None:
            raise EncoderError(f"{path} is not a BioX-Bridge task head (no metadata).")
        meta = json.loads(raw)
        tensors = load_safetensors(path)
        head = cls(int(meta["width"]), int(meta["n_classes"]), label_names=meta["label_names"],
                   encoder_name=meta.get("encoder_name", ""))
        try:
            head.linear.load_state_dict({"weight": tensors["weight"], "bias": tensors["bias"]})
        except (KeyError, RuntimeError) as exc:
            raise EncoderError(f"{path}: weights do not match the stored metadata ({exc}).") from None
        head.l2_ = meta.get("l2")
        head.fitted = True
        return head.eval()


# -- features ------------------------------------------------------------------------------
def pooled_last(encoder: EncoderAdapter, x, *, batch_size: int = 64) -> torch.Tensor:
    """Mean-pooled last-layer features ``(n, width)`` on the encoder's device (no grad)."""
    xt = encoder.check_input(x)
    out = []
    with torch.no_grad():
        for sl in iter_batches(xt.shape[0], batch_size):
            out.append(encoder.last_tokens(xt[sl]).mean(dim=1))
    return torch.cat(out).float()


def _class_weights(y: np.ndarray, n_classes: int, class_weight) -> np.ndarray:
    counts = np.bincount(y, minlength=n_classes).astype(float)
    if class_weight is None:
        return np.ones(n_classes)
    if isinstance(class_weight, str):
        check_option("class_weight", class_weight, ("balanced",), owner="train_task_head")
        w = np.zeros(n_classes)
        present = counts > 0
        w[present] = y.size / (present.sum() * counts[present])
        return w
    w = np.asarray(class_weight, dtype=float)
    if w.shape != (n_classes,) or np.any(w < 0):
        raise ConfigError(f"class_weight must be 'balanced', None or {n_classes} non-negative numbers.")
    return w


def _fit_linear(z: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, n_classes: int, l2: float,
                *, max_iter: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted multinomial logistic regression by L-BFGS on standardised features; returns (W, b)."""
    d = z.shape[1]
    w = torch.zeros(n_classes, d, device=z.device, requires_grad=True)
    b = torch.zeros(n_classes, device=z.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, y, weight=weights) + l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def _standardise(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = z.mean(dim=0)
    std = z.std(dim=0, unbiased=False).clamp_min(1e-6)
    return (z - mean) / std, mean, std


def _choose_l2(z: torch.Tensor, y: np.ndarray, groups: np.ndarray, n_classes: int, class_weight,
               seed) -> tuple[float, dict]:
    """Pick the L2 strength by grouped 3-fold CV (balanced accuracy)."""
    from sklearn.model_selection import GroupKFold

    from ..metrics import classification_metrics

    n_splits = min(3, len(np.unique(groups)))
    scores = {}
    for l2 in L2_GRID:
        fold_scores = []
        for tr, te in GroupKFold(n_splits=n_splits).split(np.zeros(len(y)), y, groups):
            if len(np.unique(y[tr])) < 2:
                continue
            zs, mean, std = _standardise(z[tr])
            wts = torch.as_tensor(_class_weights(y[tr], n_classes, class_weight), dtype=torch.float32,
                                  device=z.device)
            W, b = _fit_linear(zs, torch.as_tensor(y[tr], device=z.device), wts, n_classes, l2, max_iter=100)
            pred = (((z[te] - mean) / std) @ W.T + b).argmax(1).cpu().numpy()
            fold_scores.append(classification_metrics(y[te], pred, n_classes)["balanced_accuracy"])
        scores[l2] = float(np.mean(fold_scores)) if fold_scores else float("nan")
    finite = {k: v for k, v in scores.items() if np.isfinite(v)}
    best = max(finite, key=lambda k: (finite[k], k)) if finite else 1e-3
    return best, scores


def train_task_head(encoder: EncoderAdapter, x, y, *, label_names: Sequence[str] | None = None,
                    groups=None, class_weight="balanced", fine_tune: bool = False, seed=0,
                    on_progress: Progress = None, l2: float | None = None, batch_size: int = 64,
                    epochs: int = 3, lr_encoder: float = 1e-5, lr_head: float = 1e-3) -> TaskHead:
    """Train the old model's task head on labelled windows.

    Parameters
    ----------
    encoder : the (frozen) old-modality encoder.
    x : ndarray, shape (n_windows, n_chans, n_times), at ``encoder.spec``.
    y : int class indices, shape (n_windows,).
    label_names : one name per class (defines the number of classes; default ``0..max(y)``).
    groups : optional subject/recording id per window; when given with >= 2 groups and
        ``l2`` is None, the L2 strength is chosen by grouped 3-fold CV from ``L2_GRID``.
    class_weight : ``"balanced"`` (default), None, or one weight per class.
    fine_tune : also train the encoder (see module docstring).
    seed : controls fine-tuning shuffles and CV folds (the linear fit itself is deterministic).
    on_progress : optional ``callback(step, total, message)``.
    """
    rng = check_random_state(seed)
    y_arr = np.asarray(y)
    if y_arr.ndim != 1 or not np.issubdtype(y_arr.dtype, np.integer):
        raise ConfigError(f"y must be 1-D integer class indices, got dtype {y_arr.dtype} shape {y_arr.shape}.")
    n_classes = len(label_names) if label_names is not None else int(y_arr.max()) + 1
    if y_arr.min() < 0 or y_arr.max() >= n_classes:
        raise ConfigError(f"y holds class indices outside 0..{n_classes - 1} (label_names={label_names}).")
    if len(np.unique(y_arr)) < 2:
        raise ConfigError(f"y has a single class ({int(y_arr[0])}); a task head needs at least two.")
    xt = encoder.check_input(x)
    if xt.shape[0] != y_arr.size:
        raise ConfigError(f"x has {xt.shape[0]} windows but y has {y_arr.size} labels.")
    total = 3 + (epochs if fine_tune else 0)
    if on_progress:
        on_progress(0, total, "computing encoder features")
    z = pooled_last(encoder, xt, batch_size=batch_size)
    head = TaskHead(z.shape[1], n_classes, label_names=label_names, encoder_name=encoder.encoder_name)
    cv_scores: dict = {}
    if l2 is None:
        g = None if groups is None else np.asarray(groups)
        if g is not None and g.shape[0] != y_arr.size:
            raise ConfigError(f"groups has {g.shape[0]} entries but y has {y_arr.size}.")
        if g is not None and len(np.unique(g)) >= 2:
            if on_progress:
                on_progress(1, total, "choosing regularisation by grouped CV")
            l2, cv_scores = _choose_l2(z, y_arr, g, n_classes, class_weight, rng)
        else:
            l2 = 1e-3
    if on_progress:
        on_progress(2, total, "fitting the linear head")
    zs, mean, std = _standardise(z)
    wts = torch.as_tensor(_class_weights(y_arr, n_classes, class_weight), dtype=torch.float32, device=z.device)
    yt = torch.as_tensor(y_arr, dtype=torch.long, device=z.device)
    W, b = _fit_linear(zs, yt, wts, n_classes, float(l2))
    with torch.no_grad():  # fold the standardisation into the layer
        head.linear.weight.copy_((W / std).cpu())
        head.linear.bias.copy_((b - (W / std) @ mean).cpu())
    head.l2_ = float(l2)
    head.cv_scores_ = cv_scores
    head.fitted = True
    if fine_tune:
        _fine_tune(encoder, head, xt, yt, wts, epochs=epochs, batch_size=min(batch_size, 32), lr_encoder=lr_encoder,
                   lr_head=lr_head, rng=rng, on_progress=on_progress, total=total)
    if on_progress:
        on_progress(total, total, "task head trained")
    return head.eval()


def _fine_tune(encoder: EncoderAdapter, head: TaskHead, xt: torch.Tensor, yt: torch.Tensor, wts: torch.Tensor, *,
               epochs: int, batch_size: int, lr_encoder: float, lr_head: float, rng: np.random.Generator,
               on_progress: Progress, total: int) -> None:
    device = xt.device
    head.to(device)
    encoder.unfreeze().train()
    gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**31)))
    opt = torch.optim.Adam([{"params": encoder.parameters(), "lr": lr_encoder},
                            {"params": head.parameters(), "lr": lr_head}])
    try:
        with torch.enable_grad():
            for epoch in range(epochs):
                order = torch.randperm(xt.shape[0], generator=gen).to(device)
                losses = []
                for sl in iter_batches(xt.shape[0], batch_size):
                    idx = order[sl]
                    logits = head(encoder.last_tokens(xt[idx]))
                    loss = F.cross_entropy(logits, yt[idx], weight=wts)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses.append(loss.item())
                log.info("fine-tune epoch %d/%d: loss %.4f", epoch + 1, epochs, float(np.mean(losses)))
                if on_progress:
                    on_progress(3 + epoch, total, f"fine-tuning epoch {epoch + 1}/{epochs}")
    finally:
        encoder.freeze()
        encoder._positions = None  # shapes unchanged, but rediscover lazily for safety
        head.requires_grad_(False)
    head.cpu()


def pseudo_labels(encoder: EncoderAdapter, head: TaskHead, x_old, *, batch_size: int = 64) -> np.ndarray:
    """``argmax g_old(f_old(x_old))`` per window (int64)."""
    return head.predict(encoder, x_old, batch_size=batch_size)


def evaluate_head(encoder: EncoderAdapter, head: TaskHead, x, y, *, batch_size: int = 64) -> dict:
    """``classification_metrics`` of the head's predictions on labelled windows."""
    from ..metrics import classification_metrics

    pred = head.predict(encoder, x, batch_size=batch_size)
    return classification_metrics(np.asarray(y), pred, head.n_classes)
