"""Verdict rules: each one flips on the number that decides it."""

import pytest

from bioxbridge_core.verdicts import (MIN_WINDOWS_PER_CLASS, Verdict, alignment_verdict, best_epoch_row,
                                      bridge_verdict, label_verdict, majority_share, margin, old_model_verdict)


def test_old_model_at_chance_is_a_stop_with_the_numbers():
    v = old_model_verdict(0.546, n_classes=2, n_eval=60)
    assert v.level == "stop" and "chance" in v.headline
    assert "0.546" in v.detail and "0.500" in v.detail
    assert v.numbers["chance"] == 0.5


def test_old_model_well_above_chance_goes_and_below_handcrafted_is_caution():
    assert old_model_verdict(1.0, n_classes=3, n_eval=54).level == "go"
    v = old_model_verdict(0.80, n_classes=2, fold_std=0.05, n_folds=5, baseline=0.95)
    assert v.level == "caution" and "hand-crafted" in v.headline
    assert old_model_verdict(0.80, n_classes=2, fold_std=0.05, n_folds=5, baseline=0.82).level == "go"
    assert old_model_verdict(None, n_classes=2).level == "caution"


def test_margin_shrinks_with_more_evidence_but_never_below_the_floor():
    assert margin(0.5, n=10) > margin(0.5, n=1000) == pytest.approx(0.05)
    assert margin(0.5, fold_std=0.2, n_folds=4) == pytest.approx(0.2)


def test_label_counts():
    assert label_verdict({"a": 5, "b": 30}).level == "caution"  # CinC fixtures: 5 true alarms
    assert "'a' (5)" in label_verdict({"a": 5, "b": 30}).headline
    assert label_verdict({"a": 0, "b": 30}).level == "stop"
    assert label_verdict({"a": 1, "b": 30}).level == "stop"
    ok = {"a": MIN_WINDOWS_PER_CLASS, "b": MIN_WINDOWS_PER_CLASS}
    assert label_verdict(ok).level == "go"
    assert label_verdict(ok, test_counts={"a": 4, "b": 0}).level == "caution"


def test_alignment_below_its_null_is_no_alignment():
    v = alignment_verdict(0.002, 0.005, 0.001, n_pairs=168, new_position="embed", old_position="blocks.0")
    assert v.level == "stop" and v.headline.startswith("No alignment above chance")
    assert v.numbers["baseline"] == 0.005 and v.numbers["threshold"] == pytest.approx(0.025)
    assert alignment_verdict(0.30, 0.005, 0.01, n_pairs=72).level == "go"
    assert alignment_verdict(0.03, 0.0, 0.02).level == "stop"  # within 2 null SDs
    assert alignment_verdict(None, None).level == "caution"


def test_strong_cka_without_a_task_to_probe_is_no_go():
    note = "only one pseudo-label class (1) among 16 windows: nothing to probe"
    v = alignment_verdict(0.68, 0.03, 0.01, n_pairs=16, new_position="embed", old_position="blocks.1",
                          unprobed=note)
    assert v.level == "stop" and v.headline.startswith("Nothing to transfer")
    assert "Only one pseudo-label class" in v.detail and v.numbers["baseline"] == 0.03


def test_bridge_agreement_vs_a_constant_guess():
    hist = [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.5, "val_agreement": 0.42},
            {"epoch": 2, "train_loss": 0.9, "val_loss": 0.6, "val_agreement": 0.45}]
    v = bridge_verdict(hist, chance_agreement=0.55, n_val=50)
    assert v.level == "stop" and v.numbers["best_epoch"] == 1 and v.numbers["agreement"] == 0.42
    good = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e, "val_agreement": 0.5 + e / 20} for e in range(1, 9)]
    assert bridge_verdict(good, chance_agreement=0.4, n_val=100).level == "go"
    early = [{"epoch": e, "train_loss": 1.0, "val_loss": float(e), "val_agreement": 0.9} for e in range(1, 9)]
    assert bridge_verdict(early, chance_agreement=0.4, n_val=100).level == "caution"
    assert bridge_verdict([]).level == "caution"
    assert best_epoch_row(good)["epoch"] == 8


def test_majority_share_and_levels():
    assert majority_share([0, 0, 1, 2]) == 0.5 and majority_share([]) is None
    with pytest.raises(ValueError):
        Verdict("x", "maybe", "no")


def test_alignment_result_verdict_reads_the_chosen_or_given_cell_and_the_probe_status():
    from types import SimpleNamespace

    import numpy as np

    from bioxbridge_core.verdicts import alignment_result_verdict

    res = SimpleNamespace(new_positions=["a", "b"], old_positions=["x", "y"], new_position="a", old_position="y",
                          cka=np.array([[0.01, 0.60], [0.30, 0.02]]), null_cka=np.zeros((2, 2)),
                          null_cka_std=np.full((2, 2), 0.005), n_pairs=200, notes=[], probe_cv="grouped")
    assert alignment_result_verdict(res).level == "go"  # selected cell a -> y: 0.60
    low = alignment_result_verdict(res, "a", "x")
    assert low.level == "stop" and low.numbers["cka"] == pytest.approx(0.01)
    res.probe_cv, res.notes = "none", ["the pseudo labels are all one class"]
    v = alignment_result_verdict(res)
    assert v.level == "stop" and "pseudo labels are all one class" in v.detail
    with pytest.raises(ValueError):
        alignment_result_verdict(res, "nope", "x")
