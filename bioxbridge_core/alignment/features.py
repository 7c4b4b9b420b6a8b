"""Frozen-encoder outputs per window, computed in one pass and kept on disk as memory maps.

One store serves alignment, bridge training and sharded extraction (``features`` command):

- ``"out:<position>"`` — mean-pooled OUTPUT of a stage, ``(n, width)`` float32 (alignment's
  read side; the bridge's input z at the read position m);
- ``"in:<position>"`` — mean-pooled INPUT of a stage, ``(n, width)`` float32 (alignment's
  write side);
- ``"last"`` — the full last-stage output ``(n, *shape)`` in the last stage's layout (the
  bridge's training target), float32 or float16.

``extract_features`` runs the frozen encoder once over the windows in batches and appends
each batch's results to one ``.npy`` file per key (``_npy.NpyAppender``), so memory holds one
batch, never the cohort. With ``cache=True`` the files live in
``paths.cache_dir("features")/<encoder>-<key>/``, keyed by the adapter type, encoder name,
input spec, a hash of the weights and a hash of the input windows; each key is a separate
file, so the bridge trainer reuses what alignment computed (z at m) and computes only what
is missing (the targets). Results come back as read-only-on-disk memory maps.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .. import _npy
from .._check import check_option, check_window_shapes
from ..device import resolve_device
from ..errors import ConfigError
from ..models.base import EncoderAdapter, pool
from ..paths import cache_dir

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
CACHE_VERSION = 2
KINDS = ("out", "in", "last")
TARGET_DTYPES = ("float32", "float16")


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
    """blake2b of an array's dtype, shape and bytes (read in chunks: memory maps stay flat)."""
    return _npy.array_digest(x if isinstance(x, np.ndarray) else np.asarray(x))


def feature_key(kind: str, position: str | None = None) -> str:
    """``"out:<pos>"``, ``"in:<pos>"`` or ``"last"``."""
    check_option("kind", kind, KINDS, owner="feature_key")
    return "last" if kind == "last" else f"{kind}:{position}"


def _parse_key(key: str) -> tuple[str, str | None]:
    kind, _, pos = key.partition(":")
    if kind not in KINDS or (kind == "last") != (pos == ""):
        raise ConfigError(f"unknown feature {key!r}; use 'out:<position>', 'in:<position>' or 'last'.")
    return kind, (pos or None)


def _file_name(key: str, dtype: np.dtype) -> str:
    kind, pos = _parse_key(key)
    if kind == "last":
        return f"last.{np.dtype(dtype).name}.npy"
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", pos)
    if safe != pos:  # keep distinct names distinct
        safe += "-" + hashlib.blake2b(pos.encode(), digest_size=4).hexdigest()
    return f"{kind}.{safe}.npy"


def encoder_key(encoder: EncoderAdapter) -> str:
    """What identifies a frozen encoder's outputs: adapter type, name, input spec and weights."""
    h = hashlib.blake2b(digest_size=16)
    for part in (f"v{CACHE_VERSION}", type(encoder).__qualname__, encoder.encoder_name,
                 repr(sorted(encoder.spec.to_dict().items())), weights_hash(encoder)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def cache_folder(encoder: EncoderAdapter, x: np.ndarray) -> Path:
    """The cache folder for ``encoder`` run on windows ``x``."""
    h = hashlib.blake2b(digest_size=16)
    h.update(encoder_key(encoder).encode())
    h.update(array_hash(x).encode())
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", encoder.encoder_name)[:40] or "encoder"
    return cache_dir("features") / f"{safe}-{h.hexdigest()}"


def _open_if_complete(path: Path, n: int, dtype: np.dtype) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        arr = _npy.open_npy(path)
    except (OSError, ValueError) as exc:  # unreadable/partial file: recompute
        log.warning("ignoring unreadable feature file %s (%s)", path, exc)
        return None
    if arr.ndim < 2 or arr.shape[0] != n or arr.dtype != dtype:
        return None
    return arr


def _plain_chain(encoder: EncoderAdapter) -> bool:
    """True when the adapter runs its stages as a plain chain (base-class forward and pooling)."""
    cls = type(encoder)
    return cls.forward is EncoderAdapter.forward and cls.pooled_outputs is EncoderAdapter.pooled_outputs


def _batch_outputs(encoder: EncoderAdapter, xb: torch.Tensor, outs: list[str], ins: list[str],
                   last: bool) -> dict[str, torch.Tensor]:
    """Pooled outputs/inputs and the full last output for one batch, in as few passes as the adapter allows."""
    got: dict[str, torch.Tensor] = {}
    if _plain_chain(encoder):
        stages = list(encoder.stages())
        want_out, want_in = set(outs), set(ins)
        stop = len(stages) - 1 if last else max(encoder.position(p).index for p in outs + ins)
        h = encoder.prepare(xb)
        for st in stages[: stop + 1]:
            if st.name in want_in:
                got[f"in:{st.name}"] = pool(h, st.in_layout)
            h = st.module(h)
            if st.name in want_out:
                got[f"out:{st.name}"] = pool(h, st.out_layout)
        if last:
            got["last"] = h
        return got
    last_pos = encoder.positions[-1]
    if last:
        got["last"] = encoder.forward(xb)
        if last_pos.name in outs:
            got[f"out:{last_pos.name}"] = pool(got["last"], last_pos.out_layout)
    rest = [p for p in outs if f"out:{p}" not in got]
    if rest:
        got.update({f"out:{k}": v for k, v in encoder.pooled_outputs(xb, rest, which="out").items()})
    if ins:
        got.update({f"in:{k}": v for k, v in encoder.pooled_outputs(xb, ins, which="in").items()})
    return got


def extract_features(encoder: EncoderAdapter, x: np.ndarray | torch.Tensor, keys: Sequence[str], *,
                     batch_size: int = 64, device: str | torch.device | None = None,
                     cache: bool | str | Path = True, last_dtype: str = "float32",
                     on_progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
    """Frozen-encoder outputs per window for every key, one forward pass over the windows.

    Parameters
    ----------
    encoder : a frozen EncoderAdapter.
    x : windows ``(n_windows, n_chans, n_times)`` at ``encoder.spec.sfreq`` (an array, a memory
        map or a tensor); read one batch at a time.
    keys : ``"out:<position>"``, ``"in:<position>"`` and/or ``"last"`` (see module docstring).
    batch_size : windows per forward pass.
    device : where to run; ``None`` picks CUDA when present. The encoder is moved there.
    cache : ``True``: the shared cache folder (``cache_folder``); a path: that folder (the
        ``features`` command's shards); ``False``: arrays in memory, nothing written.
    last_dtype : ``"float32"`` or ``"float16"`` for ``"last"`` (float16 halves the targets' disk
        and read cost; its rounding error is ~5e-4 relative).

    Returns
    -------
    dict key -> array with ``n_windows`` rows, in ``keys`` order: memory maps of ``.npy`` files
    when cached, in-memory arrays otherwise. Raises ConfigError for bad shapes, unknown keys or
    NaN/inf windows (naming the first bad window), LayerNotFoundError for unknown positions.
    """
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}.")
    check_option("last_dtype", last_dtype, TARGET_DTYPES, owner="extract_features")
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise ConfigError(f"{encoder.encoder_name}: no features asked for.")
    parsed = [_parse_key(k) for k in keys]
    keys = [k if kind == "last" else feature_key(kind, encoder.position(pos).name)
            for k, (kind, pos) in zip(keys, parsed)]
    x = check_window_shapes(x, encoder, "x")
    n = int(x.shape[0])
    ldt = np.dtype(last_dtype)
    dtypes = {k: (ldt if k == "last" else np.dtype(np.float32)) for k in keys}

    folder = None if cache is False else (cache_folder(encoder, x) if cache is True else Path(cache))
    found: dict[str, np.ndarray] = {}
    if folder is not None:
        for k in keys:
            hit = _open_if_complete(folder / _file_name(k, dtypes[k]), n, dtypes[k])
            if hit is not None:
                found[k] = hit
    missing = [k for k in keys if k not in found]
    if not missing:
        log.info("features %s of %s (%d windows) read from %s", keys, encoder.encoder_name, n, folder)
        if on_progress is not None:
            on_progress(1, 1, f"{encoder.encoder_name}: features from cache")
        return {k: found[k] for k in keys}

    outs = [_parse_key(k)[1] for k in missing if k.startswith("out:")]
    ins = [_parse_key(k)[1] for k in missing if k.startswith("in:")]
    want_last = "last" in missing
    dev = resolve_device(device)
    if encoder._param_device() != dev:
        log.info("moving %s to %s", encoder.encoder_name, dev)
        encoder.to(dev)
    was_training = encoder.training
    encoder.eval()
    sinks: dict[str, _npy.NpyAppender] = {}
    mem: dict[str, np.ndarray] = {}
    batches = list(_npy.row_chunks(n, int(batch_size)))
    try:
        with torch.inference_mode():
            for b, sl in enumerate(batches):
                block = np.array(x[sl], dtype=np.float32)
                _npy.release(x)
                bad = ~np.isfinite(block).reshape(len(block), -1).all(axis=1)
                if bad.any():
                    raise ConfigError(f"x contains NaN or infinite values (window {sl.start + int(np.argmax(bad))}).")
                got = _batch_outputs(encoder, torch.from_numpy(block).to(dev), outs, ins, want_last)
                for k in missing:
                    v = got[k].to(torch.float32).cpu().numpy()
                    if folder is not None:
                        if k not in sinks:
                            sinks[k] = _npy.NpyAppender(folder / _file_name(k, dtypes[k]), v.shape[1:], dtypes[k])
                        sinks[k].append(v)
                    else:
                        if k not in mem:  # allocate once the shape is known
                            mem[k] = np.empty((n, *v.shape[1:]), dtype=dtypes[k])
                        mem[k][sl] = v
                if on_progress is not None:
                    on_progress(b + 1, len(batches), f"{encoder.encoder_name}: features")
        for k, s in sinks.items():
            s.close()
            found[k] = _npy.open_npy(s.path)
    except BaseException:
        for s in sinks.values():
            s.abort()
        raise
    finally:
        encoder.train(was_training)
        _npy.trim_heap()
    found.update(mem)
    if folder is not None:
        log.info("features %s of %s (%d windows) written to %s", missing, encoder.encoder_name, n, folder)
    return {k: found[k] for k in keys}


def _default_positions(encoder: EncoderAdapter, which: str) -> list[str]:
    chosen = encoder.read_positions if which == "out" else encoder.write_positions
    return [p.name for p in chosen]


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
    cache : read/write the on-disk cache (``extract_features``).

    Returns
    -------
    dict position name -> float32 array, shape (n_windows, width), in ``positions`` order
    (memory maps when cached).
    """
    check_option("which", which, ("out", "in"), owner="collect_features")
    names = (_default_positions(encoder, which) if positions is None
             else [encoder.position(p).name for p in positions])
    if not names:
        raise ConfigError(f"{encoder.encoder_name}: no positions to collect (which={which!r}).")
    if len(set(names)) != len(names):
        raise ConfigError(f"positions contain duplicates: {names}.")
    got = extract_features(encoder, x, [feature_key(which, p) for p in names], batch_size=batch_size,
                           device=device, cache=cache, on_progress=on_progress)
    return {p: got[feature_key(which, p)] for p in names}
