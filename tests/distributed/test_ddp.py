"""Two processes on CPU (gloo) train exactly what one process trains, and a killed rank resumes.

Each test spawns real processes that join a process group from torchrun's variables
(``distributed.session``), like ``torchrun --nproc-per-node 2`` does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _bridge_toys import channels_encoder, paired_data, tokens_encoder  # noqa: E402
from _workers import free_port, kd_student, train_bridge  # noqa: E402

from bioxbridge_core import distributed as dist  # noqa: E402
from bioxbridge_core._io import load_safetensors  # noqa: E402
from bioxbridge_core.bridge import BridgeConfig  # noqa: E402
from bioxbridge_core.training import BridgeTrainer  # noqa: E402

# 38 training pairs, global batch 8: the last batch of each epoch has 6 pairs (3 per rank)
CFG = dict(epochs=3, batch_size=8, lr=5e-3, seed=3, n_prototypes=6, rank=4)


@pytest.fixture(autouse=True)
def _short_timeout(monkeypatch):
    monkeypatch.setenv("BIOXBRIDGE_DIST_TIMEOUT_S", "60")


def _one_process(cfg: dict, run_dir=None) -> dict:
    x_old, x_new, groups, _ = paired_data(48, n_subjects=4, seed=0)
    tr = BridgeTrainer(BridgeConfig(**cfg), device="cpu").fit(
        tokens_encoder(), channels_encoder(), x_old, x_new, new_position="layer2", old_position="blocks.1",
        groups=groups, run_dir=run_dir)
    return {k: v.detach().clone() for k, v in tr.bridge_.state_dict().items()}, tr


def _spawn(fn, *args, nprocs: int = 2) -> None:
    # fork: the children start in ~0.1 s instead of re-importing torch (no CUDA here; one thread each)
    mp.start_processes(fn, args=(nprocs, free_port(), *args), nprocs=nprocs, join=True, start_method="fork")


def _assert_same(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-5, msg=k)


def test_not_launched_means_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with dist.session("cpu") as on:
        assert not on and dist.world_size() == 1 and dist.rank() == 0 and dist.is_main()
        np.testing.assert_array_equal(dist.local_share(np.arange(5)), np.arange(5))
        dist.barrier()  # a no-op


def test_two_processes_train_the_same_bridge_as_one(tmp_path):
    ref, tr = _one_process(CFG)
    assert tr.n_train_ % CFG["batch_size"] != 0  # the short last batch is covered
    run = tmp_path / "ddp"
    _spawn(train_bridge, CFG, str(run), None)
    got = load_safetensors(run / "bridge.safetensors")
    _assert_same(ref, got)
    history = json.loads((run / "history.json").read_text())
    history = history["epochs"] if isinstance(history, dict) else history
    np.testing.assert_allclose([r["val_loss"] for r in history], [r["val_loss"] for r in tr.history_], rtol=1e-5)
    np.testing.assert_allclose([r["train_loss"] for r in history], [r["train_loss"] for r in tr.history_], rtol=1e-5)


def test_killed_rank_restarts_from_the_last_checkpoint(tmp_path):
    cfg = dict(CFG, epochs=4)
    ref, _ = _one_process(cfg)
    run = tmp_path / "killed"
    steps_per_epoch = 5
    # rank 1 dies at the 2nd step of epoch 3 (rank 0 wrote epoch 2's checkpoint before step 1's all-reduce);
    # the launcher then ends the other rank, as torchrun does
    with pytest.raises(Exception):
        _spawn(train_bridge, cfg, str(run), 2 * steps_per_epoch + 2)
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    assert state["epoch"] == 2 and not (run / "bridge.safetensors").exists()
    _spawn(train_bridge, cfg, str(run), None)  # the same command again
    assert json.loads((run / "checkpoint" / "state.json").read_text())["epoch"] == 4
    _assert_same(ref, load_safetensors(run / "bridge.safetensors"))
    # and a checkpoint written by two processes resumes in one (nothing left to train)
    _, again = _one_process(cfg, run_dir=run)
    assert again.resumed_from_ == 4


def test_kd_two_processes_match_one_without_dropout_or_batchnorm(tmp_path):
    from _workers import kd_reference

    ref = kd_reference()
    out = tmp_path / "kd.safetensors"
    _spawn(kd_student, str(out))
    got = load_safetensors(out)
    # Attention key biases get an exactly-zero gradient (softmax ignores a shift shared by all keys);
    # Adam turns the float rounding left in them into full-size steps, so those 16 rows differ by
    # rounding noise (~1e-5) between any two summation orders. Everything else must agree.
    for k in [k for k in ref if k.endswith("in_proj_bias")]:
        ref[k], got[k] = torch.cat([ref[k][:16], ref[k][32:]]), torch.cat([got[k][:16], got[k][32:]])
    _assert_same(ref, got, atol=1e-5)
