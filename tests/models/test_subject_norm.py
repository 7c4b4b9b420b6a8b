"""Per-subject feature calibration: each subject's features mapped onto a reference distribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bioxbridge_core.errors import ConfigError
from bioxbridge_core.models.subject_norm import Reference, calibrate, check_calibration, subject_stats


def _subjects_with_offsets(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    subjects = np.repeat(["a", "b", "c"], 8)
    offsets = torch.tensor([[0.0, 0.0], [50.0, -20.0], [-30.0, 10.0]])
    scales = torch.tensor([[1.0, 1.0], [4.0, 0.5], [2.0, 3.0]])
    idx = torch.as_tensor(np.unique(subjects, return_inverse=True)[1])
    z = offsets[idx] + scales[idx] * torch.randn(24, 2, generator=g)
    return z, subjects


def test_each_subject_lands_on_the_reference():
    z, subjects = _subjects_with_offsets()
    ref = Reference(torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.5]))
    out = calibrate(z, subjects, ref)
    for s in "abc":
        rows = out[torch.as_tensor(subjects == s)]
        torch.testing.assert_close(rows.mean(0), ref.mean, atol=1e-4, rtol=0)
        torch.testing.assert_close(rows.std(0, unbiased=False), ref.std, atol=1e-4, rtol=1e-4)
    # within a subject the order of windows is kept (a monotone map per feature)
    a = torch.as_tensor(subjects == "a")
    assert torch.equal(torch.argsort(out[a, 0]), torch.argsort(z[a, 0]))


def test_default_reference_and_one_upload():
    z, _ = _subjects_with_offsets()
    out = calibrate(z, None)  # all rows one subject, reference = their own statistics: identity
    torch.testing.assert_close(out, z, atol=1e-4, rtol=1e-4)


def test_small_subjects_are_left_alone_and_gradients_flow():
    z, subjects = _subjects_with_offsets()
    subjects = subjects.copy()
    subjects[0] = "lonely"  # one window: no statistics of its own
    zr = z.clone().requires_grad_(True)
    ref = Reference.of(z)
    out = calibrate(zr, subjects, ref)
    torch.testing.assert_close(out[0], z[0])
    out.sum().backward()
    assert zr.grad is not None and torch.isfinite(zr.grad).all()


def test_stats_apply_to_a_batch_of_rows():
    z, subjects = _subjects_with_offsets()
    stats = subject_stats(z, subjects)
    rows = np.array([3, 10, 17])
    torch.testing.assert_close(stats.apply(z[rows], rows), stats.apply(z)[rows])


def test_bad_inputs():
    with pytest.raises(ConfigError, match="calibration"):
        check_calibration("per-subject")
    with pytest.raises(ConfigError, match="entries"):
        calibrate(torch.zeros(4, 2), ["a", "b"])
    with pytest.raises(ConfigError, match="pooled"):
        calibrate(torch.zeros(4, 2, 3), None)
