"""Session state: only ids, paths and small settings -- never arrays or models.

Everything heavy (windows, heads, alignment results, runs) lives on disk or in
the caches of ``ui.cache``, so a reload or another page sees the same data.

Widgets use their own keys (``w_*``); Streamlit forgets a widget's key when its
page is not shown, so pages copy the chosen value into the persistent keys here.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import streamlit as st

from bioxbridge_core.paths import REPO_ROOT, cache_dir

#: demo datasets offered on the Data page: kind -> (label, old encoder, new encoder)
DEMOS = {
    "ecg-ppg": ("ECG → PPG (synthetic, 3 classes)", "builtin:ecg", "builtin:ppg"),
    "eeg-ecg": ("EEG → ECG (synthetic, rest vs task)", "builtin:eeg", "builtin:ecg"),
}

DEFAULTS: dict[str, Any] = {
    "device": "auto",             # "auto" | "cpu" | "cuda"
    "run_root": os.environ.get("BIOXBRIDGE_RUNS") or "runs",  # run store (relative to the repo root unless absolute)
    "data_source": "demo",        # "demo" | "upload-many" | "upload-one" | "upload-two" | "upload-zip" | "server"
    "demo_kind": "ecg-ppg",
    "manifest_path": None,        # active dataset: path of a manifest CSV
    "dataset_label": None,        # short human name of the active dataset
    "old_encoder": "builtin:ecg",
    "new_encoder": "builtin:ppg",
    "window_s": None,             # None: the encoders' own window length
    "step_s": None,
    "active_run": None,           # run id
    "positions": None,            # {"read": str, "write": str} chosen on the Alignment page
    "predict_request": None,      # {"run", "file", "channels"} of the last prediction asked for
    "data_notes": None,           # {"manifest": path, "notes": [str]} from building a manifest of uploads
}

PERSISTED = tuple(DEFAULTS)


def init() -> None:
    """Fill missing keys with defaults (idempotent; call at the top of app.py)."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value.copy() if isinstance(value, (dict, list)) else value


def get(key: str) -> Any:
    if key not in DEFAULTS:
        raise KeyError(f"unknown app state key {key!r}")
    return st.session_state.get(key, DEFAULTS[key])


def put(key: str, value: Any) -> None:
    if key not in DEFAULTS:
        raise KeyError(f"unknown app state key {key!r}")
    st.session_state[key] = value


def update(**values: Any) -> None:
    for key, value in values.items():
        put(key, value)


def run_root() -> Path:
    """Absolute run-store folder (created on demand)."""
    root = Path(str(get("run_root") or "runs")).expanduser()
    if not root.is_absolute():
        root = REPO_ROOT / root
    root.mkdir(parents=True, exist_ok=True)
    return root


def device_arg() -> str | None:
    """The device setting as the engine wants it (None = auto)."""
    dev = get("device")
    return None if dev in (None, "auto") else str(dev)


def workspace(*parts: str) -> Path:
    """App scratch folder for uploads and task heads (inside the engine cache folder)."""
    return cache_dir("app", *parts)


def fingerprint(*items: Any) -> str:
    """Short stable hash of JSON-able items (folder names for heads and alignment results)."""
    text = json.dumps(items, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def mtime(path: str | Path | None) -> float:
    """File modification time (0.0 when missing): part of cache keys so edits invalidate them."""
    try:
        return Path(path).stat().st_mtime if path else 0.0
    except OSError:
        return 0.0


def data_settings() -> dict[str, Any]:
    """Everything that defines the windows a page computes on (used in cache keys and run configs)."""
    return {k: get(k) for k in ("manifest_path", "old_encoder", "new_encoder", "window_s", "step_s")}
