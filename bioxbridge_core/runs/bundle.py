"""A bridge bundle: everything needed to predict from the new modality alone.

``bridge.safetensors`` + ``head.safetensors`` + ``bundle.json`` (both encoders'
names and channel names, positions, label names, window/step seconds, the
preprocessing dict and the BridgeConfig). Weights load only via safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from .._io import atomic_save_safetensors, atomic_write_json, load_safetensors
from ..errors import RunError
from . import schema as S

REQUIRED = ("old_encoder", "new_encoder", "old_position", "new_position", "label_names", "window_s")
OPTIONAL = {"old_ch_names": None, "new_ch_names": None, "step_s": None, "preprocessing": {}}


def save_bundle(run_dir: str | Path, bridge, head, config: dict[str, Any]) -> Path:
    """Write the bundle into ``run_dir``; returns the path of ``bundle.json``.

    ``config`` needs ``old_encoder``, ``new_encoder`` (registry names), ``old_position``, ``new_position``,
    ``label_names``, ``window_s`` and ``bridge_config`` (BridgeConfig or dict); optionally ``old_ch_names``,
    ``new_ch_names``, ``step_s``, ``preprocessing`` and any extra JSON-ready keys.
    """
    from ..bridge.config import BridgeConfig
    from ..training.trainer import save_bridge

    missing = [k for k in REQUIRED + ("bridge_config",) if k not in config]
    if missing:
        raise RunError(f"save_bundle: config lacks {missing}.")
    run_dir = Path(run_dir)
    bcfg = config["bridge_config"]
    bcfg = bcfg if isinstance(bcfg, BridgeConfig) else BridgeConfig.from_dict(dict(bcfg))
    save_bridge(run_dir / S.BRIDGE_WEIGHTS, bridge, bcfg)
    head_path = run_dir / S.HEAD_WEIGHTS
    if hasattr(head, "save"):
        head.save(head_path)
        head_format = "taskhead"
    else:
        atomic_save_safetensors(head_path, head.state_dict(),
                                metadata={"label_names": json.dumps(list(config["label_names"]))})
        head_format = "state_dict"
    body = {**OPTIONAL, **{k: v for k, v in config.items() if k != "bridge_config"}}
    body.update(bridge_config=bcfg.to_dict(), bridge_dims=bridge.dims(), head_format=head_format,
                label_names=[str(n) for n in config["label_names"]],
                bridge_params=int(bridge.n_params()))
    return atomic_write_json(run_dir / S.BUNDLE, S.with_schema(body))


def read_bundle_info(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / S.BUNDLE
    if not path.exists():
        raise RunError(f"{Path(run_dir)} holds no trained bridge bundle ({S.BUNDLE} missing); "
                       "the run may have failed or been stopped before saving.")
    return S.read_versioned(path)


def load_bundle(run_dir: str | Path, device: str | None = None, *,
                encoder_loader: Callable[..., Any] | None = None,
                head_loader: Callable[[Path], Any] | None = None):
    """Rebuild the ``BridgedModel`` saved by ``save_bundle``.

    ``encoder_loader(name, device=..., ch_names=...)`` defaults to ``models.registry.load_encoder``;
    ``head_loader(path)`` defaults to ``models.heads.TaskHead.load``.
    """
    from ..bridge.composed import BridgedModel
    from ..bridge.config import BridgeConfig
    from ..bridge.network import Bridge
    from ..device import resolve_device

    run_dir = Path(run_dir)
    info = read_bundle_info(run_dir)
    dev = resolve_device(device)
    if encoder_loader is None:
        import functools

        from ..models.registry import load_encoder

        # positions (and so the bridge's shape) at the window the bridge was trained on
        encoder_loader = functools.partial(load_encoder, window_s=float(info["window_s"]))
    new_enc = encoder_loader(info["new_encoder"], device=dev, ch_names=info.get("new_ch_names"))
    old_enc = encoder_loader(info["old_encoder"], device=dev, ch_names=info.get("old_ch_names"))
    bcfg = BridgeConfig.from_dict(info["bridge_config"])
    bridge = Bridge.from_positions(new_enc.position(info["new_position"]), old_enc.position(info["old_position"]), bcfg)
    if bridge.dims() != info.get("bridge_dims", bridge.dims()):
        raise RunError(f"{run_dir / S.BUNDLE}: the encoders loaded now give a bridge of shape {bridge.dims()} but "
                       f"the saved one is {info['bridge_dims']}; were the encoders or channels changed?")
    try:
        bridge.load_state_dict(load_safetensors(run_dir / S.BRIDGE_WEIGHTS))
    except (RuntimeError, OSError) as exc:
        raise RunError(f"{run_dir / S.BRIDGE_WEIGHTS}: cannot load bridge weights ({exc}).") from exc
    head_path = run_dir / S.HEAD_WEIGHTS
    if head_loader is None:
        from ..models.heads import TaskHead

        head_loader = TaskHead.load
    head = head_loader(head_path)
    model = BridgedModel(new_enc, old_enc, bridge.to(dev), head.to(dev), new_position=info["new_position"],
                         old_position=info["old_position"], label_names=info["label_names"], info=info)
    return model.eval()
