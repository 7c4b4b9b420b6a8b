"""Task head: learns a simple simulated task, round-trips through disk, pseudo labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bioxbridge_core.errors import ConfigError, EncoderError, NotFittedError
from bioxbridge_core.models.heads import TaskHead, evaluate_head, pseudo_labels, train_task_head
from bioxbridge_core.models.registry import load_encoder


def simulate(n_per_class: int, *, seed: int, sfreq: float = 100.0, n_times: int = 1000):
    """Windows of noisy sines whose frequency depends on the class (1, 2.5 or 5 Hz), z-scored."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times) / sfreq
    xs, ys = [], []
    for c, f in enumerate((1.0, 2.5, 5.0)):
        for _ in range(n_per_class):
            s = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) + 0.5 * rng.standard_normal(n_times)
            xs.append((s - s.mean()) / s.std())
            ys.append(c)
    return np.asarray(xs, dtype=np.float32)[:, None, :], np.asarray(ys)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("builtin:ecg", device="cpu", pretrained=False)


@pytest.fixture(scope="module")
def trained(encoder):
    x, y = simulate(20, seed=0)
    groups = np.repeat(np.arange(6), 10)
    head = train_task_head(encoder, x, y, label_names=["slow", "mid", "fast"], groups=groups, seed=0)
    return head


def test_head_beats_chance_on_held_out(encoder, trained):
    x, y = simulate(15, seed=1)
    m = evaluate_head(encoder, trained, x, y)
    assert m["balanced_accuracy"] > 0.6  # chance is 1/3
    assert np.array(m["confusion"]).shape == (3, 3)
    assert trained.label_names == ["slow", "mid", "fast"]
    assert trained.l2_ in (1e-4, 1e-3, 1e-2, 1e-1) and len(trained.cv_scores_) == 4


def test_training_is_deterministic(encoder, trained):
    x, y = simulate(20, seed=0)
    again = train_task_head(encoder, x, y, label_names=["slow", "mid", "fast"], groups=np.repeat(np.arange(6), 10))
    assert torch.equal(again.linear.weight, trained.linear.weight)


def test_head_is_linear_on_mean_pooled_tokens(encoder, trained):
    x, _ = simulate(2, seed=3)
    with torch.no_grad():
        logits = trained(encoder.last_tokens(torch.from_numpy(x)))
    np.testing.assert_allclose(torch.softmax(logits, 1).numpy(), trained.predict_proba(encoder, x), atol=1e-6)


def test_save_load_round_trip(tmp_path, encoder, trained):
    x, _ = simulate(3, seed=2)
    path = trained.save(tmp_path / "head")
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    loaded = TaskHead.load(path)
    assert loaded.label_names == trained.label_names and loaded.encoder_name == "builtin:ecg"
    np.testing.assert_array_equal(loaded.predict_proba(encoder, x), trained.predict_proba(encoder, x))
    labels = pseudo_labels(encoder, loaded, x)
    assert labels.dtype == np.int64 and labels.shape == (9,)


def test_class_weighting_handles_imbalance(encoder):
    x, y = simulate(20, seed=4)
    keep = np.r_[np.arange(0, 20), np.arange(20, 24)]  # 20 slow vs 4 mid
    head = train_task_head(encoder, x[keep], y[keep], label_names=["slow", "mid"])
    xt, yt = simulate(10, seed=5)
    m = evaluate_head(encoder, head, xt[:20], yt[:20])
    assert m["confusion"][1][1] > 0  # the minority class is predicted at all


def test_fine_tune_changes_encoder_and_refreezes():
    enc = load_encoder("builtin:ppg", device="cpu", pretrained=False)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    x, y = simulate(4, seed=6, sfreq=50.0, n_times=500)
    calls = []
    head = train_task_head(enc, x, y, fine_tune=True, epochs=1, on_progress=lambda *a: calls.append(a))
    assert any(not torch.equal(before[k], v) for k, v in enc.state_dict().items() if v.is_floating_point())
    assert not any(p.requires_grad for p in enc.parameters()) and not enc.training
    assert head.predict_proba(enc, x).shape == (12, 3)
    assert calls[-1][0] == calls[-1][1]


def test_bad_inputs(encoder, trained):
    x, y = simulate(2, seed=0)
    with pytest.raises(ConfigError, match="single class"):
        train_task_head(encoder, x, np.zeros(6, dtype=int))
    with pytest.raises(ConfigError, match="outside"):
        train_task_head(encoder, x, y, label_names=["a", "b"])
    with pytest.raises(ConfigError, match="windows"):
        train_task_head(encoder, x[:5], y)
    with pytest.raises(NotFittedError):
        TaskHead(128, 2).predict_proba(encoder, x)
    ppg = load_encoder("builtin:ppg", device="cpu", pretrained=False)
    with pytest.raises(EncoderError, match="256"):
        trained.predict_proba(ppg, simulate(1, seed=0, sfreq=50.0, n_times=500)[0])


def _within_subject_task(seed: int, n_subjects: int = 6, per_class: int = 6):
    """The class changes the signal frequency a little; subjects differ a lot more (amplitude + frequency)."""
    rng = np.random.default_rng(seed)
    t = np.arange(1000) / 100.0
    xs, ys, gs = [], [], []
    for s in range(n_subjects):
        base = rng.uniform(1.0, 6.0)
        for c in (0, 1):
            for _ in range(per_class):
                f = base * (1.0 + 0.25 * c)
                x = np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) + 0.3 * rng.standard_normal(t.size)
                xs.append(x)
                ys.append(c)
                gs.append(f"s{seed}_{s}")
    return np.asarray(xs, dtype=np.float32)[:, None, :], np.asarray(ys), np.asarray(gs)


def test_subject_calibration_helps_when_the_label_is_a_within_subject_change(encoder, tmp_path):
    x, y, g = _within_subject_task(0)
    xt, yt, gt = _within_subject_task(1)
    y_mixed = y.copy()
    y_mixed[::5] = -1  # unlabelled windows count for the statistics only
    plain = train_task_head(encoder, x, y, groups=g)
    cal = train_task_head(encoder, x, y_mixed, groups=g, calibration="subject")
    assert cal.calibration == "subject" and cal.reference is not None
    m_plain = evaluate_head(encoder, plain, xt, yt, subjects=gt)
    m_cal = evaluate_head(encoder, cal, xt, yt, subjects=gt)
    assert m_cal["balanced_accuracy"] > m_plain["balanced_accuracy"] + 0.05
    assert m_cal["balanced_accuracy"] > 0.7
    loaded = TaskHead.load(cal.save(tmp_path / "cal"))
    assert loaded.calibration == "subject"
    np.testing.assert_allclose(loaded.predict_proba(encoder, xt, subjects=gt),
                               cal.predict_proba(encoder, xt, subjects=gt), atol=1e-6)
    with pytest.raises(ConfigError, match="groups"):
        train_task_head(encoder, x, y, calibration="subject")


def test_fine_tuned_layers_round_trip_into_a_fresh_encoder():
    from bioxbridge_core.models.heads import load_stage_state, stage_state

    enc = load_encoder("builtin:ppg", device="cpu", pretrained=False)
    x, y = simulate(4, seed=7, sfreq=50.0, n_times=500)
    head = train_task_head(enc, x, y, fine_tune=True, epochs=1)
    assert head.fine_tuned
    last = enc.positions[-2].name
    saved = stage_state(enc, last)
    assert saved and all(k.startswith(tuple(p.name + "." for p in enc.positions[-2:])) for k in saved)
    fresh = load_encoder("builtin:ppg", device="cpu", pretrained=False)
    h = torch.randn(2, *enc.position(last).in_shape)
    with torch.no_grad():
        assert not torch.allclose(fresh.forward_from(h, last), enc.forward_from(h, last))
        load_stage_state(fresh, saved)
        torch.testing.assert_close(fresh.forward_from(h, last), enc.forward_from(h, last))
    with pytest.raises(EncoderError, match="no stage"):
        load_stage_state(fresh, {"nowhere.weight": torch.zeros(1)})


@pytest.mark.parametrize("present", [(0, 1, 2), (0, 2), (1, 2, 3)])
def test_linear_fit_reaches_the_optimum_of_the_weighted_l2_objective(present):
    """``_fit_linear`` (scikit-learn) solves sum_i w[y_i] CE_i / sum_i w[y_i] + l2 ||W||^2 over 4 classes:
    the gradient there is ~0 for the classes with windows, and a class without windows is never predicted."""
    import torch.nn.functional as F

    from bioxbridge_core.models.heads import _fit_linear

    rng = np.random.default_rng(0)
    y = rng.choice(present, size=120)
    x = rng.normal(size=(120, 6))
    x[np.arange(120), y] += 1.5
    z, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    weights = torch.tensor([1.0, 2.0, 0.5, 1.5])
    l2 = 1e-2
    W, b = _fit_linear(z, yt, weights, 4, l2)
    W, b = W.double().requires_grad_(True), b.double().requires_grad_(True)
    loss = F.cross_entropy(z.double() @ W.T + b, yt, weight=weights.double()) + l2 * (W * W).sum()
    loss.backward()
    rows = list(present)
    assert W.grad[rows].abs().max() < 1e-3
    assert b.grad[rows].abs().max() < 1e-3
    pred = (z.double() @ W.T + b).argmax(1).numpy()
    assert set(pred) <= set(present)
    assert (pred == y).mean() > 0.6
