"""Atomic writes: whole files with ordinary permissions, nothing left behind on failure."""

import os
import stat

import numpy as np
import pytest

from bioxbridge_core._io import atomic_write_bytes, atomic_write_json, read_json


def test_atomic_write_gives_umask_permissions_and_no_temp_files(tmp_path):
    path = atomic_write_json(tmp_path / "a.json", {"x": np.float32(1.5), "y": np.arange(3)})
    assert read_json(path) == {"x": 1.5, "y": [0, 1, 2]}
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = atomic_write_bytes(tmp_path / "b.bin", b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # not bytes: the write fails midway
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["b.bin"]
