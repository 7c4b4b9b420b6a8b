from __future__ import annotations

import numpy as np
import pytest

from bioxbridge_core.errors import ConfigError
from bioxbridge_core.metrics import chance_metrics, chance_predictions, classification_metrics


def test_perfect_and_known_values():
    y = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(y, y, 3)
    assert m["balanced_accuracy"] == 1.0 and m["f1_macro"] == 1.0 and m["cohen_kappa"] == 1.0
    p = np.array([0, 1, 1, 1, 2, 0])
    m = classification_metrics(y, p, 3)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert all(isinstance(m[k], float) for k in ("balanced_accuracy", "f1_macro", "f1_weighted", "cohen_kappa"))


def test_confusion_has_all_classes_even_if_absent():
    m = classification_metrics([0, 0, 1], [0, 1, 1], 4)
    assert np.array(m["confusion"]).shape == (4, 4)
    assert sum(map(sum, m["confusion"])) == 3


def test_single_class_does_not_crash():
    m = classification_metrics([1, 1, 1], [1, 1, 1], 2)
    assert m["balanced_accuracy"] == 1.0 and m["cohen_kappa"] == 1.0
    m = classification_metrics([1, 1, 1], [0, 1, 0], 2)
    assert 0 <= m["balanced_accuracy"] <= 1 and -1 <= m["cohen_kappa"] <= 1
    assert m["confusion"] == [[0, 0], [2, 1]]


@pytest.mark.parametrize("yt, yp, n, msg", [
    ([0, 1], [0], 2, "labels"), ([0, 2], [0, 1], 2, "outside"), ([], [], 2, "empty"),
    ([[0]], [[0]], 2, "1-D"), ([0.5, 1], [0, 1], 2, "integer"),
])
def test_bad_inputs(yt, yp, n, msg):
    with pytest.raises(ConfigError, match=msg):
        classification_metrics(yt, yp, n)


def test_chance_baselines():
    y = np.array([0] * 80 + [1] * 20)
    maj = chance_metrics(y, 2, strategy="majority")
    assert maj["balanced_accuracy"] == 0.5 and maj["confusion"][0][0] == 80
    strat = [chance_metrics(y, 2, seed=s)["balanced_accuracy"] for s in range(20)]
    assert 0.4 < np.mean(strat) < 0.6
    np.testing.assert_array_equal(chance_predictions(y, 2, seed=3), chance_predictions(y, 2, seed=3))
    with pytest.raises(ConfigError, match="strategy"):
        chance_predictions(y, 2, strategy="uniform")
