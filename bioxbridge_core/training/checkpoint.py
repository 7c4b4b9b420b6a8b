"""Training checkpoints: one safetensors file with a JSON header (atomic; no pickle).

Tensors: ``bridge.*`` (current weights), ``best.*`` (best epoch so far),
``optim.<param>.<key>`` (Adam state) and ``rng.shuffle`` (batch-order
generator). The JSON header (also mirrored to ``state.json`` for people)
holds the epoch, history, best epoch and a fingerprint of what was trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_save_safetensors, atomic_write_json, load_safetensors
from ..errors import RunError
from ..runs import schema as S

CHECKPOINT_FILE = "checkpoint.safetensors"
STATE_FILE = "state.json"


def checkpoint_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / S.CHECKPOINT_DIR / CHECKPOINT_FILE


def save_checkpoint(run_dir: str | Path, *, bridge: torch.nn.Module, best_state: dict | None,
                    optimizer: torch.optim.Optimizer, generator: torch.Generator, state: dict[str, Any]) -> Path:
    tensors: dict[str, torch.Tensor] = {f"bridge.{k}": v for k, v in bridge.state_dict().items()}
    if best_state is not None:
        tensors.update({f"best.{k}": v for k, v in best_state.items()})
    for pid, st in optimizer.state_dict()["state"].items():
        for key, val in st.items():
            tensors[f"optim.{pid}.{key}"] = val if isinstance(val, torch.Tensor) else torch.tensor(float(val))
    tensors["rng.shuffle"] = generator.get_state()
    header = S.with_schema(state)
    path = checkpoint_path(run_dir)
    atomic_save_safetensors(path, tensors, metadata={"state": json.dumps(header, default=float)})
    atomic_write_json(path.parent / STATE_FILE, header)  # for people; resume reads the safetensors
    return path


def load_checkpoint(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """``(state, tensors)`` of the last checkpoint, or None when there is none."""
    path = checkpoint_path(run_dir)
    if not path.exists():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = json.loads(meta["state"])
        tensors = load_safetensors(path)
    except Exception as exc:  # a damaged checkpoint must say where it is
        raise RunError(f"{path}: unreadable checkpoint ({exc}); delete the checkpoint folder to start over.") from exc
    if int(state.get("schema_version", 0)) > S.SCHEMA_VERSION:
        raise RunError(f"{path}: written by a newer version of the engine.")
    return state, tensors


def split_tensors(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def optimizer_state(tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> dict:
    """Rebuild an optimizer ``state_dict`` from ``optim.*`` tensors and the optimizer's own param groups."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in split_tensors(tensors, "optim").items():
        pid, key = k.split(".", 1)
        state.setdefault(int(pid), {})[key] = v
    return {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}
