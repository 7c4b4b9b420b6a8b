"""align(): picks the planted positions; AlignmentResult round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bioxbridge_core.alignment import AlignmentResult, align
from bioxbridge_core.errors import ConfigError, LayerNotFoundError

from _alignment_toys import planted_pair

REQUIRED = {"new_positions", "old_positions", "probe_f1", "cka", "cka_biased", "null_cka", "selected", "n_pairs"}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOXBRIDGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def planted():
    p = planted_pair(n=120, seed=3)
    steps = []
    res = align(p["old"], p["new"], p["x_old"], p["x_new"], p["y"], groups=p["groups"], seed=0,
                device="cpu", cache=False, n_perm=3, on_progress=lambda s, t, m: steps.append((s, t, m)))
    return p, res, steps


def test_selects_planted_positions(planted):
    _, res, _ = planted
    assert res.selected == {"new_position": "n1", "old_position": "o2"}
    f1 = dict(zip(res.new_positions, res.probe_f1))
    assert f1["n1"] > 0.9 and max(v for k, v in f1.items() if k != "n1") < 0.75
    i, j = res.new_positions.index("n1"), res.old_positions.index("o2")
    assert res.cka[i, j] > 0.95
    assert abs(res.null_cka[i, j]) < 0.1  # shuffled pairs score about 0
    assert res.ranked[0]["new_position"] == "n1" and res.ranked[0]["old_position"] == "o2"


def test_shapes_and_metadata(planted):
    p, res, steps = planted
    M, L = 4, 3
    assert res.new_positions == ["n0", "n1", "n2", "n3"] and res.old_positions == ["o1", "o2", "o3"]
    for name in ("cka", "cka_biased", "null_cka", "null_cka_std"):
        assert getattr(res, name).shape == (M, L)
    assert res.self_new.shape == (M, M) and res.self_old.shape == (L, L)
    np.testing.assert_allclose(np.diag(res.self_new), 1.0)
    assert res.n_pairs == 120 and res.probe_cv == "grouped"
    assert res.new_encoder == "toy-new" and res.old_encoder == "toy-old"
    assert res.features_new["n1"].shape == (120, 8) and set(res.features_old) == {"o1", "o2", "o3"}
    assert steps[-1][0] == steps[-1][1] and "n1" in steps[-1][2]
    assert all(s <= t for s, t, _ in steps)


def test_save_load_round_trip(planted, tmp_path):
    _, res, _ = planted
    res.save(tmp_path / "al")
    data = json.loads((tmp_path / "al" / "alignment.json").read_text())
    assert REQUIRED <= set(data)
    assert set(data["selected"]) >= {"new_position", "old_position"}
    with np.load(tmp_path / "al" / "features.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["new_0", "new_1", "new_2", "new_3", "old_0", "old_1", "old_2"]
        np.testing.assert_array_equal(z["old_1"], res.features_old["o2"])
    back = AlignmentResult.load(tmp_path / "al")
    assert back.selected == res.selected and back.n_pairs == res.n_pairs
    np.testing.assert_allclose(back.cka, res.cka)
    np.testing.assert_array_equal(back.features_new["n2"], res.features_new["n2"])
    assert AlignmentResult.from_dict(res.to_dict()).ranked == json.loads(json.dumps(res.to_dict()))["ranked"]


def test_nan_survives_json(planted):
    _, res, _ = planted
    d = res.to_dict()
    d["cka"][0][0] = None
    back = AlignmentResult.from_dict(json.loads(json.dumps(d)))
    assert np.isnan(back.cka[0, 0])


def test_override(planted):
    _, res, _ = planted
    o = res.with_override(old_position="o3")
    assert o.selected["new_position"] == "n1" and o.selected["old_position"] == "o3"
    assert o.selected["overridden"] and o.selected["auto"]["old_position"] == "o2"
    assert res.selected["old_position"] == "o2"  # original untouched
    assert not o.with_override(old_position="o2").selected["overridden"]
    with pytest.raises(LayerNotFoundError, match="Did you mean 'o3'"):
        res.with_override(old_position="o33")


def test_rejects_mismatched_rows(planted):
    p, _, _ = planted
    with pytest.raises(ConfigError, match="one row per pair"):
        align(p["old"], p["new"], p["x_old"][:10], p["x_new"], p["y"], cache=False, device="cpu")
