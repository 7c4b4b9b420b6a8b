"""Validation helpers used at the public API boundary.

Errors name the parameter, say what was allowed and echo what arrived.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import ConfigError, RecordingError


def suggest(name: str, options: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest option, or ''."""
    options = [str(o) for o in options]
    close = difflib.get_close_matches(str(name), options, n=1, cutoff=0.5)
    if not close:
        lowered = {o.lower(): o for o in options}
        hits = [o for low, o in lowered.items() if str(name).lower() in low]
        close = hits[:1]
    return f" Did you mean '{close[0]}'?" if close else ""


def check_option(name: str, value: Any, allowed: Sequence[Any], *, owner: str = "") -> Any:
    """Raise ConfigError unless ``value`` is one of ``allowed``."""
    if value in allowed:
        return value
    where = f" of {owner}" if owner else ""
    hint = suggest(str(value), [str(a) for a in allowed]) if isinstance(value, str) else ""
    raise ConfigError(
        f"Invalid value for '{name}'{where}: {value!r}. Allowed: "
        + ", ".join(repr(a) for a in allowed) + "." + hint
    )


def check_range(name: str, value: float, *, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True, owner: str = "", integer: bool = False) -> Any:
    """Raise ConfigError unless ``low <= value <= high`` (bounds optional)."""
    where = f" of {owner}" if owner else ""
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"'{name}'{where} must be {kind}, got {value!r}.")
    if not np.isfinite(value):
        raise ConfigError(f"'{name}'{where} must be finite, got {value!r}.")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ConfigError(f"'{name}'{where} must be {op} {low}, got {value!r}.")
    if high is not None and value > high:
        raise ConfigError(f"'{name}'{where} must be <= {high}, got {value!r}.")
    return value


def check_path(path: str | Path, *, name: str = "path", must_exist: bool = True) -> Path:
    """Return an absolute Path; raise RecordingError naming it when it does not exist."""
    p = Path(path).expanduser()
    if must_exist and not p.exists():
        raise RecordingError(f"{name}: file not found: {p}")
    return p.resolve() if p.exists() else p.absolute()


def soft_import(module: str, purpose: str, *, package: str | None = None):
    """Import an optional dependency or say what to install and why."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from .errors import BioXError

        raise BioXError(
            f"'{package or module}' is needed for {purpose} but is not installed. "
            f"Install it with: pip install {package or module}"
        ) from exc


def check_random_state(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Turn None, an int or a Generator into a numpy Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        return np.random.default_rng(seed)
    raise ConfigError(f"'seed' must be None, an int or a numpy Generator, got {seed!r}.")


def check_windows(x: Any, *, n_chans: int | None = None, n_times: int | None = None,
                  name: str = "x", encoder: str = "") -> np.ndarray:
    """Return float32 C-contiguous ``(n_windows, n_chans, n_times)`` or raise with the shapes."""
    arr = np.asarray(x)
    if arr.ndim != 3:
        raise ConfigError(
            f"{name} must have shape (n_windows, n_chans, n_times); got an array of shape {arr.shape}."
        )
    who = f" encoder '{encoder}'" if encoder else ""
    if n_chans is not None and arr.shape[1] != n_chans:
        raise ConfigError(f"{name} has {arr.shape[1]} channels but{who or ' the encoder'} expects {n_chans}.")
    if n_times is not None and arr.shape[2] != n_times:
        raise ConfigError(f"{name} has {arr.shape[2]} samples per window but{who or ' the encoder'} expects {n_times}.")
    if arr.shape[0] == 0:
        raise ConfigError(f"{name} holds no windows.")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ConfigError(f"{name} contains NaN or infinite values.")
    return arr


def check_window_shapes(x: Any, encoder: Any, name: str = "x") -> np.ndarray:
    """Shape checks of ``x`` (ndarray, tensor or memmap) against ``encoder.spec`` without reading every window.

    Only the first window's values are read (and checked finite); callers check the others batch by
    batch as they read them, so a memory-mapped cohort is never loaded whole. Returns ``x`` as an
    ndarray (a tensor is moved to the CPU). Raises ``ConfigError`` with the shapes.
    """
    if hasattr(x, "detach"):  # a torch tensor; no torch import here
        x = x.detach().cpu().numpy()
    elif not isinstance(x, np.ndarray):
        x = np.asarray(x)
    spec = encoder.spec
    kw = dict(n_chans=spec.n_chans, n_times=None if spec.flexible_length else spec.n_times, name=name,
              encoder=getattr(encoder, "encoder_name", ""))
    if x.ndim != 3 or x.shape[0] == 0:
        return check_windows(x, **kw)  # raises with the shape
    check_windows(x[:1], **kw)
    return x
