"""Subject splits and grouped folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bioxbridge_core.errors import ConfigError
from bioxbridge_core.data.splits import assign_splits, check_fractions, grouped_folds, split_by


SUBJECTS = [f"s{i:02d}" for i in range(10)]


def test_assignment_is_deterministic_and_order_free():
    a = assign_splits(SUBJECTS, seed=3)
    b = assign_splits(list(reversed(SUBJECTS)) * 2, seed=3)
    assert a == b
    assert set(a) == set(SUBJECTS)
    others = [assign_splits(SUBJECTS, seed=s) for s in range(5)]
    assert any(o != others[0] for o in others[1:]), "different seeds should give different splits"


def test_default_fractions_and_minimum_one_subject():
    a = assign_splits(SUBJECTS, seed=0)
    sizes = pd.Series(a).value_counts().to_dict()
    assert sizes == {"train": 3, "pair": 4, "test": 3}
    tiny = assign_splits(["a", "b", "c"], seed=0)
    assert sorted(tiny.values()) == ["pair", "test", "train"]


def test_custom_fractions_with_val():
    a = assign_splits([f"x{i}" for i in range(20)], seed=1,
                      fractions={"train": 0.25, "pair": 0.45, "val": 0.1, "test": 0.2})
    sizes = pd.Series(a).value_counts().to_dict()
    assert sizes == {"train": 5, "pair": 9, "val": 2, "test": 4}


@pytest.mark.parametrize("bad", [{"train": -1}, {"bogus": 0.5}, {"train": 0, "test": 0}, {"train": "a"}])
def test_bad_fractions_raise(bad):
    with pytest.raises(ConfigError):
        check_fractions(bad)


def test_classes_end_up_in_train_and_test():
    # 3 subjects have class "rare", the rest only "common"
    classes = {s: {"common"} for s in SUBJECTS}
    for s in ("s01", "s05", "s08"):
        classes[s] = {"rare"}
    for seed in range(10):
        a = assign_splits(SUBJECTS, seed=seed, classes=classes)
        for split in ("train", "test"):
            have = set().union(*(classes[s] for s, sp in a.items() if sp == split))
            assert have == {"common", "rare"}, (seed, split, a)


def test_split_by_keeps_subjects_whole():
    meta = pd.DataFrame({"subject": np.repeat(SUBJECTS, 7), "label": np.tile(["a", "b", "a", "b", "a", "b", "a"], 10)})
    split = split_by(meta, seed=4)
    per_subject = split.groupby(meta["subject"]).nunique()
    assert (per_subject == 1).all()
    with pytest.raises(ConfigError, match="recording"):
        split_by(meta, "recording")


def test_grouped_folds_keep_groups_apart():
    groups = np.repeat(SUBJECTS, 5)
    y = np.tile([0, 1, 0, 1, 1], 10)
    folds, grouped = grouped_folds(groups, n_splits=5, seed=0, y=y)
    assert grouped and len(folds) == 5
    seen = np.concatenate([te for _, te in folds])
    assert sorted(seen) == list(range(len(groups)))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
    folds2, grouped2 = grouped_folds(groups, n_splits=4, seed=0)
    assert grouped2 and all(not set(groups[tr]) & set(groups[te]) for tr, te in folds2)


def test_grouped_folds_fall_back_with_few_groups():
    groups = np.repeat(["a", "b"], 10)
    y = np.tile([0, 1], 10)
    folds, grouped = grouped_folds(groups, n_splits=5, seed=0, y=y)
    assert grouped is False
    assert len(folds) == 5
    for tr, te in folds:
        assert set(y[te]) == {0, 1}  # stratified
    with pytest.raises(ConfigError):
        grouped_folds(groups, n_splits=1)
