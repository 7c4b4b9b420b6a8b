"""Session state: only ids, paths and small settings -- never arrays or models.

Everything heavy (windows, heads, alignment results, runs) lives on disk or in
the caches of ``ui.cache``, so a reload or another page sees the same data.

Widgets use their own keys (``w_*``); Streamlit forgets a widget's key when its
page is not shown, so pages copy the chosen value into the persistent keys here.

A reload keeps the work: after every script run ``remember()`` writes the persistent keys
to a small session file in the app workspace and puts only its random token in the URL
(``?s=<token>``); a new browser session with that token ``restore()``s them. The URL never
holds a server path, and a restored dataset must still exist and lie where the app may read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
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
    "head_options": None,         # {"calibration", "fine_tune", "epochs", "lr"} of the old task head (Models page)
}

PERSISTED = tuple(DEFAULTS)
#: what survives a reload (through the session file named in the URL)
REMEMBERED = ("data_source", "demo_kind", "manifest_path", "dataset_label", "old_encoder", "new_encoder",
              "window_s", "step_s", "active_run", "positions", "data_notes", "device", "head_options")
QUERY_KEY = "s"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def init() -> None:
    """Fill missing keys with defaults and restore a reloaded session (idempotent; top of app.py)."""
    fresh = "_session_token" not in st.session_state
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value.copy() if isinstance(value, (dict, list)) else value
    if fresh:
        st.session_state["_session_token"] = None
        restore()


def _session_file(token: str) -> Path:
    return workspace("sessions") / f"{token}.json"


def readable_dataset(path: str | None) -> bool:
    """A restored manifest must exist and lie in the app's own folders or a configured data root."""
    if not path or not Path(path).is_file():
        return False
    from bioxbridge_core.paths import cache_dir

    from .server_data import DataRoot, configured_roots, inside_any

    own = [DataRoot("app", cache_dir("app")), DataRoot("demo", cache_dir("demo")),
           DataRoot("recipes", cache_dir("recipes"))]
    return inside_any(path, own + configured_roots())


def restore() -> bool:
    """Load the session named by the URL token into session state; True when something was restored."""
    token = st.query_params.get(QUERY_KEY)
    if not token or not _TOKEN_RE.match(str(token)):
        return False
    path = _session_file(str(token))
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(saved, dict):
        return False
    values = {k: v for k, v in saved.items() if k in REMEMBERED}
    if not readable_dataset(values.get("manifest_path")):
        for k in ("manifest_path", "dataset_label", "positions", "data_notes"):
            values.pop(k, None)
    for k, v in values.items():
        st.session_state[k] = v
    st.session_state["_session_token"] = str(token)
    st.session_state["_session_saved"] = json.dumps(values, sort_keys=True, default=str)
    return True


def remember() -> None:
    """Write the remembered keys to the session file (when changed) and keep its token in the URL."""
    snapshot = {k: st.session_state.get(k, DEFAULTS[k]) for k in REMEMBERED}
    text = json.dumps(snapshot, sort_keys=True, default=str)
    token = st.session_state.get("_session_token") or secrets.token_urlsafe(12)
    if st.session_state.get("_session_saved") != text or not _session_file(token).exists():
        from bioxbridge_core._io import atomic_write_json

        atomic_write_json(_session_file(token), snapshot)
        st.session_state["_session_saved"] = text
    st.session_state["_session_token"] = token
    if st.query_params.get(QUERY_KEY) != token:
        st.query_params[QUERY_KEY] = token


def clear_dataset() -> None:
    """Forget the active dataset and everything chosen for it (a new source was picked)."""
    update(manifest_path=None, dataset_label=None, positions=None, data_notes=None, window_s=None, step_s=None)


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


DATA_KEYS = ("manifest_path", "old_encoder", "new_encoder", "window_s", "step_s")


def data_settings() -> dict[str, Any]:
    """Everything that defines the windows a page computes on (``DATA_KEYS``) plus the old task head's
    options (``head``: calibration and fine-tuning, chosen on the Models page); used in cache keys and run configs."""
    return {**{k: get(k) for k in DATA_KEYS}, "head": get("head_options")}
