"""Feature store: one pass, batching-independent, cached on disk as memory maps, one file per key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bioxbridge_core import _npy
from bioxbridge_core.alignment.features import collect_features, extract_features, weights_hash
from bioxbridge_core.errors import ConfigError, LayerNotFoundError
from bioxbridge_core.paths import cache_dir

from _alignment_toys import forward_calls, planted_pair


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOXBRIDGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def pair():
    return planted_pair(n=30)


def test_matches_direct_pooling_and_dtype(pair):
    enc, x = pair["new"], pair["x_new"]
    feats = collect_features(enc, x, batch_size=7, cache=False, device="cpu")
    assert list(feats) == enc.position_names()
    with torch.inference_mode():
        direct = enc.pooled_outputs(torch.from_numpy(x), which="out")
    for name, arr in feats.items():
        assert arr.dtype == np.float32 and arr.shape == (30, 8)
        np.testing.assert_allclose(arr, direct[name].numpy(), atol=1e-6)


def test_which_in_defaults_to_write_positions(pair):
    enc = pair["old"]
    feats = collect_features(enc, pair["x_old"], which="in", cache=False, device="cpu")
    assert list(feats) == [p.name for p in enc.write_positions] == ["o1", "o2", "o3"]
    # the input of o2 is the output of o1
    out = collect_features(enc, pair["x_old"], positions=["o1"], which="out", cache=False, device="cpu")
    np.testing.assert_allclose(feats["o2"], out["o1"], atol=1e-6)


def test_one_pass_over_the_windows(pair):
    enc = pair["new"]
    enc.positions  # the one-off dry run that discovers shapes
    before = forward_calls(enc)
    collect_features(enc, pair["x_new"], batch_size=10, cache=False, device="cpu")
    # 3 batches x 4 stages, once each (no pass per position)
    assert forward_calls(enc) - before == 3 * 4


def test_second_call_reads_the_cache(pair):
    enc, x = pair["new"], pair["x_new"]
    steps = []
    first = collect_features(enc, x, device="cpu")
    calls = forward_calls(enc)
    second = collect_features(enc, x, device="cpu", on_progress=lambda s, t, m: steps.append(m))
    assert forward_calls(enc) == calls  # the model did not run
    assert "cache" in steps[-1]
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])
    (folder,) = cache_dir("features").iterdir()
    assert sorted(p.name for p in folder.glob("*.npy")) == [f"out.n{i}.npy" for i in range(4)]
    assert all(_npy.is_mapped(v) for v in second.values())  # read from disk, not loaded


def test_cache_key_changes_with_input_weights_and_settings(pair):
    enc, x = pair["new"], pair["x_new"]
    collect_features(enc, x, device="cpu")
    calls = forward_calls(enc)
    collect_features(enc, x[:-1], device="cpu")  # other windows
    assert forward_calls(enc) > calls
    calls = forward_calls(enc)
    sub = collect_features(enc, x, positions=["n1"], device="cpu")  # a subset of the positions: one file each
    assert forward_calls(enc) == calls and list(sub) == ["n1"]
    h0 = weights_hash(enc)
    enc.stage_modules[0].pattern.mul_(-1)  # other weights
    assert weights_hash(enc) != h0
    calls = forward_calls(enc)
    flipped = collect_features(enc, x, device="cpu")
    assert forward_calls(enc) > calls
    assert np.isfinite(flipped["n0"]).all()


def test_corrupt_cache_is_recomputed(pair):
    enc, x = pair["new"], pair["x_new"]
    collect_features(enc, x, device="cpu")
    path = next(cache_dir("features").glob("*/out.n1.npy"))
    path.write_bytes(b"not an npy")
    calls = forward_calls(enc)
    feats = collect_features(enc, x, device="cpu")
    assert forward_calls(enc) > calls and feats["n1"].shape == (30, 8)


def test_errors_name_the_problem(pair):
    enc = pair["new"]
    with pytest.raises(ConfigError, match="samples per window"):
        collect_features(enc, np.zeros((4, 1, 50), np.float32), cache=False)
    with pytest.raises(LayerNotFoundError, match="n9"):
        collect_features(enc, pair["x_new"], positions=["n9"], cache=False)
    with pytest.raises(ConfigError, match="which"):
        collect_features(enc, pair["x_new"], which="middle", cache=False)


def test_only_missing_keys_are_computed_and_last_is_the_full_output(pair):
    enc, x = pair["old"], pair["x_old"]
    first = extract_features(enc, x, ["in:o2"], device="cpu", batch_size=8)
    calls = forward_calls(enc)
    got = extract_features(enc, x, ["in:o2", "last", "out:o3"], device="cpu", batch_size=8, last_dtype="float16")
    assert forward_calls(enc) == calls + 4 * len(enc.position_names())  # 4 batches, one pass for what was missing
    np.testing.assert_array_equal(got["in:o2"], first["in:o2"])
    with torch.inference_mode():
        full = enc(torch.from_numpy(x)).numpy()
    assert got["last"].dtype == np.float16 and got["last"].shape == full.shape
    np.testing.assert_allclose(got["last"].astype(np.float32), full, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(got["out:o3"], full.mean(axis=1), atol=1e-5)
    # float32 and float16 targets are separate files; asking again runs nothing
    calls = forward_calls(enc)
    again = extract_features(enc, x, ["last", "out:o3"], device="cpu", last_dtype="float16")
    assert forward_calls(enc) == calls and _npy.is_mapped(again["last"])


def test_memory_mapped_input_and_bad_windows(pair, tmp_path):
    enc, x = pair["new"], pair["x_new"]
    _npy.save_npy(tmp_path / "x.npy", x)
    mapped = _npy.open_npy(tmp_path / "x.npy")
    a = extract_features(enc, mapped, ["out:n1"], cache=False, device="cpu", batch_size=4)["out:n1"]
    b = extract_features(enc, x, ["out:n1"], cache=False, device="cpu", batch_size=30)["out:n1"]
    np.testing.assert_allclose(a, b, atol=1e-6)
    bad = x.copy()
    bad[17, 0, 3] = np.nan
    with pytest.raises(ConfigError, match="window 17"):
        extract_features(enc, bad, ["out:n1"], cache=False, device="cpu", batch_size=4)
    with pytest.raises(ConfigError, match="unknown feature"):
        extract_features(enc, x, ["mid:n1"], cache=False)
