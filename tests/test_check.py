"""Shared input checks: window shapes against an encoder's contract, read without loading the cohort."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bioxbridge_core._check import check_window_shapes
from bioxbridge_core.errors import ConfigError


def _enc(n_chans=1, n_times=100, flexible=False):
    spec = SimpleNamespace(n_chans=n_chans, n_times=n_times, flexible_length=flexible)
    return SimpleNamespace(spec=spec, encoder_name="toy")


def test_shapes_are_checked_against_the_contract():
    with pytest.raises(ConfigError, match="x_old has 2 channels but encoder 'toy' expects 1"):
        check_window_shapes(np.zeros((3, 2, 100), np.float32), _enc(), "x_old")
    with pytest.raises(ConfigError, match="80 samples per window"):
        check_window_shapes(np.zeros((3, 1, 80), np.float32), _enc())
    with pytest.raises(ConfigError, match="holds no windows"):
        check_window_shapes(np.zeros((0, 1, 100), np.float32), _enc())
    with pytest.raises(ConfigError, match=r"shape \(n_windows, n_chans, n_times\)"):
        check_window_shapes(np.zeros((1, 100), np.float32), _enc())
    assert check_window_shapes(np.zeros((2, 1, 80), np.float32), _enc(flexible=True)).shape == (2, 1, 80)


def test_only_the_first_window_is_read_and_tensors_come_back_as_arrays(tmp_path):
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(4, 1, 100))
    x[2, 0, 5] = np.nan  # a later window: left to the batch-by-batch check
    out = check_window_shapes(x, _enc())
    assert out is x  # the memmap itself, not a copy
    x[0, 0, 0] = np.inf
    with pytest.raises(ConfigError, match="NaN or infinite"):
        check_window_shapes(x, _enc())
    assert isinstance(check_window_shapes(torch.zeros(2, 1, 100), _enc()), np.ndarray)
