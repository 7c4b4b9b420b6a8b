"""Knowledge-distillation baseline: train a whole new-modality student on the teacher's soft labels.

The student is a trainable copy of the new encoder plus a linear head on its
mean-pooled last-layer tokens. The teacher (old encoder + old task head on the
real old windows) is run once and its logits cached. Loss: ``KL(p_T || q_T) * T**2``
with temperature T. Same pair-validation split and best-epoch rule as the bridge
(and the same early stopping: ``patience`` epochs without a better pair-val loss).

``calibration="subject"`` treats KD like the bridge and the old model: the teacher is
the calibrating old head (its per-subject statistics over each subject's pairs), and the
student's pooled features are standardised per subject (``models.subject_norm``) before its
linear layer, with each subject's statistics refreshed from all of its pairs at the start
of every epoch (one extra forward pass per epoch). Prediction takes them from the windows
passed in (``subjects``; ``None`` = one subject).

Windows may be memory maps: the teacher pass and every training step read one batch of
rows, so memory does not grow with the number of pairs (only the (n, n_classes) teacher
logits are held). Under ``torchrun`` the student and its head (the trainable part) are
wrapped in DistributedDataParallel, every rank sees the same global batches and takes
``batch[rank::world]`` (see ``distributed``); with no dropout, BatchNorm in eval mode or
SyncBatchNorm on GPUs, the result equals one process. Dropout masks are drawn per rank
(seed + rank), and on CPU BatchNorm statistics come from each rank's share of the batch, so
then it matches only in distribution.
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

from .. import _npy
from .. import distributed as dist
from .._check import check_range, check_window_shapes
from ..device import resolve_device
from ..errors import ConfigError, NotFittedError, StopRequested
from ..models.base import EncoderAdapter, iter_batches
from ..models.subject_norm import Reference, calibrate, check_calibration, subject_stats
from ..training.split import pair_val_split

logger = logging.getLogger(__name__)


class _StudentNet(nn.Module):
    """The trainable part: student encoder + linear head on its mean-pooled last-layer tokens."""

    def __init__(self, student: EncoderAdapter, linear: nn.Linear) -> None:
        super().__init__()
        self.student, self.linear = student, linear

    def forward(self, x: torch.Tensor, transform: Callable | None = None) -> torch.Tensor:
        z = self.student.last_tokens(x).mean(dim=1)
        return self.linear(z if transform is None else transform(z))


def _batch(x: np.ndarray, rows, device: torch.device, name: str) -> torch.Tensor:
    block = _npy.take_rows(x, rows).astype(np.float32, copy=False)
    if not np.isfinite(block).all():
        raise ConfigError(f"{name} contains NaN or infinite values.")
    return torch.from_numpy(block).to(device)


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
        """Teacher logits ``(n, n_classes)`` on the real old windows, computed once (CPU tensor).

        Reads ``x_old`` one batch at a time; under torchrun each rank computes a share and the
        shares are summed over ranks. A head that calibrates per subject gets the pooled features
        of all windows at once, with ``subjects``.
        """
        x = check_window_shapes(x_old, old_encoder, "x_old")
        n, dev = int(x.shape[0]), old_encoder._param_device()
        calibrating = getattr(head, "calibration", "none") == "subject"
        mine = dist.split_rows(np.arange(n))
        out: torch.Tensor | None = None
        for sl in iter_batches(mine.size, batch_size):
            rows = mine[sl]
            tokens = old_encoder.last_tokens(_batch(x, slice(int(rows[0]), int(rows[-1]) + 1), dev, "x_old"))
            logits = (tokens.mean(dim=1) if calibrating else head(tokens)).float().cpu()
            if out is None:
                out = torch.zeros((n, logits.shape[1]))
            out[rows] = logits
        if dist.is_distributed():  # add up the ranks' shares (a rank without rows adds zeros)
            have = torch.tensor([0.0, 0.0] if out is None else [float(out.shape[1]), 1.0])
            width, count = dist.all_reduce_sum(have).tolist()
            out = dist.all_reduce_sum(out if out is not None else torch.zeros((n, int(round(width / count)))))
        if calibrating:  # out held pooled features: calibrate per subject over all pairs, then the layer
            out = head.logits_from_pooled(out.to(dev), subjects).float().cpu()
        return out

    def fit(self, old_encoder: EncoderAdapter, head: nn.Module, x_old: np.ndarray, x_new: np.ndarray, *,
            groups: Sequence | np.ndarray | None = None, on_epoch: Callable[[dict], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            on_progress: Callable[[int, int, str], None] | None = None) -> "KDStudent":
        self._check_params()
        want = dist.rank_device(self.device)
        device = resolve_device(want) if want is not None else self.new_encoder._param_device()
        old_encoder.to(device)
        head.to(device)
        t_logits = self.teacher_logits(old_encoder, head, x_old, subjects=groups)
        x = check_window_shapes(x_new, self.new_encoder, "x_new")
        if len(x) != len(t_logits):
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
        net: nn.Module = _StudentNet(student, linear)
        if dist.is_distributed() and device.type == "cuda":
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            student = net.student
        params = [p for p in net.parameters() if p.requires_grad]
        self.trainable_params_ = int(sum(p.numel() for p in params))
        logger.info("KD student: %d trainable parameters, T=%g", self.trainable_params_, self.temperature)
        model = dist.wrap_ddp(net, device)  # the trainable part only; the teacher stays outside
        opt = torch.optim.Adam(params, lr=self.lr)
        T = float(self.temperature)
        world, main = dist.world_size(), dist.is_main()
        if not main:
            on_epoch = on_progress = None
        stats: list = [None]  # this epoch's per-subject statistics of the student's pooled features

        def refresh_stats() -> None:
            if self.calibration == "subject":
                was = net.training
                net.eval()
                z = self._pooled(student, x, device)
                net.train(was)
                self.reference_ = Reference.of(z.cpu())
                stats[0] = subject_stats(z, groups, self.reference_)

        def per_pair(m: nn.Module, idx: np.ndarray) -> torch.Tensor:
            st = stats[0]
            s = m(_batch(x, idx, device, "x_new"), None if st is None else (lambda z: st.apply(z, idx)))
            p = F.softmax(t_logits[idx].to(device) / T, dim=1)
            return F.kl_div(F.log_softmax(s / T, dim=1), p, reduction="none").sum(dim=1) * T * T

        @torch.no_grad()
        def evaluate(idx: np.ndarray) -> float | None:
            if len(idx) == 0:
                return None
            net.eval()
            mine = dist.split_rows(idx)
            tot = sum(float(per_pair(net, mine[sl]).sum()) for sl in iter_batches(len(mine), 64))
            net.train()
            return float(dist.all_reduce_sum(torch.tensor([tot], dtype=torch.float64))[0]) / len(idx)

        steps = int(np.ceil(len(train_idx) / self.batch_size))
        history, best, best_score, best_epoch = [], None, float("inf"), None
        self.stopped_ = False
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed + dist.rank())  # dropout in the student, without touching the caller's RNG
            net.train()
            try:
                for epoch in range(1, self.epochs + 1):
                    t0, tot = time.perf_counter(), 0.0
                    refresh_stats()
                    perm = torch.randperm(len(train_idx), generator=gen).numpy()  # same on every rank
                    for s in range(steps):
                        if dist.any_rank(should_stop is not None and should_stop()):
                            raise StopRequested(f"stop requested during KD epoch {epoch}")
                        b = train_idx[perm[s * self.batch_size:(s + 1) * self.batch_size]]  # the global batch
                        mine, weight = dist.local_share(b), 1.0
                        if len(mine) == 0:  # fewer pairs than ranks: take part in the all-reduce with weight 0
                            mine, weight = b[:1], 0.0
                        losses = per_pair(model, mine)
                        loss = losses.sum() * (weight * world / len(b))  # DDP averages over ranks
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        tot += float(losses.detach().sum()) * weight
                        if on_progress is not None:
                            on_progress((epoch - 1) * steps + s + 1, self.epochs * steps, f"KD epoch {epoch}/{self.epochs}")
                    tot = float(dist.all_reduce_sum(torch.tensor([tot], dtype=torch.float64))[0])
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
        """Class probabilities (n_windows, n_classes) from new-modality windows only (read in batches).

        ``subjects``: subject id per window when calibrating (``None``: all windows one subject).
        """
        if not hasattr(self, "student_"):
            raise NotFittedError("KDStudent is not fitted; call fit(...) first.")
        x = check_window_shapes(x_new, self.student_, "x_new")
        dev = self.student_._param_device()
        z = self._pooled(self.student_, x, dev, batch_size=batch_size)
        if self.calibration == "subject":
            z = calibrate(z, subjects, self.reference_)
        return F.softmax(self.linear_(z), dim=1).cpu().numpy()

    def predict(self, x_new: np.ndarray, *, subjects=None) -> np.ndarray:
        return self.predict_proba(x_new, subjects=subjects).argmax(axis=1)

    @staticmethod
    @torch.no_grad()
    def _pooled(student: EncoderAdapter, x: np.ndarray, device, *, batch_size: int = 64) -> torch.Tensor:
        """Mean-pooled last-layer features ``(n, width)`` of all windows, read in batches."""
        return torch.cat([student.last_tokens(_batch(x, sl, device, "x")).mean(dim=1)
                          for sl in iter_batches(x.shape[0], batch_size)])
