"""Small reusable widgets: the sidebar, headers, metric cards, encoder and run pickers.

Every widget gets a stable ``key`` (``w_<page>_<name>``) so the browser tests can find it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import streamlit as st

from . import state
from .errors import EngineUnavailable, boundary
from .runs_view import STATE_ICONS, RunView, list_runs

DEVICES = ("auto", "cpu", "cuda")
METRIC_LABELS = {"balanced_accuracy": "Balanced accuracy", "f1_macro": "Macro F1",
                 "f1_weighted": "Weighted F1", "cohen_kappa": "Cohen's κ"}


def sidebar() -> Any:
    """Shared sidebar: device, the run store's name, and a slot for the active dataset and run.

    The run-store folder is set by the server (``BIOXBRIDGE_RUNS``), not typed in the browser:
    a browser user must not point the app at arbitrary server folders.

    Returns the slot; ``app.py`` fills it with ``active_summary`` after the page ran, so what the
    page just chose (a dataset, a run) shows at once.
    """
    with st.sidebar:
        st.caption("SETTINGS")
        dev = state.get("device")
        choice = st.selectbox("Device", DEVICES, index=DEVICES.index(dev) if dev in DEVICES else 0,
                              key="w_sidebar_device", help="auto = CUDA when available, else CPU.")
        state.put("device", choice)
        st.caption(f"Run store: `{Path(str(state.get('run_root') or 'runs')).name}/`",
                   help="One folder per run; set on the server with BIOXBRIDGE_RUNS.")
        st.divider()
        st.caption("ACTIVE")
        slot = st.container()
        if st.button("Clear caches", key="w_sidebar_clear", help="Forget cached encoders, recordings and windows."):
            from .cache import clear_all

            clear_all()
            st.toast("Caches cleared")
    return slot


def active_summary(slot: Any) -> None:
    """The active dataset, encoders and run, drawn into the sidebar slot."""
    with slot:
        st.markdown(f"**Dataset:** {state.get('dataset_label') or '—'}")
        st.markdown(f"**Encoders:** `{state.get('old_encoder')}` → `{state.get('new_encoder')}`")
        st.markdown(f"**Run:** {state.get('active_run') or '—'}")


def page_header(title: str, caption: str) -> None:
    st.title(title)
    st.caption(caption)


def metric_cards(metrics: dict[str, Any], keys: Sequence[str] = tuple(METRIC_LABELS), *, prefix: str = "") -> None:
    """One ``st.metric`` card per known metric present in ``metrics``."""
    present = [k for k in keys if isinstance(metrics.get(k), (int, float))]
    if not present:
        st.caption("No metrics yet.")
        return
    cols = st.columns(len(present))
    for col, k in zip(cols, present):
        col.metric(prefix + METRIC_LABELS.get(k, k), f"{metrics[k]:.3f}")


def progress_callback(text: str = "Working…") -> Callable[[int, int, str], None]:
    """An ``on_progress(step, total, message)`` callback drawing a Streamlit progress bar."""
    bar = st.progress(0.0, text=text)

    def on_progress(step: int, total: int, message: str = "") -> None:
        frac = min(1.0, max(0.0, step / total)) if total else 0.0
        bar.progress(frac, text=f"{text} {message}".strip())

    return on_progress


def encoder_options(modality: str | None = None) -> list[str]:
    """Names from ``list_encoders()`` (optionally one modality); built-in names if the registry is missing."""
    from .cache import list_encoders

    try:
        items = list_encoders()
    except EngineUnavailable:
        return ["builtin:ecg", "builtin:ppg", "builtin:eeg"]
    names = []
    for it in items:
        name = it.get("name") if isinstance(it, dict) else str(it)
        mod = (it.get("modality") if isinstance(it, dict) else None) or ""
        if name and "<" not in name and (modality is None or not mod or str(mod).upper() == modality.upper()):
            names.append(str(name))
    return names or ["builtin:ecg", "builtin:ppg", "builtin:eeg"]


def encoder_picker(label: str, *, key: str, current: str, options: Sequence[str]) -> str:
    """Pick a listed encoder or type an adapter as ``ADAPTER:PATH`` (a local checkpoint)."""
    custom = "Other (ADAPTER:PATH)…"
    opts = list(options) + [custom]
    idx = opts.index(current) if current in opts else len(opts) - 1
    choice = st.selectbox(label, opts, index=idx, key=f"{key}_select")
    if choice != custom:
        return choice
    typed = st.text_input(f"{label}: adapter and local checkpoint", value=current if current not in options else "",
                          placeholder="hubert-ecg:/models/hubert-ecg-small", key=f"{key}_custom")
    return typed.strip() or current


def encoder_pair(page: str) -> tuple[str, str]:
    """Old and new encoder pickers side by side (keys ``w_<page>_old``/``w_<page>_new``); stored in state."""
    options = encoder_options()
    c1, c2 = st.columns(2)
    with c1:
        old = encoder_picker("Old encoder (has the task)", key=f"w_{page}_old", current=state.get("old_encoder"),
                             options=options)
    with c2:
        new = encoder_picker("New encoder (the new signal)", key=f"w_{page}_new", current=state.get("new_encoder"),
                             options=options)
    state.update(old_encoder=old, new_encoder=new)
    return old, new


def need_dataset() -> str | None:
    """The active manifest path, or an info box linking to the Data page (returns None)."""
    path = state.get("manifest_path")
    if path:
        return str(path)
    st.info("No dataset is active yet. Choose the built-in demo or your own recordings on the Data page.",
            icon=":material/folder_open:")
    st.page_link("pages/data.py", label="Go to Data", icon=":material/monitor_heart:")
    return None


VERDICT_STYLE = {"go": (st.success, ":material/check_circle:", "Fit to go on"),
                 "caution": (st.warning, ":material/warning:", "Go on with care"),
                 "stop": (st.error, ":material/block:", "Not fit to go on")}


def show_verdict(verdict: Any, *, compact: bool = False) -> None:
    """A verdict box: level word, the plain sentence, then the deciding numbers."""
    fn, icon, word = VERDICT_STYLE.get(getattr(verdict, "level", "caution"), VERDICT_STYLE["caution"])
    text = f"**{word}: {verdict.headline}**"
    if verdict.detail and not compact:
        text += f"  \n{verdict.detail}"
    fn(text, icon=icon)


def runs_table(runs: Sequence[RunView]) -> None:
    """Compact table of runs with state, dataset, encoders, headline metric and progress."""
    rows = []
    for r in runs:
        enc = r.config.get("encoders") or {}
        prog = r.progress
        total = prog.get("total") or 0
        rows.append({
            "run": r.run_id,
            "state": f"{STATE_ICONS.get(r.state, '?')} {r.state}",
            "dataset": r.dataset if r.config else "",
            "old → new": f"{enc.get('old', '?')} → {enc.get('new', '?')}" if enc else "",
            "result": r.headline(),
            "progress": (prog.get("step", 0) / total) if total else None,
            "message": r.message,
            "updated": r.updated[:19].replace("T", " "),
        })
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})


def run_picker(label: str, *, key: str, states: Sequence[str] | None = None,
               where: Callable[[RunView], bool] | None = None) -> RunView | None:
    """Select one run from the store (optionally only some states / a filter); remembers the active run."""
    runs = [r for r in list_runs(state.run_root()) if (states is None or r.state in states)
            and (where is None or where(r))]
    if not runs:
        return None
    ids = [r.run_id for r in runs]
    active = state.get("active_run")
    chosen = st.selectbox(label, ids, index=ids.index(active) if active in ids else 0, key=key,
                          format_func=lambda i: next(r.label() for r in runs if r.run_id == i))
    state.put("active_run", chosen)
    return next(r for r in runs if r.run_id == chosen)


def guarded_section(title: str):
    """A subheader plus an error boundary for one section of a page."""
    st.subheader(title)
    return boundary(title)


def picker(col: Any, label: str, options: Sequence[str], default: Sequence[str], *, key: str, **kw: Any) -> list[str]:
    """A multiselect whose choice resets to ``default`` whenever its options change (another file, another
    encoder): a choice made for other channels never carries over silently."""
    sig = "\x1f".join(options)
    if st.session_state.get(f"_{key}_options") != sig or key not in st.session_state:
        st.session_state[key] = [d for d in default if d in options]
        st.session_state[f"_{key}_options"] = sig
    return col.multiselect(label, list(options), key=key, **kw)
