"""Cached factories: expensive engine objects built once per process and shared by pages.

- encoders (``st.cache_resource``: one frozen model per name/device/channels, never copied),
- recordings (``st.cache_data`` keyed by path *and* mtime, so an edited file is re-read),
- paired windows (``st.cache_resource``; the engine also caches them on disk).

Each function imports the engine piece it needs through ``ui.errors.engine`` so a
missing module shows "not available yet" instead of crashing the page.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from .errors import engine


@st.cache_resource(show_spinner="Loading encoder…", max_entries=6)
def get_encoder(name: str, device: str | None = None, ch_names: tuple[str, ...] | None = None,
                window_s: float | None = None) -> Any:
    """A frozen ``EncoderAdapter`` (``models.registry.load_encoder``) at ``window_s`` (default: its own)."""
    load_encoder = engine("models.registry", "load_encoder", feature="Encoder loading")
    kw = {"window_s": float(window_s)} if window_s else {}
    return load_encoder(name, device=device, ch_names=list(ch_names) if ch_names else None, **kw)


@st.cache_data(show_spinner=False, ttl=600)
def list_encoders() -> list[dict]:
    """Encoders the registry knows (built-ins and adapters)."""
    fn = engine("models.registry", "list_encoders", feature="The encoder registry")
    return list(fn())


@st.cache_data(show_spinner=False, max_entries=32)
def encoder_spec(name: str, ch_names: tuple[str, ...] | None = None, window_s: float | None = None) -> Any:
    """The encoder's input ``SignalSpec`` (cheap: no weights loaded), at ``window_s`` when given."""
    fn = engine("models.registry", "encoder_spec", feature="Encoder specs")
    kw = {"window_s": float(window_s)} if window_s else {}
    return fn(name, ch_names=list(ch_names) if ch_names else None, **kw)


def spec_for(name: str, channels: tuple[str, ...] | None = None, window_s: float | None = None) -> Any:
    """The spec, with channel names passed only to channel-agnostic (EEG-style) encoders."""
    spec = encoder_spec(name)
    if channels and (spec.n_chans is None or spec.ch_names is not None or spec.modality == "EEG"):
        return encoder_spec(name, tuple(channels), window_s)
    return encoder_spec(name, None, window_s) if window_s else spec


@st.cache_data(show_spinner="Reading recording…", max_entries=16)
def load_recording(path: str, mtime: float, channels: tuple[str, ...] | None = None) -> Any:
    """A ``Recording`` read from disk; ``mtime`` is only part of the cache key."""
    read_recording = engine("data.readers", "read_recording", feature="Reading recordings")
    return read_recording(path, channels=list(channels) if channels else None)


@st.cache_data(show_spinner="Reading upload…", max_entries=8)
def load_recording_bytes(data: bytes, filename: str) -> Any:
    """A ``Recording`` from uploaded bytes (the reader enforces its own size cap)."""
    fn = engine("data.readers", "read_recording_bytes", feature="Reading uploads")
    return fn(data, filename)


@st.cache_data(show_spinner="Reading manifest…", max_entries=8)
def load_manifest(path: str, mtime: float, seed: int = 0) -> Any:
    """A ``Manifest`` (``data.manifest.read_manifest``)."""
    read_manifest = engine("data.manifest", "read_manifest", feature="Dataset manifests")
    return read_manifest(path, seed=seed)


@st.cache_resource(show_spinner="Cutting paired windows…", max_entries=4)
def get_paired_windows(manifest_path: str, mtime: float, old_encoder: str, new_encoder: str,
                       window_s: float | None = None, step_s: float | None = None) -> Any:
    """``PairedWindows`` for the active dataset and encoders (shared, treat as read-only)."""
    make_paired_windows = engine("data.pairing", "make_paired_windows", feature="Paired windowing")
    check_windows = engine("pipeline", "check_windows", feature="Window checks")
    window_s, step_s = check_windows(old_encoder, new_encoder, window_s, step_s)  # the allowed range, named
    manifest = load_manifest(manifest_path, mtime)
    old_spec, new_spec = specs_for_manifest(manifest, old_encoder, new_encoder, window_s)
    return make_paired_windows(manifest, old_spec=old_spec, new_spec=new_spec, window_s=window_s, step_s=step_s)


def specs_for_manifest(manifest: Any, old_encoder: str, new_encoder: str,
                       window_s: float | None = None) -> tuple[Any, Any]:
    """Both encoder specs; channel-agnostic encoders get the manifest's (first row's) channel names."""
    first = manifest.table.iloc[0]
    return (spec_for(old_encoder, tuple(first["old_channels"]), window_s),
            spec_for(new_encoder, tuple(first["new_channels"]), window_s))


@st.cache_resource(show_spinner="Loading the bridged model…", max_entries=4)
def get_bridged_model(run_dir: str, mtime: float, device: str | None = None) -> Any:
    """The ``BridgedModel`` saved in a run folder (``runs.bundle.load_bundle``); mtime keys the cache."""
    load_bundle = engine("runs.bundle", "load_bundle", feature="Loading trained bridges")
    return load_bundle(run_dir, device)


@st.cache_data(show_spinner="Predicting…", max_entries=8)
def predictions(run_dir: str, bundle_mtime: float, rec_path: str, rec_mtime: float,
                channels: tuple[str, ...] | None, device: str | None = None) -> Any:
    """Per-window predictions of a bridge run on a recording file (cached by both files' mtimes)."""
    predict = engine("inference", "predict_recording", feature="Prediction")
    model = get_bridged_model(run_dir, bundle_mtime, device)
    rec = load_recording(rec_path, rec_mtime)
    return predict(model, rec, channels=list(channels) if channels else None)


@st.cache_resource(show_spinner="Loading the fine-tuned old encoder…", max_entries=2)
def get_finetuned_encoder(name: str, device: str | None, ch_names: tuple[str, ...] | None, window_s: float | None,
                          state_path: str, state_mtime: float) -> Any:
    """A copy of ``get_encoder(name, ...)`` with the weights of ``state_path`` (``models.heads.save_encoder_state``)
    loaded over it; the shared frozen encoder is never touched. ``state_mtime`` is only part of the cache key."""
    import copy

    load_encoder_state = engine("models.heads", "load_encoder_state", feature="Fine-tuned encoders")
    return load_encoder_state(copy.deepcopy(get_encoder(name, device, ch_names, window_s)), state_path)


def encoder_for(name: str, manifest_path: str, side: str, device: str | None = None,
                window_s: float | None = None, state_path: str | None = None) -> Any:
    """The frozen encoder for one side of the active dataset (EEG-style encoders get its montage),
    at the window length in use (``None``: the encoder's own); with ``state_path``, the copy of it
    fine-tuned with the old task head (``get_finetuned_encoder``)."""
    manifest = load_manifest(manifest_path, _mtime(manifest_path))
    chans = tuple(manifest.table.iloc[0][f"{side}_channels"])
    spec = encoder_spec(name)
    montage = chans if (spec.n_chans is None or spec.ch_names is not None or spec.modality == "EEG") else None
    win = window_s if window_s and window_s != spec.window_s else None
    if state_path:
        return get_finetuned_encoder(name, device, montage, win, str(state_path), _mtime(state_path))
    return get_encoder(name, device, montage, win)


def paired_windows_for(settings: dict) -> Any:
    """``get_paired_windows`` for ``ui.state.data_settings()``."""
    s = settings
    return get_paired_windows(s["manifest_path"], _mtime(s["manifest_path"]), s["old_encoder"], s["new_encoder"],
                              s["window_s"], s["step_s"])


def _mtime(path: str) -> float:
    from .state import mtime

    return mtime(path)


def clear_all() -> None:
    """Forget every cached object (sidebar button)."""
    st.cache_data.clear()
    st.cache_resource.clear()
