"""Linear probes: grouped CV when subjects allow, graceful with one class."""

from __future__ import annotations

import numpy as np
import pytest

from bioxbridge_core.alignment.probe import probe_scores
from bioxbridge_core.errors import ConfigError


def _data(rng, n=120):
    y = np.arange(n) % 3
    informative = rng.standard_normal((n, 6)) + 3.0 * np.eye(3)[y] @ rng.standard_normal((3, 6))
    noise = rng.standard_normal((n, 6))
    return {"good": informative, "noise": noise}, y


def test_informative_position_scores_higher(rng):
    feats, y = _data(rng)
    groups = np.repeat(np.arange(8), 15)
    df = probe_scores(feats, y, groups=groups, seed=0)
    assert list(df["position"]) == ["good", "noise"]
    good, noise = df.set_index("position")["f1_mean"]
    assert good > 0.85 and noise < 0.6
    assert (df["n"] == 120).all() and df.attrs["cv"] == "grouped" and (df["cv"] == "grouped").all()
    assert (df["f1_std"] >= 0).all()


def test_falls_back_to_stratified_with_few_subjects(rng):
    feats, y = _data(rng)
    df = probe_scores(feats, y, groups=np.repeat(["a", "b", "c"], 40), n_splits=5)
    assert df.attrs["cv"] == "stratified" and "not grouped" in df.attrs["note"]
    assert probe_scores(feats, y).attrs["cv"] == "stratified"


def test_grouped_folds_keep_subjects_apart(rng):
    # A subject-identity feature scores high with ungrouped folds but not with grouped ones.
    n_subj, per = 10, 12
    groups = np.repeat(np.arange(n_subj), per)
    y = (np.arange(n_subj) % 2)[groups]  # label constant within a subject
    subject_code = np.eye(n_subj)[groups] * 5 + 0.1 * rng.standard_normal((n_subj * per, n_subj))
    grouped = probe_scores({"id": subject_code}, y, groups=groups).loc[0, "f1_mean"]
    ungrouped = probe_scores({"id": subject_code}, y).loc[0, "f1_mean"]
    assert ungrouped > 0.9 and grouped < 0.7


def test_single_class_scores_zero_with_note(rng):
    feats, _ = _data(rng, n=30)
    df = probe_scores(feats, np.zeros(30, int))
    assert (df["f1_mean"] == 0).all() and df.attrs["cv"] == "none"
    assert "one pseudo-label class" in df.loc[0, "note"]


def test_tiny_class_does_not_crash(rng):
    feats, y = _data(rng, n=40)
    y = y.copy()
    y[:] = 0
    y[:20] = 1
    y[0] = 2  # a class with one window
    df = probe_scores(feats, y, n_splits=5)
    assert np.isfinite(df["f1_mean"]).all()


def test_progress_and_errors(rng):
    feats, y = _data(rng, n=60)
    seen = []
    probe_scores(feats, y, on_progress=lambda s, t, m: seen.append((s, t)))
    assert seen == [(1, 2), (2, 2)]
    with pytest.raises(ConfigError, match="expected"):
        probe_scores({"a": np.zeros((5, 2))}, y)
    with pytest.raises(ConfigError, match="n_splits"):
        probe_scores(feats, y, n_splits=1)


@pytest.mark.parametrize("scale", [1e-20, 1e12])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_scores_at_any_scale(rng, scale, dtype):
    feats, y = _data(rng)
    groups = np.repeat(np.arange(8), 15)
    ref = probe_scores(feats, y, groups=groups)["f1_mean"].to_numpy()
    scaled = {k: (v * scale).astype(dtype) for k, v in feats.items()}
    ref32 = probe_scores({k: v.astype(dtype) for k, v in feats.items()}, y, groups=groups)["f1_mean"].to_numpy()
    got = probe_scores(scaled, y, groups=groups)["f1_mean"].to_numpy()
    np.testing.assert_allclose(got, ref32, atol=1e-9)
    np.testing.assert_allclose(got, ref, atol=0.05)  # float32 rounding may move a window or two


def test_constant_features_defined_with_note(rng, caplog):
    feats, y = _data(rng, n=60)
    df = probe_scores({"const": np.full((60, 4), 1e-20), "good": feats["good"]}, y)
    row = df.set_index("position").loc["const"]
    assert np.isfinite(row["f1_mean"]) and 0 < row["f1_mean"] < 0.5  # majority class: chance level
    assert "constant features" in row["note"] and "constant" in caplog.text
    with pytest.raises(ConfigError, match="NaN"):
        probe_scores({"bad": np.full((60, 4), np.nan)}, y)
