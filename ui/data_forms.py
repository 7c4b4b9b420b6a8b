"""The Data page's forms: where the recordings come from, their signals/subjects/labels, the windows.

Each function draws one section and returns what the next needs; every computation is an
engine call (through ``ui.datasets`` / ``ui.cache``). Browser-facing text never holds a server
path: uploads are named by file name, server data by ``<root name>/<relative path>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import streamlit as st

from . import cache, datasets, state
from .errors import redact
from .server_data import RECIPES, configured_roots, detect_recipe, list_entries, resolve_inside, root_named
from .widgets import encoder_pair, picker, show_verdict

#: what every uploader takes: recordings, WFDB headers with their signal files, zips of folders
FILE_TYPES = ["edf", "bdf", "hea", "dat", "mat", "csv", "tsv", "txt", "parquet", "npz", "zip"]
LABELS_MANY = {"filename": "File name (ending → label)", "annotations": "EDF annotations",
               "table": "Label table (CSV)", "none": "None (unlabelled pairs)"}
LABELS_ONE = {"fixed": "Typed label", "annotations": "EDF annotations",
              "table": "Label table (CSV)", "none": "None (unlabelled pairs)"}


# -- sources -------------------------------------------------------------------------------------------------
def demo_source() -> None:
    kinds = list(state.DEMOS)
    kind = st.selectbox("Demo", kinds, format_func=lambda k: state.DEMOS[k][0], key="w_data_demo_kind",
                        index=kinds.index(state.get("demo_kind")) if state.get("demo_kind") in kinds else 0)
    with st.spinner("Preparing the demo (first time only)…"):
        path = datasets.demo_manifest(kind)
    _, old, new = state.DEMOS[kind]
    if state.get("manifest_path") != str(path):
        state.clear_dataset()
        state.update(demo_kind=kind, manifest_path=str(path), dataset_label=f"demo {kind}", old_encoder=old,
                     new_encoder=new)
    st.success(f"Demo **{kind}** is the active dataset.", icon=":material/check_circle:")


def upload_source(src: str) -> list[Path]:
    """Uploaded files (several at once, WFDB .hea + .dat together, or a zip) -> one path per recording."""
    n = {"upload-one": 1, "upload-two": 2}.get(src)
    st.caption(f"Up to {datasets.MAX_UPLOAD_MB} MB per file. EDF/BDF, WFDB (select the .hea together with its "
               ".dat/.mat), CSV/TSV (with a time column), Parquet, NPZ, or a zip of a folder of these."
               + (" Each recording holds both signals, e.g. EEG + ECG." if n is None else ""))
    ups = st.file_uploader("Recording files" if n is None else "Recording file(s)", type=FILE_TYPES,
                           accept_multiple_files=True, key=f"w_data_{src}")
    if not ups:
        return []
    batch = datasets.save_upload_batch([(u.name, u.getvalue()) for u in ups])
    show_batch_messages(batch)
    recordings = batch.records
    if not recordings:
        return []
    if n and len(recordings) != n:
        st.warning(f"Upload exactly {n} recording(s); got {len(recordings)}: "
                   f"{', '.join(p.name for p in recordings)}.")
        return []
    if len(recordings) != len(ups):
        st.caption(f"{len(ups)} file(s) → {len(recordings)} recording(s): "
                   + ", ".join(p.name for p in recordings[:12]) + (" …" if len(recordings) > 12 else ""))
    return recordings


def show_batch_messages(batch: Any) -> None:
    """Refused files (one line each, by uploaded name) and files left out on purpose."""
    for msg in batch.errors:
        st.error(redact(msg), icon=":material/warning:")
    for note in batch.notes:
        st.caption(f":material/info: {redact(note)}")


def zip_source() -> None:
    st.caption("A manifest CSV plus a zip whose paths match the manifest's file column.")
    man = st.file_uploader("Manifest (CSV)", type=["csv"], key="w_data_manifest_upload")
    zipped = st.file_uploader("Recordings (zip)", type=["zip"], key="w_data_zip_upload")
    if man and zipped and st.button("Use this dataset", type="primary", key="w_data_use_zip"):
        folder = datasets.extract_zip(zipped.name, zipped.getvalue())
        path = folder / Path(man.name).name
        path.write_bytes(man.getvalue())
        cache.load_manifest(str(path), state.mtime(path))  # validate now: errors show here
        state.update(manifest_path=str(path), dataset_label=man.name)
        st.rerun()


def server_source() -> list[Path]:
    """A folder or manifest under one of the configured data roots; returns recordings to configure
    when the folder matches no recipe (a manifest is then built from the file names)."""
    roots = configured_roots()
    if not roots:
        st.info("This Studio offers no data folders on the server (see `studio.toml`).", icon=":material/info:")
        return []
    c1, c2 = st.columns([1, 2])
    root = root_named(c1.selectbox("Data folder", [r.name for r in roots], key="w_data_server_root"), roots)
    entries = list_entries(root)
    listed = c2.selectbox("Folder or manifest", [""] + entries, key="w_data_server_entry",
                          format_func=lambda e: e or "— choose —")
    typed = st.text_input(f"…or a path inside '{root.name}'", key="w_data_server_path",
                          placeholder="eegmat/ or study/manifest.csv",
                          help="Relative to the data folder; nothing outside the configured folders is read.")
    choice = (typed or listed or "").strip()
    if not choice:
        return []
    target = resolve_inside(root, choice)
    shown = root.display(target)
    if target.is_file():
        if target.suffix.lower() != ".csv":
            st.warning(f"{shown} is a single file; choose its folder or a manifest CSV.")
            return []
        if st.button("Use this manifest", type="primary", key="w_data_use_server"):
            datasets.server_manifest(target, roots)
            state.update(manifest_path=str(target), dataset_label=shown)
            st.rerun()
        return []
    recipe = detect_recipe(target)
    if recipe is not None:
        desc, _, sides = RECIPES[recipe]
        st.caption(f"**{shown}** looks like {desc}: its recipe builds the manifest (subjects, labels, channels).")
        old_side = st.selectbox("Old signal (has the labels' model)", sides, key="w_data_recipe_old")
        if st.button("Use this folder", type="primary", key="w_data_use_server"):
            path = datasets.manifest_from_recipe(recipe, target, old_side)
            datasets.server_manifest(path, roots)
            encoders = datasets.RECIPE_ENCODERS.get((recipe, old_side))
            state.update(manifest_path=str(path), dataset_label=f"{shown} ({recipe})")
            if encoders:
                state.update(old_encoder=encoders[0], new_encoder=encoders[1])
            st.rerun()
        return []
    recordings = datasets.group_recordings(target, recursive=False)
    st.caption(f"**{shown}**: {len(recordings)} recording(s); no known recipe, so the manifest is built from "
               "the file names below.")
    return recordings


# -- signals, subjects, labels -------------------------------------------------------------------------------
def channel_picker(col: Any, side: str, spec: Any, recs: Sequence[Any]) -> list[str]:
    """Channels of the encoder's modality; none found -> an empty picker and a message, never a substitute."""
    typed = [c for r in recs for c, t in zip(r.ch_names, r.ch_types) if t == spec.modality]
    opts = list(dict.fromkeys(typed))
    key = f"w_data_{side}_channels_{spec.modality.lower()}"  # another encoder: a fresh widget, new defaults
    if not opts:
        names = ", ".join(dict.fromkeys(c for r in recs for c in r.ch_names))
        col.warning(f"No {spec.modality} channel found in {', '.join(r.name for r in recs)} (channels: {names}). "
                    f"Choose a {side} encoder for a signal these recordings hold, or pick channels by name.",
                    icon=":material/block:")
        if col.checkbox("Pick channels by name", key=f"w_data_{side}_by_name"):
            opts = list(dict.fromkeys(c for r in recs for c in r.ch_names))
        default: list[str] = []
    else:
        default = opts[: spec.n_chans or len(opts)]
    return picker(col, f"{side.capitalize()} signal ({spec.modality}) channels", opts, default, key=key)


def label_table_widget(key: str = "w_data_label_csv") -> Any:
    """A label table upload with its columns mapped (PhysioNet alarms.csv recognised)."""
    up = st.file_uploader("Label table (CSV)", type=["csv"], key=key)
    if not up:
        return None
    data = up.getvalue()
    cols = datasets.table_columns(up.name, data)
    known = datasets.known_table(cols)
    if {"file", "label"} <= set(cols):
        return datasets.read_label_table(up.name, data)
    lower = {c.lower(): c for c in cols}
    file_default = lower.get(known[0]) if known else None
    label_default = lower.get(known[1]) if known else None
    if known:
        st.caption(f"Recognised: {known[3]}.")
    c1, c2, c3 = st.columns(3)
    fcol = c1.selectbox("File column", cols, index=cols.index(file_default) if file_default in cols else 0,
                        key=f"{key}_file_col")
    lcol = c2.selectbox("Label column", cols, index=cols.index(label_default) if label_default in cols else
                        min(1, len(cols) - 1), key=f"{key}_label_col")
    default_values = ", ".join(f"{k}={v}" for k, v in known[2].items()) if known else ""
    values = c3.text_input("Rename labels (optional)", value=default_values, key=f"{key}_values",
                           help="VALUE=LABEL pairs, e.g. 1=true_alarm, 0=false_alarm.")
    span = None
    if st.checkbox("Label only a span of each file", key=f"{key}_use_span",
                   help="e.g. the 16 s before a CinC alarm: 284-300 s (the rest stays unlabelled pair data)."):
        s1, s2 = st.columns(2)
        span = (s1.number_input("from (s)", 0.0, 1e6, 284.0, key=f"{key}_span_start"),
                s2.number_input("to (s)", 0.0, 1e6, 300.0, key=f"{key}_span_end"))
    return datasets.read_label_table(up.name, data, columns={"file": fcol, "label": lcol},
                                     values=datasets.parse_label_map(values), span=span)


def recordings_form(recordings: list[Path], src: str) -> tuple[list[Any], dict[str, list[str]]]:
    """Encoders, channels per side, subjects and labels for ``recordings``; builds the manifest on request.

    Returns the recordings shown and the channels picked (for the preview).
    """
    from bioxbridge_core import DEFAULT_SUBJECT_PATTERN

    st.subheader("Signals, subjects and labels")
    many = src not in ("upload-one", "upload-two")
    old_enc, new_enc = encoder_pair("data")
    old_spec, new_spec = cache.encoder_spec(old_enc), cache.encoder_spec(new_enc)
    shown = recordings if src == "upload-two" else [recordings[0]]
    if many and len(recordings) > 1:
        pick = st.selectbox("Preview recording", range(len(recordings)), format_func=lambda i: recordings[i].name,
                            key="w_data_preview_file")
        shown = [recordings[pick]]
    recs = [cache.load_recording(str(p), state.mtime(p)) for p in shown]
    c1, c2 = st.columns(2)
    picks = {"old": channel_picker(c1, "old", old_spec, recs), "new": channel_picker(c2, "new", new_spec, recs)}
    c1, c2 = st.columns(2)
    if many:
        pattern = c1.text_input("Subject from the file name (regular expression)", value=DEFAULT_SUBJECT_PATTERN,
                                key="w_data_subject_pattern",
                                help="Must match the whole name without extension; the group 'subject' (or the "
                                     "first group) is the subject. Default: the part before the last '_' "
                                     "(Subject00_1.edf → Subject00).")
        subject = ""
    else:
        subject = c1.text_input("Subject id", value=recordings[0].stem, key="w_data_subject")
        pattern = DEFAULT_SUBJECT_PATTERN
    label_opts = LABELS_MANY if many else LABELS_ONE
    label_source = c2.selectbox("Label source", list(label_opts), format_func=label_opts.get,
                                key="w_data_label_source")
    kw: dict = {}
    if label_source == "filename":
        text = st.text_input("File-name endings → labels", value="_1=rest, _2=task", key="w_data_label_map",
                             help="ENDING=LABEL pairs separated by commas; files matching none stay unlabelled.")
        kw["label_map"] = datasets.parse_label_map(text)
    elif label_source == "fixed":
        kw["label"] = st.text_input("Label of this recording (optional)", key="w_data_label")
    elif label_source == "annotations":
        text = st.text_input("Annotation → label (optional)", key="w_data_annotation_map",
                             placeholder="T1=rest, T2=task",
                             help="Blank: every annotation with a duration labels its span with its text. "
                                  "Otherwise only the listed annotations count, renamed.")
        kw["annotation_map"] = datasets.parse_label_map(text)
    elif label_source == "table":
        kw["label_table"] = label_table_widget()
    if many:
        st.dataframe(datasets.upload_plan([p.name for p in recordings], subject_pattern=pattern,
                                          label_source=label_source, label_map=kw.get("label_map"),
                                          label_table=kw.get("label_table")),
                     hide_index=True, width="stretch", height=min(400, 38 + 35 * len(recordings)))
    ready = bool(picks["old"] and picks["new"])
    if st.button("Use these recordings", type="primary", key="w_data_use_upload", disabled=not ready):
        common = dict(old_channels=picks["old"], new_channels=picks["new"], label_source=label_source, **kw)
        if many:
            built = datasets.manifest_for_uploads(recordings, subject_pattern=pattern, **common)
        else:
            files = recordings
            if src == "upload-two" and not set(picks["old"]) & set(recs[0].ch_names):
                files = files[::-1]  # the old signal's file first
            built = datasets.manifest_for_files(files, subject=subject, **common)
        label = recordings[0].name if len(recordings) == 1 else f"{len(recordings)} recordings"
        if src == "server":
            label = f"{recordings[0].parent.name}/ ({len(recordings)} recordings)"
        state.update(manifest_path=str(built.path), dataset_label=label,
                     data_notes={"manifest": str(built.path), "notes": list(built.notes)})
        st.rerun()
    return recs, picks


# -- windows -------------------------------------------------------------------------------------------------
def windows_section(manifest_path: str | None) -> None:
    from .actions import labels_verdict

    spec = cache.encoder_spec(state.get("old_encoder"))
    new_spec = cache.encoder_spec(state.get("new_encoder"))
    lo = max(spec.window_range[0], new_spec.window_range[0])
    hi = min(spec.window_range[1], new_spec.window_range[1])
    c1, c2 = st.columns(2)
    fixed = hi <= lo
    value = min(max(float(state.get("window_s") or spec.window_s), lo), max(lo, hi))
    win = c1.number_input("Window length (s)", float(lo), float(max(lo, hi)), value, step=1.0, key="w_data_window_s",
                          disabled=fixed, help=f"Both encoders take {lo:g} s windows." if fixed else
                          f"Both encoders accept {lo:g}–{hi:g} s (they were trained on {spec.window_s:g} s).")
    step = c2.number_input("Step (s)", 0.5, 120.0, float(state.get("step_s") or win), step=0.5, key="w_data_step_s",
                           help="Step = window length means no overlap.")
    state.update(window_s=float(win) if win != spec.window_s else None, step_s=float(step))
    if not manifest_path or not st.toggle("Cut windows and show the summary", value=True, key="w_data_cut"):
        return
    s = state.data_settings()
    pw = cache.get_paired_windows(s["manifest_path"], state.mtime(s["manifest_path"]), s["old_encoder"],
                                  s["new_encoder"], s["window_s"], s["step_s"])
    summ = pw.summary()
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Windows", summ["n_windows"])
    m2.metric("Labelled", int(pw.meta["label"].notna().sum()))
    m3.metric("Classes", len(summ["label_names"]))
    m4.metric("Dropped", sum(summ["dropped"].values()))
    st.dataframe(pw.counts(), width="stretch")
    if summ["dropped"]:
        st.caption("Dropped windows: " + ", ".join(f"{k}: {v}" for k, v in summ["dropped"].items()))
    show_verdict(labels_verdict(s))
    st.page_link("pages/models.py", label="Next: Models", icon=":material/arrow_forward:")


def preview_section(manifest_path: str | None, recs: list[Any], picks: dict[str, list[str]]) -> None:
    """Manifest table and an aligned plot of both signals (uploads on screen, else a manifest row)."""
    from . import plots

    old_spec = cache.encoder_spec(state.get("old_encoder"))
    new_spec = cache.encoder_spec(state.get("new_encoder"))
    if manifest_path:
        rows = datasets.manifest_rows(cache.load_manifest(manifest_path, state.mtime(manifest_path)))
        labels = sorted({r["label"] for r in rows if r.get("label")})
        with st.expander(f"Manifest: {len(rows)} recordings · {len({r['subject'] for r in rows})} subjects · "
                         f"labels {', '.join(labels) or '— (none)'}"):
            st.dataframe([{k: (Path(str(v)).name if k in ("old_file", "new_file") else v) for k, v in r.items()}
                          for r in rows], hide_index=True, width="stretch",
                         column_order=["subject", "old_file", "new_file", "label", "label_start", "label_end",
                                       "split", "old_channels", "new_channels"])
        if not recs:  # no uploads on screen: preview a manifest row with the manifest's channels
            names = [f"{r['subject']} · {Path(r['old_path']).name}" for r in rows]
            row = rows[st.selectbox("Recording", range(len(rows)), format_func=names.__getitem__, key="w_data_row")]
            # each side reads only its own channels, as windowing does: a one-file row (a PSG) may hold the
            # two sides at different sampling rates, which no single read can return
            old_ch, new_ch = tuple(row["old_channels"] or ()), tuple(row["new_channels"] or ())
            recs = [cache.load_recording(row["old_path"], state.mtime(row["old_path"]), old_ch or None)]
            if row["new_path"] != row["old_path"] or new_ch != old_ch:
                recs.append(cache.load_recording(row["new_path"], state.mtime(row["new_path"]), new_ch or None))
            picks = {"old": list(old_ch), "new": list(new_ch)}
    if not picks or not (picks.get("old") or picks.get("new")):
        st.caption("Nothing to preview yet.")
        return
    c1, c2 = st.columns(2)
    for col, side, spec in ((c1, "old", old_spec), (c2, "new", new_spec)):
        rates = sorted({f"{r.sfreq:g} Hz" for r in recs for c in picks[side] if c in r.ch_names})
        col.caption(f"**{side.capitalize()}** `{state.get(side + '_encoder')}` · channels "
                    f"{', '.join(picks[side]) or '—'} · recorded at {', '.join(rates) or '—'}, "
                    f"resampled to {spec.sfreq:g} Hz")
    dur = min(r.duration_s for r in recs)
    t0, t1 = st.slider("Time range (s)", 0.0, float(dur), (0.0, float(min(dur, 30.0))), key="w_data_range")
    sigs = [(f"{c} ({side})", r.data[r.ch_names.index(c), int(t0 * r.sfreq):int(t1 * r.sfreq)], r.sfreq)
            for side in ("old", "new") for c in picks[side] for r in recs if c in r.ch_names]
    st.plotly_chart(plots.aligned_signals(sigs[:8], t0_s=t0), key="w_data_preview_plot")


def notes_section(manifest_path: str | None) -> None:
    if not manifest_path:
        return
    st.caption(f"Active dataset: **{state.get('dataset_label') or Path(manifest_path).name}**")
    notes = state.get("data_notes") or {}
    for note in notes.get("notes", []) if notes.get("manifest") == manifest_path else []:
        st.info(redact(note), icon=":material/info:")


__all__ = ["FILE_TYPES", "demo_source", "notes_section", "preview_section", "recordings_form",
           "server_source", "upload_source", "windows_section", "zip_source"]
