"""Find, describe and load encoders by name.

Names:

- ``builtin:ecg``, ``builtin:ppg``, ``builtin:eeg``, ``builtin:eda`` -- the shipped encoders,
  weights from ``assets/encoders/<name>.safetensors`` (when absent and
  ``pretrained=True``: a warning and a deterministic random init);
- ``ADAPTER:PATH`` -- an adapter registered with ``register_adapter`` built
  from a local checkpoint, e.g. ``hubert-ecg:/models/hubert_ecg_small`` or
  ``labram:/models/labram-base.pth`` (shipped: ``hubert-ecg``, ``labram``, ``biot``,
  ``cbramod``, ``papagei``; see ``models/adapters/foundation.py``).

``load_encoder`` returns a frozen adapter on the chosen device. Built-ins are
cached per (name, montage, pretrained, device); each call returns a deep copy
of the cached module, so callers cannot change what the next caller gets.
"""

from __future__ import annotations

import copy
import logging
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .._check import suggest
from ..errors import EncoderError
from ..paths import ASSETS
from ..spec import SignalSpec
from .base import EncoderAdapter

log = logging.getLogger(__name__)

ENCODER_DIR = ASSETS / "encoders"
BUILTIN_PREFIX = "builtin"

Factory = Callable[..., EncoderAdapter]  # factory(path, *, ch_names=None) -> adapter
SpecFn = Callable[..., SignalSpec]  # spec_fn(path, *, ch_names=None) -> spec


@dataclass(frozen=True)
class AdapterEntry:
    """One registered ``ADAPTER:PATH`` family."""

    prefix: str
    factory: Factory
    modality: str | None = None
    spec_fn: SpecFn | None = None
    requires: tuple[str, ...] = ()
    description: str = ""
    contract: Callable[[], SignalSpec] | None = None  # default input spec, no checkpoint needed
    checkpoint: str = ""  # what file or folder to point at (shown by the app)
    params: int | None = None  # parameters of the published default configuration


_ADAPTERS: dict[str, AdapterEntry] = {}
_CACHE: dict[tuple, EncoderAdapter] = {}
_LOCK = threading.Lock()


def register_adapter(prefix: str, *, modality: str | None = None, spec_fn: SpecFn | None = None,
                     requires: Sequence[str] = (), description: str = "",
                     contract: Callable[[], SignalSpec] | None = None, checkpoint: str = "",
                     params: int | None = None) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory(path, *, ch_names=None) -> EncoderAdapter`` under ``prefix``.

    ``requires`` names optional Python packages the adapter imports (shown as
    unavailable in ``list_encoders`` when missing). ``contract`` returns the
    default input spec without a checkpoint, ``checkpoint`` says what to point
    at, ``params`` is the published model's size (all shown by ``list_encoders``).
    Re-registering a prefix replaces it with a warning.
    """
    if not prefix or ":" in prefix or prefix == BUILTIN_PREFIX:
        raise EncoderError(f"Invalid adapter prefix {prefix!r} (no ':' and not '{BUILTIN_PREFIX}').")

    def deco(factory: Factory) -> Factory:
        if prefix in _ADAPTERS:
            warnings.warn(f"Adapter '{prefix}' was already registered; replacing it.", stacklevel=2)
        _ADAPTERS[prefix] = AdapterEntry(prefix, factory, modality, spec_fn, tuple(requires),
                                         description or (factory.__doc__ or "").strip().split("\n")[0],
                                         contract, checkpoint, params)
        return factory

    return deco


def registered_adapters() -> dict[str, AdapterEntry]:
    """Copy of the adapter table (prefix -> entry)."""
    _ensure_default_adapters()
    return dict(_ADAPTERS)


def _ensure_default_adapters() -> None:
    """Register the shipped adapters (import is lazy so transformers is never imported here)."""
    if "hubert-ecg" in _ADAPTERS or getattr(_ensure_default_adapters, "_done", False):
        return
    _ensure_default_adapters._done = True  # type: ignore[attr-defined]

    def _hubert(path: str, *, ch_names: Sequence[str] | None = None) -> EncoderAdapter:
        from .adapters.hubert_ecg import load_hubert_ecg

        return load_hubert_ecg(path, ch_names=ch_names)

    def _hubert_spec(path: str, *, ch_names: Sequence[str] | None = None) -> SignalSpec:
        from .adapters.hubert_ecg import hubert_ecg_spec

        return hubert_ecg_spec(path, ch_names=ch_names)

    def _hubert_contract() -> SignalSpec:
        from .adapters import hubert_ecg as h  # cheap: imports no transformers at module level

        return SignalSpec("ECG", h.SFREQ_HZ, h.WINDOW_S, n_chans=len(h.TWELVE_LEADS), ch_names=h.TWELVE_LEADS)

    register_adapter("hubert-ecg", modality="ECG", spec_fn=_hubert_spec, requires=("transformers",),
                     description="HuBERT-ECG (Coppola et al. 2024) from a local save_pretrained folder; "
                                 "12 leads flattened, 100 Hz, 5 s.", contract=_hubert_contract,
                     checkpoint="a save_pretrained folder with config.json and model.safetensors")(_hubert)
    from .adapters.foundation import register_foundation_adapters

    register_foundation_adapters(register_adapter)


# -- names ----------------------------------------------------------------------------
def _builtin_names() -> tuple[str, ...]:
    from .builtin import BUILTIN_NAMES

    return BUILTIN_NAMES


def known_names() -> list[str]:
    """Built-in names plus ``PREFIX:<path>`` for each adapter (for messages and UIs)."""
    _ensure_default_adapters()
    return [f"{BUILTIN_PREFIX}:{n}" for n in _builtin_names()] + [f"{p}:<path>" for p in _ADAPTERS]


def _parse(name: str) -> tuple[str, str]:
    if not isinstance(name, str) or ":" not in name:
        options = known_names()
        raise EncoderError(
            f"Unknown encoder {name!r}: names look like 'builtin:ecg' or 'hubert-ecg:/path/to/folder'."
            f"{suggest(str(name), options)} Known: {', '.join(options)}."
        )
    prefix, rest = name.split(":", 1)
    _ensure_default_adapters()
    if prefix == BUILTIN_PREFIX:
        if rest not in _builtin_names():
            options = [f"{BUILTIN_PREFIX}:{n}" for n in _builtin_names()]
            raise EncoderError(f"Unknown built-in encoder '{name}'.{suggest(name, options)} "
                               f"Built-ins: {', '.join(options)}.")
        return prefix, rest
    if prefix not in _ADAPTERS:
        raise EncoderError(f"Unknown encoder adapter '{prefix}' in '{name}'.{suggest(prefix, list(_ADAPTERS))} "
                           f"Registered adapters: {', '.join(sorted(_ADAPTERS)) or 'none'}; "
                           f"built-ins: {', '.join(_builtin_names())}.")
    if not rest:
        raise EncoderError(f"Encoder '{name}' needs a checkpoint path after '{prefix}:'.")
    return prefix, rest


def weights_path(builtin: str) -> Path:
    """Where the pre-trained weights of built-in ``builtin`` (``"ecg"``...) live."""
    return ENCODER_DIR / f"{builtin}.safetensors"


# -- loading --------------------------------------------------------------------------
def _load_builtin_weights(model: EncoderAdapter, key: str) -> bool:
    from .._io import load_safetensors

    path = weights_path(key)
    if not path.is_file():
        return False
    state = load_safetensors(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise EncoderError(
            f"{path} does not match the builtin:{key} architecture: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}. Re-export the weights."
        )
    model.load_state_dict(state, strict=True)
    return True


def load_encoder(name: str, *, device=None, ch_names: Sequence[str] | None = None,
                 pretrained: bool = True, window_s: float | None = None) -> EncoderAdapter:
    """Load encoder ``name`` frozen on ``resolve_device(device)``.

    ``ch_names``: EEG montage for ``builtin:eeg``; lead names for multi-lead
    adapters. ``pretrained=False`` skips the weights file (random init, tests).
    ``window_s``: window length in seconds the encoder will be fed (default: its own
    ``spec.window_s``). The returned adapter's ``spec.window_s`` is that length and its
    positions come from a dry pass at it (``EncoderAdapter.set_window``).

    Raises ``EncoderError`` for an unknown name or unloadable weights, ``ConfigError``
    (naming the allowed range) when ``window_s`` is outside ``spec.window_range`` -- checked
    on the spec before any weights are read.
    """
    from ..device import resolve_device

    prefix, rest = _parse(name)
    if window_s is not None and (prefix == BUILTIN_PREFIX or _ADAPTERS[prefix].spec_fn is not None):
        encoder_spec(name, ch_names=ch_names).check_window(window_s, encoder=name)  # before any weights
    dev = resolve_device(device)
    if prefix == BUILTIN_PREFIX:
        montage = tuple(ch_names) if ch_names is not None else None
        key = (rest, montage, bool(pretrained), str(dev))
        with _LOCK:
            cached = _CACHE.get(key)
            if cached is None:
                from .builtin import build_builtin

                model = build_builtin(rest, ch_names=montage)
                if pretrained and not _load_builtin_weights(model, rest):
                    msg = (f"No pre-trained weights for builtin:{rest} at {weights_path(rest)}; "
                           "using a deterministic random initialisation (results will be poor).")
                    log.warning(msg)
                    warnings.warn(msg, stacklevel=2)
                model.encoder_name = name
                model.freeze().to(dev)
                _ = model.positions  # discover once, copied with the module
                _CACHE[key] = model
                cached = model
            model = copy.deepcopy(cached)
        model.freeze()
    else:
        entry = _ADAPTERS[prefix]
        model = entry.factory(rest, ch_names=ch_names, **_window_kw(entry.factory, window_s))
        model.encoder_name = name
        model = model.freeze().to(dev)
    if window_s is not None:
        model.set_window(window_s)
    return model


def _window_kw(fn: Callable, window_s: float | None) -> dict:
    """``{"window_s": window_s}`` when ``fn`` takes it (adapters built for one window length, e.g.
    patch models that check whole patches themselves), else ``{}`` (``set_window`` does the rest)."""
    if window_s is None:
        return {}
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return {}
    takes = any(p.name == "window_s" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return {"window_s": float(window_s)} if takes else {}


def encoder_spec(name: str, *, ch_names: Sequence[str] | None = None, window_s: float | None = None) -> SignalSpec:
    """Input spec of encoder ``name`` without loading weights.

    ``window_s``: the spec at that window length (``ConfigError`` with the allowed range when
    the encoder does not accept it).
    """
    prefix, rest = _parse(name)
    if prefix == BUILTIN_PREFIX:
        spec = _builtin_spec(rest, ch_names)
    else:
        entry = _ADAPTERS[prefix]
        if entry.spec_fn is None:
            spec = entry.factory(rest, ch_names=ch_names, **_window_kw(entry.factory, window_s)).spec
        else:
            if window_s is not None:  # the declared range first, so the message always names it
                entry.spec_fn(rest, ch_names=ch_names).check_window(window_s, encoder=name)
            spec = entry.spec_fn(rest, ch_names=ch_names, **_window_kw(entry.spec_fn, window_s))
    return spec if window_s is None else spec.with_window(window_s, encoder=name)


def _builtin_spec(key: str, ch_names: Sequence[str] | None) -> SignalSpec:
    from .builtin import builtin_spec

    return builtin_spec(key, ch_names)


def _package_available(pkg: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(pkg) is not None


def list_encoders() -> list[dict]:
    """One dict per available encoder family: built-ins (with positions) and registered adapters."""
    from .builtin import DESCRIPTIONS, build_builtin

    out: list[dict] = []
    for key in _builtin_names():
        model = build_builtin(key)  # random init: only shapes and counts are read
        spec = model.spec
        out.append({
            "name": f"{BUILTIN_PREFIX}:{key}", "kind": "builtin", "modality": spec.modality,
            "sampling_rate": spec.sfreq, "window_s": spec.window_s, "window_range": list(spec.window_range),
            "n_chans": spec.n_chans,
            "params": model.n_params(), "positions": model.position_names(),
            "available": weights_path(key).is_file(), "weights": str(weights_path(key)),
            "description": DESCRIPTIONS[key],
        })
    _ensure_default_adapters()
    for prefix, entry in sorted(_ADAPTERS.items()):
        spec = entry.contract() if entry.contract is not None else None
        out.append({
            "name": f"{prefix}:<path>", "kind": "adapter", "modality": entry.modality,
            "sampling_rate": spec.sfreq if spec else None, "window_s": spec.window_s if spec else None,
            "window_range": list(spec.window_range) if spec else None,
            "n_chans": spec.n_chans if spec else None, "params": entry.params, "positions": [],
            "available": all(_package_available(p) for p in entry.requires),
            "requires": list(entry.requires), "description": entry.description,
            "checkpoint": entry.checkpoint, "spec": spec.to_dict() if spec else None,
        })
    return out


def clear_cache() -> None:
    """Forget cached built-ins (e.g. after new weights were written)."""
    with _LOCK:
        _CACHE.clear()
