import pytest

from bioxbridge_core.bridge import CONSTRAINTS, BridgeConfig
from bioxbridge_core.errors import ConfigError


def _bad_values(rule):
    if rule[0] == "option":
        return ["bogus", 3]
    _, low, high, low_inclusive = rule
    bad = [low - 1 if low_inclusive else low, high * 2 + 1, "x", None, float("nan")]
    if rule[0] == "int":
        bad.append(1.5)
    return bad


CASES = [(name, v) for name, rule in CONSTRAINTS.items() for v in _bad_values(rule)]


@pytest.mark.parametrize("name,value", CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_each_field_rejects_bad_value_and_names_it(name, value):
    with pytest.raises(ConfigError, match=name):
        BridgeConfig(**{name: value})


def test_every_field_has_a_constraint():
    from dataclasses import fields

    assert {f.name for f in fields(BridgeConfig)} == set(CONSTRAINTS)


def test_defaults_follow_the_method():
    cfg = BridgeConfig()
    # batch 32 (the paper's 16 with lr 1e-3 still improved after 50 epochs on the demo; bench/RESULTS.md)
    assert (cfg.rank, cfg.n_prototypes, cfg.batch_size, cfg.loss) == (8, 50, 32, "cosine")
    assert cfg.prototype_init in ("tokens", "normal")
    # the loss stays at the last layer; by default on its token mean (what the head reads)
    assert (cfg.loss_on, cfg.calibration, cfg.patience) == ("pooled", "none", 10)


def test_default_lr_is_the_cpu_scale_one_and_within_constraints():
    # 3e-3 (not the paper's 1e-6...1e-4): CPU-scale pair sets and tens of epochs; see bench/RESULTS.md
    cfg = BridgeConfig()
    kind, low, high, low_inclusive = CONSTRAINTS["lr"]
    assert cfg.lr == pytest.approx(3e-3)
    assert low < cfg.lr <= high and isinstance(cfg.lr, float)


def test_round_trip_and_unknown_key():
    cfg = BridgeConfig(rank=4, n_prototypes=7, loss="l1", lr=3e-3, epochs=3, seed=5, val_fraction=0.0)
    assert BridgeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="rnak"):
        BridgeConfig.from_dict({**cfg.to_dict(), "rnak": 3})


def test_option_error_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'cosine'"):
        BridgeConfig(loss="cosin")


def test_fit_budget_lowers_prototypes_only_when_needed():
    from bioxbridge_core.bridge.config import fit_budget
    from bioxbridge_core.bridge.network import Bridge

    cfg = BridgeConfig()  # r = 8, Np = 50, 4 % of the new encoder
    dims = {"d_new": 128, "n_tokens_old": 190, "d_old": 128}
    small = fit_budget(cfg, **dims, new_params=1_300_000)
    assert small.n_prototypes < cfg.n_prototypes
    assert Bridge.param_count(8, small.n_prototypes, 128, 190, 128) <= 0.04 * 1_300_000
    assert Bridge.param_count(8, small.n_prototypes + 1, 128, 190, 128) > 0.04 * 1_300_000
    assert fit_budget(cfg, **dims, new_params=10_000_000) is cfg  # already fits
    assert fit_budget(cfg, **dims, new_params=1_000).n_prototypes == 8  # floor
    off = BridgeConfig(max_params_fraction=0.0)
    assert fit_budget(off, **dims, new_params=1_000) is off
