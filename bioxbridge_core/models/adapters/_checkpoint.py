"""Reading published checkpoints safely and loading them strictly (shared by the foundation adapters).

- ``read_state_dict(path, who=...)``: a ``.safetensors`` file, or a torch file read with
  ``torch.load(..., weights_only=True)`` -- never a full unpickle. A few published training
  checkpoints also pickle their ``argparse.Namespace`` of settings, sometimes holding numpy
  scalars (LaBraM's ``labram-base.pth`` does). Those are plain data, so only these types
  (``SAFE_EXTRA_GLOBALS``) are allow-listed, still under ``weights_only=True``; any other
  pickled object stops the load with the conversion recipe (``CONVERSION_HINT``).
- ``unwrap``: finds the state dict inside ``{"model": ...}``, ``{"state_dict": ...}``,
  ``{"module": ...}`` or ``{"model_state_dict": ...}`` wrappers.
- ``strip_common_prefix`` / ``split_prefix``: remove DDP ``module.`` or ``student.`` prefixes.
- ``load_strict``: every weight of the architecture present with the right shape, nothing
  unexplained left over; otherwise one ``EncoderError`` listing the missing, unexpected and
  mis-shaped keys.

Own code rather than a library: ``torch.load``/``safetensors`` do the reading; what is added is
the allow-list and messages that name the file, the adapter and the keys.
"""

from __future__ import annotations

import argparse
import fnmatch
import pathlib
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from ...errors import EncoderError

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "module")

CONVERSION_HINT = (
    "Convert it once, in a Python session you trust, with: "
    "ck = torch.load(PATH, map_location='cpu', weights_only=False); "
    "sd = ck.get('model', ck.get('state_dict', ck)); "
    "from safetensors.torch import save_file; "
    "save_file({k: v.contiguous() for k, v in sd.items()}, 'weights.safetensors') "
    "-- then point the adapter at weights.safetensors."
)


def _numpy_globals() -> dict[str, Any]:
    """numpy reconstructors of plain numeric scalars (no object dtype)."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 moved core to _core
    out: dict[str, Any] = {
        "numpy.core.multiarray.scalar": core.multiarray.scalar,
        "numpy._core.multiarray.scalar": core.multiarray.scalar,
        "numpy.dtype": np.dtype,
    }
    for name in ("Float16DType", "Float32DType", "Float64DType", "Int8DType", "Int16DType", "Int32DType",
                 "Int64DType", "UInt8DType", "UInt16DType", "UInt32DType", "UInt64DType", "BoolDType",
                 "LongDType", "ULongDType", "LongLongDType", "ULongLongDType", "StrDType"):
        if hasattr(np.dtypes, name):
            out[f"numpy.dtypes.{name}"] = getattr(np.dtypes, name)
    return out


#: pickled globals accepted on top of torch's weights_only defaults: settings objects and numbers only
SAFE_EXTRA_GLOBALS: dict[str, Any] = {
    "argparse.Namespace": argparse.Namespace,
    "pathlib.PosixPath": pathlib.PosixPath,
    "pathlib._local.PosixPath": pathlib.PosixPath,
    "pathlib.WindowsPath": pathlib.WindowsPath,
    "pathlib._local.WindowsPath": pathlib.WindowsPath,
    **_numpy_globals(),
}


def check_file(path: str | Path, *, who: str, what: str) -> Path:
    """The checkpoint as a Path; ``EncoderError`` naming it when it is not a file."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise EncoderError(f"{who}: {p} is a folder; point at the checkpoint file itself ({what}).")
    if not p.is_file():
        raise EncoderError(f"{who}: checkpoint file not found: {p} (expected {what}).")
    return p


def _torch_load(path: Path, *, who: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:  # UnpicklingError for disallowed globals, RuntimeError for corrupt files
        try:
            needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:
            raise EncoderError(f"{who}: {path} is not a readable torch checkpoint ({type(first).__name__}: "
                               f"{str(first).splitlines()[0] if str(first) else ''}).") from None
        if not needed:
            raise EncoderError(f"{who}: {path} could not be read: {str(first).splitlines()[0]}") from None
        refused = [g for g in needed if g not in SAFE_EXTRA_GLOBALS]
        if refused:
            raise EncoderError(
                f"{who}: {path} pickles Python objects that are not plain data ({', '.join(refused[:6])}); "
                f"it is only read with torch.load(weights_only=True). {CONVERSION_HINT}") from None
        allowed = [SAFE_EXTRA_GLOBALS[g] for g in needed]
        if "numpy.dtype" in needed:  # a pickled dtype is rebuilt as its concrete class (Float64DType, ...)
            allowed += [v for k, v in SAFE_EXTRA_GLOBALS.items() if k.startswith("numpy.dtypes.")]
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def unwrap(obj: Any, *, who: str, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in ``obj``: itself, or under one of ``WRAPPER_KEYS`` (nested at most 3 deep).

    Non-tensor entries next to the tensors (e.g. a step counter) are dropped.
    """
    for _ in range(4):
        if _is_state_dict(obj):
            return dict(obj)
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
            if tensors:
                return tensors
            break
        obj = inner
    keys = list(obj.keys())[:8] if isinstance(obj, Mapping) else []
    raise EncoderError(
        f"{who}: {path} holds a {type(obj).__name__}{f' with keys {keys}' if keys else ''}, not a state dict "
        f"of tensors (nor one under {', '.join(repr(k) for k in WRAPPER_KEYS)}).")


def read_state_dict(path: str | Path, *, who: str, what: str) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (``.safetensors`` or a torch file), wrappers removed.

    Raises
    ------
    EncoderError
        Missing file, unreadable file, disallowed pickled objects, or no tensors inside.
    """
    p = check_file(path, who=who, what=what)
    if p.suffix == ".safetensors":
        from ..._io import load_safetensors

        try:
            return dict(load_safetensors(p))
        except Exception as exc:
            raise EncoderError(f"{who}: {p} is not a readable safetensors file: {exc}") from None
    return unwrap(_torch_load(p, who=who), who=who, path=p)


def strip_common_prefix(state: Mapping[str, torch.Tensor], prefixes: Iterable[str]) -> dict[str, torch.Tensor]:
    """Remove each prefix that *every* key carries (e.g. DDP's ``module.``), repeatedly."""
    out = dict(state)
    prefixes = tuple(prefixes)
    changed = True
    while changed and out:
        changed = False
        for p in prefixes:
            if all(k.startswith(p) for k in out):
                out = {k[len(p):]: v for k, v in out.items()}
                changed = True
    return out


def split_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``({key without prefix: tensor} for keys under prefix, [other keys])``; all keys inside if none has it."""
    inner = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not inner:
        return dict(state), []
    return inner, [k for k in state if not k.startswith(prefix)]


def _fmt(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def key_report(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> tuple[list, list, list]:
    """``(missing, unexpected, wrong_shape)`` of ``state`` against the module's ``own`` state dict."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    return missing, unexpected, wrong


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], *, who: str, path: str | Path,
                ignore: Iterable[str] = (), extra_unexpected: Iterable[str] = (), hint: str = "") -> list[str]:
    """Load ``state`` into ``model`` strictly, after dropping keys matching the ``ignore`` patterns.

    ``ignore``: fnmatch patterns of keys the published file carries but the encoder does not use
    (pre-training heads); they are dropped and returned. ``extra_unexpected``: keys found outside
    the encoder's part of the file that match no pattern (reported as unexpected).

    Raises
    ------
    EncoderError
        Listing missing keys, unexpected keys and shape mismatches, plus ``hint``.
    """
    ignore = tuple(ignore)
    own = model.state_dict()
    dropped = [k for k in state if k not in own and any(fnmatch.fnmatchcase(k, pat) for pat in ignore)]
    kept = {k: v for k, v in state.items() if k not in dropped}
    missing, unexpected, wrong = key_report(own, kept)
    unexpected += [k for k in extra_unexpected if not any(fnmatch.fnmatchcase(k, pat) for pat in ignore)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_fmt(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_fmt(unexpected)}")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatch(es): {_fmt(wrong, 4)}")
        raise EncoderError(f"{who}: {Path(path).name} does not match the published architecture -- {'; '.join(parts)}."
                           + (f" {hint}" if hint else ""))
    model.load_state_dict(kept, strict=True)
    return dropped


def shape_of(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    """Shape of ``state[key]`` or None when absent (for reading hyper-parameters off a checkpoint)."""
    t = state.get(key)
    return None if t is None else tuple(t.shape)


def count_indexed(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    """Number of consecutive ``prefix{i}.`` blocks present (0, 1, 2, ...)."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in state):
        n += 1
    return n
