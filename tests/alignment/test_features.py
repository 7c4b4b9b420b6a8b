"""Pooled feature collection: one pass, batching-independent, cached on disk."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bioxbridge_core.alignment.features import collect_features, weights_hash
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
    assert len(list(cache_dir("features").glob("*.npz"))) == 1


def test_cache_key_changes_with_input_weights_and_settings(pair):
    enc, x = pair["new"], pair["x_new"]
    collect_features(enc, x, device="cpu")
    calls = forward_calls(enc)
    collect_features(enc, x[:-1], device="cpu")  # other windows
    assert forward_calls(enc) > calls
    calls = forward_calls(enc)
    collect_features(enc, x, positions=["n1"], device="cpu")  # other positions
    assert forward_calls(enc) > calls
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
    (path,) = cache_dir("features").glob("*.npz")
    path.write_bytes(b"not an npz")
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
