"""Temperature scaling: keeps the winning class, recovers a known temperature, tames overconfidence."""

import numpy as np
import pytest

from bioxbridge_core.calibration import (Calibration, apply_temperature, calibrate, expected_calibration_error,
                                         fit_temperature)
from bioxbridge_core.errors import ConfigError


def _sample(rng, n, k, temperature):
    """Logits and targets drawn from softmax(logits / temperature): the right T is known."""
    z = rng.normal(scale=4.0, size=(n, k))
    p = apply_temperature(z, temperature)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z, y


def test_apply_temperature_keeps_argmax_and_sums_to_one(rng):
    z = rng.normal(size=(50, 3)) * 10
    for t in (0.3, 1.0, 7.0):
        p = apply_temperature(z, t)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        assert (p.argmax(axis=1) == z.argmax(axis=1)).all()
    assert apply_temperature(z, 7.0).max(axis=1).mean() < apply_temperature(z, 1.0).max(axis=1).mean()


@pytest.mark.parametrize("true_t", [0.5, 2.0, 6.0])
def test_fit_recovers_a_known_temperature(true_t):
    z, y = _sample(np.random.default_rng(1), 4000, 3, true_t)
    assert fit_temperature(z, y, eps=0.0) == pytest.approx(true_t, rel=0.15)
    assert fit_temperature(z, y) == pytest.approx(true_t, rel=0.25)  # the default smoothing barely moves it at n=4000


def test_overconfident_wrong_predictions_lose_their_confidence(rng):
    z = rng.normal(size=(300, 3)) * 30  # raw confidence ~1.0 everywhere
    y = z.argmax(axis=1)
    wrong = rng.random(300) < 0.4  # the reference disagrees on 40 %
    y[wrong] = (y[wrong] + 1) % 3
    cal = calibrate(z, y)
    p = apply_temperature(z, cal.temperature)
    assert cal.mean_confidence_before > 0.95
    assert p.max(axis=1)[wrong].mean() < 0.8
    assert cal.nll_after < cal.nll_before and cal.ece_after < cal.ece_before
    assert cal.agreement == pytest.approx(1 - wrong.mean())


def test_no_windows_means_uncalibrated_and_says_so():
    cal = calibrate(np.zeros((0, 2)), np.zeros(0, dtype=int))
    assert cal.temperature == 1.0 and cal.n == 0 and cal.notes
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_bad_inputs_are_refused():
    with pytest.raises(ConfigError, match="positive"):
        apply_temperature(np.zeros((2, 2)), 0.0)
    with pytest.raises(ConfigError, match="shape"):
        apply_temperature(np.zeros(3), 1.0)
    with pytest.raises(ConfigError, match="outside"):
        fit_temperature(np.zeros((2, 2)), np.array([0, 2]))
    with pytest.raises(ConfigError, match="NaN"):
        calibrate(np.array([[np.nan, 0.0]]), np.array([0]))


def test_ece_is_zero_for_perfect_calibration_and_large_for_overconfidence():
    y = np.array([0, 1] * 50)
    assert expected_calibration_error(np.eye(2)[y], y) == pytest.approx(0.0)
    assert expected_calibration_error(np.eye(2)[1 - y], y) == pytest.approx(1.0)


def test_perfect_agreement_does_not_make_every_prediction_certain(rng):
    """All calibration windows agree: the plain NLL sends T to its floor (confidence 1.00 everywhere);
    the smoothed fit stops near (n + 1) / (n + 2)."""
    z = rng.normal(size=(54, 3)) * 2
    y = z.argmax(axis=1)
    plain = fit_temperature(z, y, eps=0.0)
    cal = calibrate(z, y)
    assert plain < 0.05 and apply_temperature(z, plain).max(axis=1).mean() > 0.999
    conf = apply_temperature(z, cal.temperature).max(axis=1).mean()
    assert 0.85 < conf < 0.995  # no longer certain, still confident
