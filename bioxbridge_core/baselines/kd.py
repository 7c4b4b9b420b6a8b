"""Knowledge-distillation baseline: train a whole new-modality student on the teacher's soft labels.

The student is a trainable copy of the new encoder plus a linear head on its
mean-pooled last-layer tokens. The teacher (old encoder + old task head on the
real old windows) is run once and its logits cached. Loss: ``KL(p_T || q_T) * T**2``
with temperature T. Same pair-validation split and best-epoch rule as the bridge
(and the same early stopping: ``patience`` epochs without a better pair-val loss).

``calibration="subject"`` treats KD like the bridge and the old model: the teacher is
the calibrating old head (``head.logits(..., subjects=groups)``), and the student's pooled
features are standardised per subject (``models.subject_norm``) before its linear layer,
with each subject's statistics refreshed from all of its pairs at the start of every
epoch (one extra forward pass per epoch). Prediction takes them from the windows passed in.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._check import check_range
from ..device import resolve_device
from ..errors import NotFittedError, StopRequested
from ..models.base import EncoderAdapter, iter_batches
from ..models.subject_norm import Reference, calibrate, check_calibration, subject_stats
from ..training.split import pair_val_split

logger = logging.getLogger(__name__)


class KDStudent:
    """Distil the old model (teacher) into a copy of the new encoder.

    Parameters
    ----------
    new_encoder : the student's starting point (copied; the original stays untouched).
    temperature : T for the softened distributions (loss scaled by T**2).
    lr, epochs, batch_size, seed, val_fraction, patience : as for the bridge.
    device : ``None`` uses the new encoder's device.
    calibration : ``"none"`` or ``"subject"`` (see the module docstring).
    """

    def __init__(self, new_encoder: EncoderAdapter, *, temperature: float = 2.0, lr: float = 1e-4,
                 epochs: int = 50, batch_size: int = 16, seed: int = 0, val_fraction: float = 0.2,
                 device: str | None = None, calibration: str = "none", patience: int = 0) -> None:
        self.new_encoder = new_encoder
        self.temperature, self.lr, self.epochs = temperature, lr, epochs
        self.batch_size, self.seed, self.val_fraction, self.device = batch_size, seed, val_fraction, device
        self.calibration, self.patience = check_calibration(calibration, owner="KDStudent"), patience

    def _check_params(self) -> None:
        check_range("temperature", self.temperature, low=0, low_inclusive=False, owner="KDStudent")
        check_range("lr", self.lr, low=0, low_inclusive=False, high=1.0, owner="KDStudent")
        check_range("epochs", self.epochs, low=1, owner="KDStudent", integer=True)
        check_range("batch_size", self.batch_size, low=1, owner="KDStudent", integer=True)
        check_range("val_fraction", self.val_fraction, low=0, high=0.9, owner="KDStudent")
        check_range("patience", self.patience, low=0, owner="KDStudent", integer=True)

    @torch.no_grad()
    def teacher_logits(self, old_encoder: EncoderAdapter, head: nn.Module, x_old: np.ndarray,
                       *, subjects=None, batch_size: int = 64) -> torch.Tensor:
        """Teacher logits on the real old windows, computed once (CPU tensor).

        A ``TaskHead`` computes them itself (calibrating per subject when it was trained so).
        """
        if hasattr(head, "logits"):
            return head.logits(old_encoder, x_old, subjects=subjects, batch_size=batch_size)
        x = old_encoder.check_input(x_old, name="x_old")
        return torch.cat([head(old_encoder.last_tokens(x[sl])).float().cpu()
                          for sl in iter_batches(x.shape[0], batch_size)])

    def fit(self, old_encoder: EncoderAdapter, head: nn.Module, x_old: np.ndarray, x_new: np.ndarray, *,
            groups: Sequence | np.ndarray | None = None, on_epoch: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            on_progress: Callable[[int, int, str], None] | None = None) -> "KDStudent":
        self._check_params()
        device = resolve_device(self.device) if self.device is not None else self.new_encoder._param_device()
        old_encoder.to(device)
        head.to(device)
        t_logits = self.teacher_logits(old_encoder, head, x_old, subjects=groups)
        x = self.new_encoder.check_input(x_new, name="x_new").cpu()
        if len(x) != len(t_logits):
            from ..errors import ConfigError

            raise ConfigError(f"x_old has {len(t_logits)} windows but x_new has {len(x)}; pairs must be row-aligned.")
        train_idx, val_idx = pair_val_split(len(x), groups, self.val_fraction, seed=self.seed)

        student = copy.deepcopy(self.new_encoder).to(device).unfreeze()
        width = student.positions[-1].out_width
        linear = nn.Linear(width, t_logits.shape[1]).to(device)
        gen = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            bound = 1.0 / np.sqrt(width)
            linear.weight.copy_(torch.empty_like(linear.weight, device="cpu").uniform_(-bound, bound, generator=gen))
            linear.bias.zero_()
        params = [p for p in list(student.parameters()) + list(linear.parameters()) if p.requires_grad]
        self.trainable_params_ = int(sum(p.numel() for p in params))
        logger.info("KD student: %d trainable parameters, T=%g", self.trainable_params_, self.temperature)
        opt = torch.optim.Adam(params, lr=self.lr)
        T = float(self.temperature)
        stats: list = [None]  # this epoch's per-subject statistics of the student's pooled features

        def refresh_stats() -> None:
            if self.calibration == "subject":
                was = student.training
                student.eval()
                z = self._pooled(student, x, device)
                student.train(was)
                self.reference_ = Reference.of(z.cpu())
                stats[0] = subject_stats(z, groups, self.reference_)

        def loss_on(idx: np.ndarray) -> torch.Tensor:
            z = student.last_tokens(x[idx].to(device)).mean(dim=1)
            s = linear(z if stats[0] is None else stats[0].apply(z, idx))
            p = F.softmax(t_logits[idx].to(device) / T, dim=1)
            return F.kl_div(F.log_softmax(s / T, dim=1), p, reduction="batchmean") * T * T

        @torch.no_grad()
        def evaluate(idx: np.ndarray) -> float | None:
            if len(idx) == 0:
                return None
            student.eval()
            tot = sum(float(loss_on(idx[sl])) * len(idx[sl]) for sl in iter_batches(len(idx), 64))
            student.train()
            return tot / len(idx)

        steps = int(np.ceil(len(train_idx) / self.batch_size))
        history, best, best_score, best_epoch = [], None, float("inf"), None
        self.stopped_ = False
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)  # dropout in the student, without touching the caller's RNG
            student.train()
            try:
                for epoch in range(1, self.epochs + 1):
                    t0, tot = time.perf_counter(), 0.0
                    refresh_stats()
                    perm = torch.randperm(len(train_idx), generator=gen).numpy()
                    for s in range(steps):
                        if should_stop is not None and should_stop():
                            raise StopRequested(f"stop requested during KD epoch {epoch}")
                        b = train_idx[perm[s * self.batch_size:(s + 1) * self.batch_size]]
                        loss = loss_on(b)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        tot += float(loss.detach()) * len(b)
                        if on_progress is not None:
                            on_progress((epoch - 1) * steps + s + 1, self.epochs * steps, f"KD epoch {epoch}/{self.epochs}")
                    val = evaluate(val_idx)
                    row = {"epoch": epoch, "train_loss": tot / len(train_idx), "val_loss": val,
                           "seconds": time.perf_counter() - t0}
                    history.append(row)
                    score = val if val is not None else row["train_loss"]
                    if score < best_score:
                        best_score, best_epoch = score, epoch
                        best = (copy.deepcopy(student.state_dict()), copy.deepcopy(linear.state_dict()))
                    if on_epoch is not None:
                        on_epoch(dict(row, best_epoch=best_epoch))
                    if self.patience and best_epoch is not None and epoch - best_epoch >= self.patience:
                        logger.info("KD early stop: no better pair-val loss for %d epochs", self.patience)
                        break
            except StopRequested as exc:
                self.stopped_ = True
                logger.info("%s", exc)
        if best is not None:
            student.load_state_dict(best[0])
            linear.load_state_dict(best[1])
        student.freeze()
        linear.eval()
        if self.calibration == "subject":  # the reference of the kept weights
            self.reference_ = Reference.of(self._pooled(student, x, device).cpu())
        self.student_, self.linear_, self.history_, self.best_epoch_ = student, linear, history, best_epoch
        self.n_pairs_, self.n_train_, self.n_val_ = len(x), len(train_idx), len(val_idx)
        return self

    @property
    def trainable_params(self) -> int:
        """Parameters KD trains (the whole student encoder + its linear head)."""
        if not hasattr(self, "trainable_params_"):
            raise NotFittedError("KDStudent is not fitted; call fit(...) first.")
        return self.trainable_params_

    @torch.no_grad()
    def predict_proba(self, x_new: np.ndarray, *, subjects=None, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (n_windows, n_classes) from new-modality windows only.

        ``subjects``: subject id per window when calibrating (``None``: all one subject).
        """
        if not hasattr(self, "student_"):
            raise NotFittedError("KDStudent is not fitted; call fit(...) first.")
        x = self.student_.check_input(x_new, name="x_new")
        z = self._pooled(self.student_, x, x.device, batch_size=batch_size)
        if self.calibration == "subject":
            z = calibrate(z, subjects, self.reference_)
        return F.softmax(self.linear_(z), dim=1).cpu().numpy()

    def predict(self, x_new: np.ndarray, *, subjects=None) -> np.ndarray:
        return self.predict_proba(x_new, subjects=subjects).argmax(axis=1)

    @staticmethod
    @torch.no_grad()
    def _pooled(student: EncoderAdapter, x: torch.Tensor, device, *, batch_size: int = 64) -> torch.Tensor:
        return torch.cat([student.last_tokens(x[sl].to(device)).mean(dim=1) for sl in iter_batches(x.shape[0], batch_size)])
