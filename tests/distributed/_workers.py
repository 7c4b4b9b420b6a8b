"""Process entry points for the distributed tests (importable by spawned children)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _join(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1")


def train_bridge(rank: int, world: int, port: int, cfg: dict, run_dir: str, die_at_step: int | None = None) -> None:
    """Train the toy bridge as rank ``rank`` of ``world``; rank 1 exits abruptly at its ``die_at_step``-th step."""
    import torch

    torch.set_num_threads(1)
    _join(rank, world, port)
    from _bridge_toys import channels_encoder, paired_data, tokens_encoder

    from bioxbridge_core import distributed as dist
    from bioxbridge_core.bridge import BridgeConfig
    from bioxbridge_core.training import BridgeTrainer

    calls = [0]

    def should_stop() -> bool:
        calls[0] += 1
        if die_at_step is not None and rank == 1 and calls[0] >= die_at_step:
            os._exit(3)  # a crash: no cleanup, no goodbye to the other rank
        return False

    x_old, x_new, groups, _ = paired_data(48, n_subjects=4, seed=0)
    with dist.session("cpu"):
        assert dist.world_size() == world
        BridgeTrainer(BridgeConfig(**cfg), device="cpu").fit(
            tokens_encoder(), channels_encoder(), x_old, x_new, new_position="layer2", old_position="blocks.1",
            groups=groups, run_dir=run_dir, should_stop=should_stop)


def _kd_fit():
    from torch import nn
    from _bridge_toys import ToyHead, paired_data, tokens_encoder

    from bioxbridge_core.baselines.kd import KDStudent

    student = tokens_encoder(seed=5)
    for m in student.modules():  # no dropout: then 1 and 2 processes must agree exactly
        if isinstance(m, nn.Dropout):
            m.p = 0.0
        if isinstance(m, nn.MultiheadAttention):
            m.dropout = 0.0
    x_old, _, groups, _ = paired_data(40, n_subjects=4, seed=1)
    st = KDStudent(student, epochs=2, batch_size=8, lr=1e-3, seed=0, device="cpu").fit(
        tokens_encoder(), ToyHead(16, ["a", "b"]), x_old, x_old, groups=groups)
    state = {f"s.{k}": v.detach().clone().contiguous() for k, v in st.student_.state_dict().items()}
    state.update({f"l.{k}": v.detach().clone().contiguous() for k, v in st.linear_.state_dict().items()})
    return state


def kd_reference() -> dict:
    """The KD student trained in this (single) process."""
    return _kd_fit()


def kd_student(rank: int, world: int, port: int, out: str) -> None:
    """Distil the toy teacher into a dropout-free toy student as rank ``rank`` of ``world``; rank 0 saves it."""
    import torch

    torch.set_num_threads(1)
    _join(rank, world, port)
    from safetensors.torch import save_file

    from bioxbridge_core import distributed as dist

    with dist.session("cpu"):
        state = _kd_fit()
        if dist.is_main():
            save_file(state, out)
