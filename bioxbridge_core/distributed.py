"""Several processes (GPUs, machines) training one bridge: torch.distributed under ``torchrun``.

``torchrun`` (PyTorch's launcher) starts one process per GPU or CPU slot and sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; ``session()`` joins them
into a process group from those variables (``env://``), with backend ``nccl`` on GPUs and
``gloo`` on CPU. Without those variables (or with ``WORLD_SIZE=1``) nothing happens and every
helper here answers as a single process would: rank 0 of 1, barriers return at once.

How one step of distributed training equals one step of a single process (the trainers
follow this): every rank draws the same permutation of the training pairs from the same
seeded generator, so all ranks agree on each *global* batch; rank r takes rows
``batch[r::world]`` (``local_share``), sums its per-pair losses and divides by the global
batch size times ``1/world``; DistributedDataParallel averages gradients over ranks, which
gives exactly the mean over the global batch. The last, short global batch is split the same
way (a rank with no rows runs a zero-weighted pair so that every rank takes part in the
gradient all-reduce). ``torch.utils.data.DistributedSampler`` is not used because it pads
the data with repeated pairs to an equal count per rank and shuffles per rank, which would
change the global batches with the number of processes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
from typing import Iterator

import numpy as np
import torch

log = logging.getLogger(__name__)

#: seconds a collective waits for the other ranks (rank 0 may compute features meanwhile)
DEFAULT_TIMEOUT_S = 3 * 3600


def _dist():
    import torch.distributed as dist

    return dist


def launched() -> bool:
    """True when this process was started by ``torchrun`` (or similar) with more than one process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    except ValueError:
        return False


def is_distributed() -> bool:
    """True inside an initialised process group of two or more processes."""
    dist = _dist()
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return _dist().get_rank() if is_distributed() else 0


def world_size() -> int:
    return _dist().get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """Rank 0: the process that writes checkpoints, history, reports and bundles."""
    return rank() == 0


def backend_for(device: str | None = None) -> str:
    """``nccl`` when this process will train on a GPU, ``gloo`` otherwise."""
    if device is not None and str(device).startswith("cpu"):
        return "gloo"
    return "nccl" if torch.cuda.is_available() and _dist().is_nccl_available() else "gloo"


def init_from_env(device: str | None = None, *, timeout_s: float | None = None) -> bool:
    """Join the process group described by torchrun's variables; False when not launched that way.

    ``device="cpu"`` forces gloo. The timeout (``BIOXBRIDGE_DIST_TIMEOUT_S``, default 3 h)
    bounds how long a rank waits for the others at a collective.
    """
    dist = _dist()
    if not launched() or not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    backend = backend_for(device)
    timeout = float(timeout_s if timeout_s is not None else os.environ.get("BIOXBRIDGE_DIST_TIMEOUT_S",
                                                                         DEFAULT_TIMEOUT_S))
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://", timeout=_dt.timedelta(seconds=timeout))
    log.info("rank %d of %d joined (%s, local rank %s)", dist.get_rank(), dist.get_world_size(), backend,
             os.environ.get("LOCAL_RANK", "0"))
    return True


@contextlib.contextmanager
def session(device: str | None = None) -> Iterator[bool]:
    """``with session(device):`` joins the group when launched by torchrun and leaves it at the end.

    Yields whether this process is one of several. A group that already existed (made by the
    caller) is used and left as it was.
    """
    dist = _dist()
    existed = dist.is_available() and dist.is_initialized()
    started = not existed and init_from_env(device)
    try:
        yield is_distributed()
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def rank_device(device: str | torch.device | None) -> str | torch.device | None:
    """The device this rank trains on: ``cuda:<LOCAL_RANK>`` for CUDA under a group, else ``device``."""
    if not is_distributed():
        return device
    if device in (None, "auto", "cuda") and torch.cuda.is_available() and _dist().get_backend() == "nccl":
        return torch.device("cuda", local_rank())
    return device


def rank_device_name(device: str | None) -> str | None:
    """``rank_device`` as a string (for configs): ``"cuda:<LOCAL_RANK>"`` under an nccl group, else ``device``."""
    dev = rank_device(device)
    return None if dev is None else str(dev)


def _device() -> torch.device:
    if is_distributed() and _dist().get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        _dist().barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum of ``values`` over ranks (returns ``values`` itself in one process)."""
    if not is_distributed():
        return values
    t = values.detach().to(_device(), torch.float64).clone()
    _dist().all_reduce(t)
    return t.to(values.device, values.dtype)


def any_rank(flag: bool) -> bool:
    """True when ``flag`` is true on any rank (e.g. a STOP file seen by one of them)."""
    if not is_distributed():
        return bool(flag)
    return bool(all_reduce_sum(torch.tensor([1.0 if flag else 0.0]))[0] > 0)


def broadcast_json(obj, src: int = 0):
    """``obj`` from rank ``src`` on every rank (JSON-serialisable objects only)."""
    if not is_distributed():
        return obj
    import json

    box = [json.dumps(obj) if rank() == src else None]
    _dist().broadcast_object_list(box, src=src)
    return json.loads(box[0])


@contextlib.contextmanager
def main_first(per_node: bool = True) -> Iterator[None]:
    """Run the body on (local) rank 0 first, then on the other ranks.

    For cache fills: rank 0 computes and writes files, the others then find them. With
    ``per_node`` the local rank 0 of every machine goes first (node-local cache folders).
    """
    first = (local_rank() if per_node else rank()) == 0
    if not first:
        barrier()
    try:
        yield
    finally:
        if first:
            barrier()


def local_share(batch: np.ndarray) -> np.ndarray:
    """This rank's rows of a global batch: ``batch[rank::world]``."""
    return np.asarray(batch)[rank()::world_size()]


def split_rows(rows: np.ndarray) -> np.ndarray:
    """This rank's contiguous share of ``rows`` (for evaluation passes)."""
    rows = np.asarray(rows)
    w, r = world_size(), rank()
    bounds = np.linspace(0, rows.size, w + 1).round().astype(int)
    return rows[bounds[r]:bounds[r + 1]]


def wrap_ddp(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` under a group (only the trainable part), else ``module``."""
    if not is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return DDP(module, device_ids=ids)
