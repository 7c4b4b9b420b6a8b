"""Mean-pooled features at many positions, in one pass, with a disk cache.

Alignment needs, for every pair window, the pooled output of each new-model
stage and the pooled input of each old-model stage. ``collect_features`` runs
the frozen encoder once over the windows in batches and keeps only the pooled
``(n_windows, width)`` arrays, so memory is bounded by those and never by the
full token tensors. Results are cached on disk, keyed by the encoder name, a
hash of its weights, a hash of the input windows and the settings, so asking
again costs one file read.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .._check import check_option, check_windows
from .._io import atomic_save_npz
from ..device import resolve_device
from ..errors import ConfigError
from ..models.base import EncoderAdapter, iter_batches
from ..paths import cache_dir

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
CACHE_VERSION = 1


def _hash_update_array(h: "hashlib._Hash", arr: np.ndarray) -> None:
    h.update(str(arr.dtype).encode())
    h.update(str(arr.shape).encode())
    h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))


def weights_hash(module: torch.nn.Module) -> str:
    """blake2b of the state dict (names, dtypes, shapes and bytes), in name order."""
    h = hashlib.blake2b(digest_size=16)
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: hash the raw 16-bit words
            t = t.view(torch.int16)
        _hash_update_array(h, t.contiguous().numpy())
    return h.hexdigest()


def array_hash(x: np.ndarray) -> str:
    """blake2b of an array's dtype, shape and bytes."""
    h = hashlib.blake2b(digest_size=16)
    _hash_update_array(h, np.asarray(x))
    return h.hexdigest()


def _default_positions(encoder: EncoderAdapter, which: str) -> list[str]:
    chosen = encoder.read_positions if which == "out" else encoder.write_positions
    return [p.name for p in chosen]


def _cache_path(encoder: EncoderAdapter, x: np.ndarray, names: Sequence[str], which: str) -> Path:
    h = hashlib.blake2b(digest_size=16)
    for part in (f"v{CACHE_VERSION}", type(encoder).__qualname__, encoder.encoder_name,
                 repr(sorted(encoder.spec.to_dict().items())), weights_hash(encoder), array_hash(x),
                 which, "|".join(names)):
        h.update(part.encode())
        h.update(b"\0")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", encoder.encoder_name)[:40] or "encoder"
    return cache_dir("features") / f"{safe}-{which}-{h.hexdigest()}.npz"


def _load_cached(path: Path, names: Sequence[str], n: int) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = [str(s) for s in z["names"]]
            if stored != list(names):
                return None
            out = {name: np.asarray(z[f"f_{i}"], dtype=np.float32) for i, name in enumerate(stored)}
    except (OSError, KeyError, ValueError) as exc:  # unreadable/partial cache: recompute
        log.warning("ignoring unreadable feature cache %s (%s)", path, exc)
        return None
    if any(v.ndim != 2 or v.shape[0] != n for v in out.values()):
        return None
    return out


def collect_features(encoder: EncoderAdapter, x: np.ndarray | torch.Tensor, *,
                     positions: Sequence[str | int] | None = None, which: str = "out",
                     batch_size: int = 64, device: str | torch.device | None = None, cache: bool = True,
                     on_progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
    """Mean-pooled features at several positions, one forward pass over all windows.

    Parameters
    ----------
    encoder : a (frozen) EncoderAdapter.
    x : ndarray, shape (n_windows, n_chans, n_times), at ``encoder.spec.sfreq``.
    positions : position names or indices; default: ``read_positions`` for
        ``which="out"`` (stage outputs) and ``write_positions`` for ``which="in"``
        (stage inputs).
    batch_size : windows per forward pass.
    device : where to run; ``None`` picks CUDA when present. The encoder is moved there.
    cache : read/write the on-disk cache (``paths.cache_dir("features")``).

    Returns
    -------
    dict position name -> float32 ndarray, shape (n_windows, width), in ``positions`` order.
    """
    check_option("which", which, ("out", "in"), owner="collect_features")
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    n_chans = encoder.spec.n_chans
    n_times = None if encoder.spec.flexible_length else encoder.spec.n_times
    arr = check_windows(x, n_chans=n_chans, n_times=n_times, name="x", encoder=encoder.encoder_name)
    names = (_default_positions(encoder, which) if positions is None
             else [encoder.position(p).name for p in positions])
    if not names:
        raise ConfigError(f"{encoder.encoder_name}: no positions to collect (which={which!r}).")
    if len(set(names)) != len(names):
        raise ConfigError(f"positions contain duplicates: {names}.")
    n = arr.shape[0]

    path = _cache_path(encoder, arr, names, which) if cache else None
    if path is not None and path.exists():
        hit = _load_cached(path, names, n)
        if hit is not None:
            log.info("features for %s (%d windows) read from cache %s", encoder.encoder_name, n, path.name)
            if on_progress is not None:
                on_progress(1, 1, f"{encoder.encoder_name}: features from cache")
            return hit

    dev = resolve_device(device)
    if encoder._param_device() != dev:
        log.info("moving %s to %s", encoder.encoder_name, dev)
        encoder.to(dev)
    was_training = encoder.training
    encoder.eval()
    out: dict[str, np.ndarray] = {}
    batches = list(iter_batches(n, int(batch_size)))
    try:
        with torch.inference_mode():
            for b, sl in enumerate(batches):
                xb = torch.from_numpy(arr[sl]).to(dev)
                pooled = encoder.pooled_outputs(xb, names, which=which)
                for name in names:
                    v = pooled[name].float().cpu().numpy()
                    if name not in out:  # allocate once the width is known
                        out[name] = np.empty((n, v.shape[1]), dtype=np.float32)
                    out[name][sl] = v
                if on_progress is not None:
                    on_progress(b + 1, len(batches), f"{encoder.encoder_name}: pooled features")
    finally:
        encoder.train(was_training)
    out = {name: out[name] for name in names}
    if path is not None:
        arrays = {f"f_{i}": out[name] for i, name in enumerate(names)}
        atomic_save_npz(path, names=np.array(names, dtype=str), **arrays)
        log.info("features for %s cached at %s", encoder.encoder_name, path)
    return out
