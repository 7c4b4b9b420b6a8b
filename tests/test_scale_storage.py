"""Arrays on disk: .npy files appended block by block, memory-mapped PairedWindows folders and their writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bioxbridge_core import _npy
from bioxbridge_core.data import windows as W
from bioxbridge_core.data.preprocess import normalise_windows
from bioxbridge_core.data.windows import PairedWindows, PairedWindowsWriter
from bioxbridge_core.errors import WindowingError


def _pw(n: int = 40, seed: int = 0) -> PairedWindows:
    rng = np.random.default_rng(seed)
    meta = pd.DataFrame({"subject": [f"s{i % 4}" for i in range(n)], "recording": [f"r{i // 5}" for i in range(n)],
                         "split": (["train", "pair", "val", "test"] * n)[:n], "start_s": np.arange(n) * 10.0,
                         "label": [None if i % 3 == 0 else ("a" if i % 2 else "b") for i in range(n)]})
    return PairedWindows(rng.standard_normal((n, 2, 30)).astype(np.float32),
                         rng.standard_normal((n, 1, 15)).astype(np.float32), meta, old_channels=["x", "y"],
                         new_channels=["z"], sfreq_old=3.0, sfreq_new=1.5, window_s=10.0, step_s=10.0,
                         dropped={"nan_old": 2}, preprocessing={"normalisation": "zscore-window"})


def test_appender_writes_a_normal_npy_and_nothing_on_failure(tmp_path):
    blocks = [np.random.default_rng(i).standard_normal((k, 3, 4)) for i, k in enumerate((5, 0, 7))]
    with _npy.NpyAppender(tmp_path / "a.npy", (3, 4), np.float16) as w:
        for b in blocks:
            w.append(b)
    got = np.load(tmp_path / "a.npy")  # plain numpy reads it
    assert got.dtype == np.float16 and got.shape == (12, 3, 4)
    np.testing.assert_array_equal(got, np.concatenate(blocks).astype(np.float16))
    with pytest.raises(ValueError, match="rows of shape"):
        with _npy.NpyAppender(tmp_path / "b.npy", (3, 4)) as w:
            w.append(np.zeros((2, 3, 4)))
            w.append(np.zeros((2, 4, 3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]  # no half-written file, no temporary left


def test_take_rows_in_any_order_and_release(tmp_path):
    x = np.arange(600, dtype=np.float32).reshape(100, 6)
    _npy.save_npy(tmp_path / "x.npy", x, chunk_rows=7)
    m = _npy.open_npy(tmp_path / "x.npy")
    assert _npy.is_mapped(m) and _npy.is_mapped(m[3:9]) and not _npy.is_mapped(x)
    rows = np.array([50, 3, 99, 3, 0])
    np.testing.assert_array_equal(_npy.take_rows(m, rows), x[rows])
    assert _npy.array_digest(m) == _npy.array_digest(x)
    _npy.release(m, x)  # harmless on plain arrays


def test_folder_round_trip_is_memory_mapped_and_npz_still_works(tmp_path):
    pw = _pw()
    pw.save(tmp_path / "w")
    back = PairedWindows.load(tmp_path / "w")
    assert back.folder == tmp_path / "w" and _npy.is_mapped(back.x_old) and _npy.is_mapped(back.x_new)
    np.testing.assert_array_equal(back.x_old, pw.x_old)
    assert back.meta.astype(str).equals(pw.meta.astype(str))
    for f in ("old_channels", "new_channels", "sfreq_old", "window_s", "label_names", "dropped", "preprocessing"):
        assert getattr(back, f) == getattr(pw, f), f
    pw.save(tmp_path / "w.npz")
    assert not _npy.is_mapped(PairedWindows.load(tmp_path / "w.npz").x_old)
    with pytest.raises(WindowingError, match="not a complete windows folder"):
        PairedWindows.load(tmp_path)


def test_subsets_of_mapped_windows_stay_on_disk(tmp_path, monkeypatch):
    pw = _pw()
    pw.save(tmp_path / "w")
    mapped = PairedWindows.load(tmp_path / "w")
    view = mapped.subset(np.arange(5, 25))  # contiguous rows: a view of the same file
    assert _npy.is_mapped(view.x_new) and view.folder == mapped.folder
    small = mapped.split("pair")  # scattered and small: copied into memory
    assert not _npy.is_mapped(small.x_old)
    monkeypatch.setattr(W, "SUBSET_IN_MEMORY_BYTES", 100)
    big = mapped.split("pair", "val")  # scattered and "large": written beside the source, then mapped
    assert _npy.is_mapped(big.x_old) and big.folder.parent == tmp_path / "w" / "subsets"
    for part, ref in ((view, pw.subset(np.arange(5, 25))), (small, pw.split("pair")), (big, pw.split("pair", "val"))):
        np.testing.assert_array_equal(part.x_old, ref.x_old)
        np.testing.assert_array_equal(part.x_new, ref.x_new)
        assert part.meta.astype(str).equals(ref.meta.astype(str))
    assert mapped.split("pair", "val").folder == big.folder  # reused, not written again


def test_writer_appends_per_recording_and_normalises_per_subject(tmp_path):
    pw = _pw()
    with PairedWindowsWriter(tmp_path / "z", subject_zscore=("x_old", "x_new")) as w:
        for start in range(0, len(pw), 5):  # one "recording" at a time
            w.add(pw.x_old[start:start + 5], pw.x_new[start:start + 5], pw.meta.iloc[start:start + 5])
        out = w.finish(window_s=10.0, old_channels=["x", "y"])
    subjects = pw.meta["subject"].to_numpy()
    np.testing.assert_allclose(out.x_old, normalise_windows(pw.x_old, "zscore-subject", subjects), atol=1e-5)
    np.testing.assert_allclose(out.x_new, normalise_windows(pw.x_new, "zscore-subject", subjects), atol=1e-5)
    assert out.label_names == ["a", "b"] and out.old_channels == ["x", "y"] and len(out) == len(pw)
    with pytest.raises(RuntimeError):
        with PairedWindowsWriter(tmp_path / "never") as w:
            w.add(pw.x_old[:3], pw.x_new[:3], pw.meta.iloc[:3])
            raise RuntimeError("crash while pairing")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["z"]  # nothing half-written
    with pytest.raises(WindowingError, match="some blocks but not others"):
        with PairedWindowsWriter(tmp_path / "mixed") as w:
            w.add(pw.x_old[:3], pw.x_new[:3], pw.meta.iloc[:3])
            w.add(pw.x_old[3:6], None, pw.meta.iloc[3:6])
