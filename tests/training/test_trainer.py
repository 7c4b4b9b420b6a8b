import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _bridge_toys import channels_encoder, paired_data, tokens_encoder  # noqa: E402

from bioxbridge_core.bridge import BridgeConfig  # noqa: E402
from bioxbridge_core.errors import ConfigError, RunError  # noqa: E402
from bioxbridge_core.runs.store import read_history, read_status  # noqa: E402
from bioxbridge_core.training import BridgeTrainer, compute_cache, pair_val_split  # noqa: E402
from bioxbridge_core.training.checkpoint import checkpoint_path  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return paired_data(48, n_subjects=4, seed=0)


def _fit(data, cfg, **kw):
    x_old, x_new, groups, _ = data
    return BridgeTrainer(cfg).fit(tokens_encoder(), channels_encoder(), x_old, x_new, new_position="layer2",
                                  old_position="blocks.1", groups=groups, **kw)


def _state(enc):
    return {k: v.clone() for k, v in enc.state_dict().items()}


@pytest.mark.parametrize("loss", ["cosine", "mse", "l1"])
def test_training_lowers_the_loss(data, loss):
    tr = _fit(data, BridgeConfig(epochs=15, batch_size=8, lr=1e-2, loss=loss, seed=1, target_norm="none"))
    assert len(tr.history_) == 15
    assert tr.best_val_loss_ < tr.initial_loss_["val"]
    assert tr.history_[-1]["train_loss"] < tr.initial_loss_["train"]
    assert tr.best_epoch_ == 1 + int(np.argmin([r["val_loss"] for r in tr.history_]))


def test_frozen_encoders_unchanged_and_flags_restored(data):
    x_old, x_new, groups, _ = data
    old, new = tokens_encoder(), channels_encoder()
    old.unfreeze()  # a caller's trainable encoder is frozen during fit and given back as it was
    before_old, before_new = _state(old), _state(new)
    tr = BridgeTrainer(BridgeConfig(epochs=2, lr=1e-2)).fit(old, new, x_old, x_new, new_position="layer2",
                                                           old_position="blocks.1", groups=groups)
    for before, enc in ((before_old, old), (before_new, new)):
        for k, v in enc.state_dict().items():
            assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in old.parameters())
    assert not any(p.requires_grad for p in new.parameters())
    assert tr.n_params_ == tr.bridge_.n_params() > 0


def test_callbacks_carry_train_and_val_loss(data):
    steps, epochs, progress = [], [], []
    tr = _fit(data, BridgeConfig(epochs=3, batch_size=10, lr=1e-3), on_step=steps.append, on_epoch=epochs.append,
              on_progress=lambda s, t, m: progress.append((s, t)))
    per_epoch = int(np.ceil(tr.n_train_ / 10))
    assert len(steps) == 3 * per_epoch and len(epochs) == 3
    assert {"train_loss", "val_loss", "epoch", "global_step", "total_steps"} <= set(steps[0])
    assert steps[0]["val_loss"] == pytest.approx(tr.initial_loss_["val"])
    assert all(e["val_loss"] is not None and "best_epoch" in e for e in epochs)
    assert progress[-1][0] == progress[-1][1]


def test_split_is_by_subject(data):
    _, _, groups, _ = data
    tr = _fit(data, BridgeConfig(epochs=1, val_fraction=0.25))
    assert set(groups[tr.train_index_]).isdisjoint(groups[tr.val_index_])
    assert tr.n_train_ + tr.n_val_ == tr.n_pairs_ == 48 and tr.n_val_ > 0


def test_single_subject_falls_back_to_windows_with_warning():
    with pytest.warns(UserWarning, match="by window"):
        tr_idx, va_idx = pair_val_split(20, ["s1"] * 20, 0.2, seed=0)
    assert len(va_idx) == 4 and len(np.intersect1d(tr_idx, va_idx)) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr_idx, va_idx = pair_val_split(20, None, 0.0)
    assert len(va_idx) == 0 and len(tr_idx) == 20


def test_cache_holds_old_last_layer_output_and_real_tokens(data):
    x_old, x_new, _, _ = data
    old, new = tokens_encoder(), channels_encoder()
    cache = compute_cache(old, new, x_old, x_new, new_position="layer2", old_position="blocks.1", batch_size=7,
                          n_proto_tokens=5, seed=0)
    with torch.no_grad():
        full = old(torch.from_numpy(x_old))
        real = old.forward_until(torch.from_numpy(x_old), "blocks.0").reshape(-1, 16)  # input of blocks.1
    assert torch.allclose(cache.target, full, atol=1e-5)
    assert cache.z.shape == (48, 12) and cache.proto_tokens.shape == (5, 16)
    for tok in cache.proto_tokens:
        assert torch.isclose(real, tok, atol=1e-5).all(dim=1).any()


def test_token_prototypes_come_from_training_pairs(data):
    tr = _fit(data, BridgeConfig(epochs=1, n_prototypes=6, prototype_init="tokens", lr=1e-9))
    x_old = data[0][tr.train_index_]
    with torch.no_grad():
        real = tokens_encoder().forward_until(torch.from_numpy(x_old), "blocks.0").reshape(-1, 16)
    for col in tr.bridge_.P.T:
        assert torch.isclose(real, col, atol=1e-4).all(dim=1).any()


def test_checkpoint_resume_equals_uninterrupted_run(data, tmp_path):
    cfg = BridgeConfig(epochs=4, lr=5e-3, batch_size=8, seed=3)
    straight = _fit(data, cfg)
    run = tmp_path / "run"
    first = _fit(data, cfg, run_dir=run, should_stop=lambda: len(read_history(run)) >= 2)
    assert first.stopped_ and len(first.history_) == 2
    assert json.loads((run / "checkpoint" / "state.json").read_text())["epoch"] == 2
    assert read_status(run)["state"] == "stopped"
    second = _fit(data, cfg, run_dir=run)
    assert second.resumed_from_ == 2 and not second.stopped_
    assert [r["epoch"] for r in second.history_] == [1, 2, 3, 4]
    np.testing.assert_allclose([r["val_loss"] for r in second.history_],
                               [r["val_loss"] for r in straight.history_], rtol=1e-5)
    for k, v in straight.bridge_.state_dict().items():
        assert torch.allclose(v, second.bridge_.state_dict()[k], atol=1e-6), k
    assert [r["epoch"] for r in read_history(run)] == [1, 2, 3, 4]
    assert (run / "bridge.safetensors").exists()
    # nothing left to do: a third call loads the finished checkpoint and trains no more
    third = _fit(data, cfg, run_dir=run)
    assert third.resumed_from_ == 4 and len(third.history_) == 4
    assert not list(run.rglob("*.tmp"))


def test_resume_with_other_settings_is_refused(data, tmp_path):
    _fit(data, BridgeConfig(epochs=1), run_dir=tmp_path)
    with pytest.raises(RunError, match="config"):
        _fit(data, BridgeConfig(epochs=2, rank=3), run_dir=tmp_path)
    more = _fit(data, BridgeConfig(epochs=2), run_dir=tmp_path)  # only more epochs: continues
    assert more.resumed_from_ == 1 and len(more.history_) == 2


def test_stop_file_stops_cleanly(data, tmp_path):
    def on_epoch(row):
        if row["epoch"] == 1:
            (tmp_path / "STOP").write_text("")

    tr = _fit(data, BridgeConfig(epochs=5, lr=1e-2), run_dir=tmp_path, on_epoch=on_epoch)
    assert tr.stopped_ and len(tr.history_) == 1 and tr.best_epoch_ == 1
    st = read_status(tmp_path)
    assert st["state"] == "stopped" and "after epoch 1" in st["message"]
    assert checkpoint_path(tmp_path).exists() and (tmp_path / "bridge.safetensors").exists()
    assert [r["epoch"] for r in read_history(tmp_path)] == [1]


def test_bad_inputs_are_named(data):
    x_old, x_new, groups, _ = data
    old, new = tokens_encoder(), channels_encoder()
    with pytest.raises(ConfigError, match="x_new has 48"):
        BridgeTrainer(BridgeConfig(epochs=1)).fit(old, new, x_old[:47], x_new, new_position="layer2",
                                                  old_position="blocks.1")
    with pytest.raises(ConfigError, match="cannot take a bridge input"):
        BridgeTrainer(BridgeConfig(epochs=1)).fit(old, new, x_old, x_new, new_position="layer2", old_position="embed")
    with pytest.raises(ConfigError, match="x_new"):
        BridgeTrainer(BridgeConfig(epochs=1)).fit(old, new, x_old, x_old, new_position="layer2",
                                                  old_position="blocks.1")
    with pytest.raises(KeyError, match="Did you mean"):
        BridgeTrainer(BridgeConfig(epochs=1)).fit(old, new, x_old, x_new, new_position="layer3",
                                                  old_position="blocks.1")


def test_param_count_is_logged(data, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="bioxbridge_core.training.trainer"):
        tr = _fit(data, BridgeConfig(epochs=1))
    assert f"{tr.n_params_} trainable parameters" in caplog.text


def test_val_agreement_with_the_old_model_is_reported_per_epoch(data):
    from _bridge_toys import ToyHead

    from bioxbridge_core.bridge import BridgedModel

    x_old, x_new, groups, _ = data
    old, new = tokens_encoder(), channels_encoder()
    head = ToyHead(old.positions[-1].out_width, ["a", "b"], seed=3)
    tr = BridgeTrainer(BridgeConfig(epochs=6, batch_size=8, lr=1e-2, seed=1)).fit(
        old, new, x_old, x_new, new_position="layer2", old_position="blocks.1", groups=groups, head=head)
    agree = [r["val_agreement"] for r in tr.history_]
    assert all(0.0 <= a <= 1.0 for a in agree)
    # the reported figure for the kept (best) epoch equals an independent recomputation on the val pairs
    val = tr.val_index_
    model = BridgedModel(new, old, tr.bridge_, head, new_position="layer2", old_position="blocks.1")
    bridged = model.predict(x_new[val])
    with torch.no_grad():
        own = head(old.last_tokens(torch.from_numpy(x_old[val]))).argmax(dim=1).numpy()
    assert tr.history_[tr.best_epoch_ - 1]["val_agreement"] == pytest.approx(float((bridged == own).mean()))
    assert "val_agreement" not in _fit(data, BridgeConfig(epochs=1, batch_size=8, seed=1)).history_[0]


def test_training_lowers_the_standardised_loss(data):
    tr = _fit(data, BridgeConfig(epochs=15, batch_size=8, lr=1e-2, seed=1))
    assert tr.config_.target_norm == "standardise"
    assert tr.history_[-1]["train_loss"] < tr.initial_loss_["train"]


def test_standardised_loss_ignores_what_every_window_shares():
    from bioxbridge_core.training.trainer import per_sample_loss, target_stats

    g = torch.Generator().manual_seed(0)
    common = 10 * torch.randn(1, 6, 4, generator=g)
    target = common + 0.1 * torch.randn(32, 6, 4, generator=g)
    stats = target_stats(target)
    assert torch.allclose(stats[0], target.flatten(1).mean(0))
    assert torch.allclose(stats[1], target.flatten(1).std(0))
    mean_only = common.expand(32, 6, 4)
    # raw cosine: predicting the shared part already looks almost perfect ...
    assert per_sample_loss(mean_only, target, "cosine").mean() < 0.01
    # ... standardised, it explains nothing (cosine of ~0 vs the window's own deviation)
    assert per_sample_loss(mean_only, target, "cosine", stats).mean() > 0.9
    assert per_sample_loss(target, target, "cosine", stats).max() < 1e-5


def test_target_norm_none_is_the_papers_raw_loss(data):
    tr_raw = _fit(data, BridgeConfig(epochs=2, batch_size=8, seed=1, target_norm="none", loss_on="tokens"))
    x_old, _, _, _ = data
    enc = tokens_encoder()
    with torch.no_grad():
        target = enc(torch.from_numpy(x_old))
    from bioxbridge_core.training.trainer import per_sample_loss

    # the zero bridge's initial loss is the raw 1 - cos between old(l <- 0) and the targets
    assert tr_raw.initial_loss_["train"] == pytest.approx(float(per_sample_loss(
        enc.forward_from(torch.zeros(len(x_old), *enc.position("blocks.1").in_shape), "blocks.1")[tr_raw.train_index_],
        target[tr_raw.train_index_], "cosine").mean()), rel=1e-4)


def test_streamed_target_stats_equal_the_in_memory_ones(data):
    from bioxbridge_core.training.cache import streaming_target_stats
    from bioxbridge_core.training.trainer import target_stats

    x_old, x_new, _, _ = data
    cache = compute_cache(tokens_encoder(), channels_encoder(), x_old, x_new, new_position="layer2",
                          old_position="blocks.1")
    rows = np.arange(3, 45)
    mean, std = streaming_target_stats(cache, rows, chunk_rows=5)
    ref_mean, ref_std = target_stats(cache.target[torch.as_tensor(rows)])
    torch.testing.assert_close(mean, ref_mean, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(std, ref_std, atol=1e-5, rtol=1e-5)


def test_memory_mapped_windows_train_like_arrays_and_share_the_cache(data, tmp_path, monkeypatch):
    from bioxbridge_core import _npy
    from bioxbridge_core.paths import cache_dir

    monkeypatch.setenv("BIOXBRIDGE_CACHE", str(tmp_path / "cache"))
    x_old, x_new, groups, _ = data
    _npy.save_npy(tmp_path / "old.npy", x_old)
    _npy.save_npy(tmp_path / "new.npy", x_new)
    cfg = BridgeConfig(epochs=3, batch_size=8, lr=5e-3, seed=2)
    kw = dict(new_position="layer2", old_position="blocks.1", groups=groups)
    in_memory = BridgeTrainer(cfg, cache=False).fit(tokens_encoder(), channels_encoder(), x_old, x_new, **kw)
    mapped = BridgeTrainer(cfg).fit(tokens_encoder(), channels_encoder(), _npy.open_npy(tmp_path / "old.npy"),
                                    _npy.open_npy(tmp_path / "new.npy"), **kw)
    for k, v in in_memory.bridge_.state_dict().items():
        torch.testing.assert_close(mapped.bridge_.state_dict()[k], v, atol=1e-6, rtol=1e-5)
    files = sorted(p.name for p in cache_dir("features").glob("*/*.npy"))
    assert files == ["last.float32.npy", "out.layer2.npy"]  # z at m and the targets, on disk


def test_float16_targets_cost_little(data):
    x_old, x_new, groups, _ = data
    kw = dict(new_position="layer2", old_position="blocks.1", groups=groups)
    runs = {dt: BridgeTrainer(BridgeConfig(epochs=4, batch_size=8, lr=5e-3, seed=1, target_dtype=dt)).fit(
        tokens_encoder(), channels_encoder(), x_old, x_new, **kw) for dt in ("float32", "float16")}
    assert runs["float16"].config_.target_dtype == "float16"
    a, b = ([r["val_loss"] for r in runs[dt].history_] for dt in ("float32", "float16"))
    np.testing.assert_allclose(b, a, rtol=1e-2, atol=1e-3)  # rounding of the targets (~5e-4 relative) only
    assert not np.allclose(b, a, rtol=0, atol=0)  # but they did use other targets
