"""Per-subject feature calibration: map each subject's pooled features onto a reference distribution.

Physiology differs more between people than between the states a task asks about
(resting heart rate, ECG amplitude, EEG alpha power...). When the label lives in
*within-subject* changes, a classifier trained on other subjects mostly sees the
between-subject differences. A common remedy (e.g. per-subject z-scoring in affective
computing; Schmidt et al. 2018, WESAD, ICMI) is to standardise each subject's features
with statistics of that subject's own **unlabelled** windows:

    z' = ref_mean + ref_std * (z - mean_s) / std_s

``mean_s``/``std_s`` are the subject's per-feature mean and standard deviation over its
windows; ``ref_mean``/``ref_std`` are a fixed reference (the training features' overall
statistics), so that a model without a bias term (the bridge) still sees features centred
where it was trained. For a linear head the reference folds into the weights.

Where the statistics come from:

- training/evaluation: all windows of that subject in the same split (labelled or not);
- prediction on a new upload: the upload's own windows (one upload = one subject). The
  prediction then describes each window *relative to the rest of the upload*: an upload
  that holds a single state (say, only rest) has no within-subject contrast left and its
  predictions are not meaningful. Use calibration for recordings that span several states.

Subjects with fewer than ``min_windows`` windows use the reference statistics unchanged
(so a single window is never standardised to zero). Plain tensor code (no library does
this grouping with a reference and a fallback in one step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .._check import check_option
from ..errors import ConfigError

CALIBRATIONS = ("none", "subject")
#: a subject needs at least this many windows for its own statistics
MIN_WINDOWS = 3
_EPS = 1e-6


def check_calibration(value: str, *, owner: str = "") -> str:
    """Return ``value`` if it is one of ``CALIBRATIONS`` (else ConfigError naming them)."""
    return check_option("calibration", value, CALIBRATIONS, owner=owner)


@dataclass
class Reference:
    """Per-feature reference mean and std, each of shape ``(d,)`` (float32)."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, z: torch.Tensor) -> "Reference":
        """The overall statistics of features ``z`` ``(n, d)``."""
        z = torch.as_tensor(z).float()
        if z.dim() != 2 or z.shape[0] == 0:
            raise ConfigError(f"reference statistics need features of shape (n >= 1, d); got {tuple(z.shape)}.")
        std = z.std(dim=0, unbiased=False) if z.shape[0] > 1 else torch.ones(z.shape[1])
        return cls(z.mean(dim=0), std.clamp_min(_EPS))

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.mean": self.mean.detach().cpu().contiguous(),
                f"{prefix}.std": self.std.detach().cpu().contiguous()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> "Reference | None":
        if f"{prefix}.mean" not in tensors:
            return None
        return cls(tensors[f"{prefix}.mean"].float(), tensors[f"{prefix}.std"].float())


def _groups(subjects: Sequence | np.ndarray | None, n: int) -> np.ndarray:
    if subjects is None:
        return np.zeros(n, dtype=np.int64)
    g = np.asarray(subjects).astype(str)
    if g.shape != (n,):
        raise ConfigError(f"subjects has {g.shape[0] if g.ndim else 0} entries but there are {n} windows.")
    return np.unique(g, return_inverse=True)[1]


@dataclass
class SubjectStats:
    """Per-subject statistics of pooled features: ``mean``/``std`` ``(k, d)``, ``group`` ``(n,)`` row -> subject."""

    mean: torch.Tensor
    std: torch.Tensor
    group: torch.Tensor
    reference: Reference

    def apply(self, z: torch.Tensor, rows: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
        """Calibrate ``z`` (the rows ``rows`` of the data the statistics came from; all rows by default)."""
        g = self.group if rows is None else self.group[torch.as_tensor(rows, device=self.group.device)]
        g = g.to(z.device)
        r_mean, r_std = self.reference.mean.to(z.device, z.dtype), self.reference.std.to(z.device, z.dtype)
        return r_mean + r_std * (z - self.mean.to(z.device, z.dtype)[g]) / self.std.to(z.device, z.dtype)[g]


@torch.no_grad()
def subject_stats(z: torch.Tensor, subjects: Sequence | np.ndarray | None, reference: Reference | None = None, *,
                  min_windows: int = MIN_WINDOWS) -> SubjectStats:
    """Each subject's per-feature mean and std over its rows of ``z`` ``(n, d)``.

    ``reference`` defaults to the overall statistics of ``z``. Subjects with fewer than
    ``min_windows`` rows get the reference statistics (calibration leaves them unchanged).
    """
    if z.dim() != 2:
        raise ConfigError(f"per-subject calibration expects pooled features (n, d); got shape {tuple(z.shape)}.")
    n = z.shape[0]
    zd = z.detach().float()
    ref = reference if reference is not None else Reference.of(zd.cpu())
    r_mean, r_std = ref.mean.to(zd.device), ref.std.to(zd.device)
    g = torch.as_tensor(_groups(subjects, n), device=zd.device)
    k = int(g.max()) + 1 if n else 0
    count = torch.zeros(k, device=zd.device).index_add_(0, g, torch.ones(n, device=zd.device))
    mean = torch.zeros(k, zd.shape[1], device=zd.device).index_add_(0, g, zd) / count.clamp_min(1)[:, None]
    var = torch.zeros_like(mean).index_add_(0, g, (zd - mean[g]) ** 2) / count.clamp_min(1)[:, None]
    std = var.sqrt().clamp_min(_EPS * float(r_std.mean()) + _EPS)
    few = count < max(int(min_windows), 2)
    mean[few], std[few] = r_mean, r_std  # too few windows: those rows stay as they are
    return SubjectStats(mean, std, g, ref)


def calibrate(z: torch.Tensor, subjects: Sequence | np.ndarray | None, reference: Reference | None = None, *,
              min_windows: int = MIN_WINDOWS) -> torch.Tensor:
    """Per-subject calibration of pooled features.

    Parameters
    ----------
    z : tensor ``(n, d)`` of pooled features (any device; gradients flow through ``z`` itself).
    subjects : one id per row; ``None`` = all rows are one subject (a new upload).
    reference : target statistics (default: the overall statistics of ``z``).
    min_windows : subjects with fewer rows keep their features as they are.

    Returns ``(n, d)``: each subject's rows standardised with that subject's own mean and
    std (computed without gradient), then scaled and shifted onto ``reference``.
    """
    if z.dim() == 2 and z.shape[0] == 0:
        return z
    return subject_stats(z, subjects, reference, min_windows=min_windows).apply(z)


def maybe_calibrate(z: torch.Tensor, subjects, reference: Reference | None, calibration: str) -> torch.Tensor:
    """``calibrate`` when ``calibration == "subject"``, else ``z`` unchanged."""
    return calibrate(z, subjects, reference) if calibration == "subject" else z
