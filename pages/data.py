"""Data: choose paired recordings (demo, uploads or a server path), preview them, cut windows."""

from pathlib import Path

import streamlit as st

from ui import cache, datasets, plots, state
from ui.errors import boundary
from ui.widgets import page_header

page_header("Data", "Paired recordings of the old and the new signal, recorded at the same time.")

SOURCES = {
    "demo": "Built-in demo",
    "upload-one": "One file with both signals",
    "upload-two": "Two synchronised files",
    "upload-zip": "Manifest + zip of files",
    "server": "Folder or manifest on this server",
}
FILE_TYPES = ["edf", "bdf", "hea", "dat", "mat", "csv", "tsv", "parquet", "npz"]
src_keys = list(SOURCES)
src = st.radio("Source", src_keys, format_func=SOURCES.get, horizontal=True, key="w_data_source",
               index=src_keys.index(state.get("data_source")) if state.get("data_source") in src_keys else 0)
state.put("data_source", src)
preview_files: list[Path] = []

with boundary("Dataset"):
    if src == "demo":
        kinds = list(state.DEMOS)
        kind = st.selectbox("Demo", kinds, format_func=lambda k: state.DEMOS[k][0], key="w_data_demo_kind",
                            index=kinds.index(state.get("demo_kind")) if state.get("demo_kind") in kinds else 0)
        with st.spinner("Preparing the demo (first time only)…"):
            path = datasets.demo_manifest(kind)
        _, old, new = state.DEMOS[kind]
        if state.get("manifest_path") != str(path):
            state.update(demo_kind=kind, manifest_path=str(path), dataset_label=f"demo {kind}", old_encoder=old,
                         new_encoder=new, window_s=None, step_s=None)
        st.success(f"Demo **{kind}** is the active dataset.", icon="✅")
    elif src in ("upload-one", "upload-two"):
        n = 1 if src == "upload-one" else 2
        st.caption(f"Up to {datasets.MAX_UPLOAD_MB} MB per file. EDF/BDF, WFDB, CSV/TSV (with a time column), "
                   "Parquet or NPZ.")
        ups = st.file_uploader("Recording file(s)", type=FILE_TYPES, accept_multiple_files=True, key=f"w_data_{src}")
        if ups and len(ups) != n:
            st.warning(f"Upload exactly {n} file(s); got {len(ups)}.")
        elif ups:
            preview_files = [datasets.save_upload(u.name, u.getvalue()) for u in ups]
    elif src == "upload-zip":
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
    else:
        typed = st.text_input("Manifest CSV path on this server", value=state.get("manifest_path") or "",
                              key="w_data_server_path", placeholder="/data/study/manifest.csv")
        if st.button("Use this manifest", type="primary", key="w_data_use_server") and typed.strip():
            p = Path(typed.strip()).expanduser()
            cache.load_manifest(str(p), state.mtime(p))
            state.update(manifest_path=str(p), dataset_label=p.name)
            st.rerun()

manifest_path = state.get("manifest_path")
if manifest_path:
    st.caption(f"Active manifest: `{manifest_path}`")

st.subheader("Preview")
with boundary("Preview"):
    old_spec = cache.encoder_spec(state.get("old_encoder"))
    new_spec = cache.encoder_spec(state.get("new_encoder"))
    picks: dict[str, list[str]] = {}
    if preview_files:  # uploads: choose the channels of each side here
        recs = [cache.load_recording(str(p), state.mtime(p)) for p in preview_files]
        c1, c2 = st.columns(2)
        for col, side, spec in ((c1, "old", old_spec), (c2, "new", new_spec)):
            opts = [c for r in recs for c, t in zip(r.ch_names, r.ch_types) if t == spec.modality]
            opts = opts or [c for r in recs for c in r.ch_names]
            picks[side] = col.multiselect(f"{side.capitalize()} signal ({spec.modality}) channels", opts,
                                          default=opts[: spec.n_chans or len(opts)], key=f"w_data_{side}_channels")
        c1, c2 = st.columns(2)
        subject = c1.text_input("Subject id", value=preview_files[0].stem, key="w_data_subject")
        label = c2.text_input("Label of this recording (optional)", key="w_data_label")
        if st.button("Use these recordings", type="primary", key="w_data_use_upload"):
            order = sorted(range(len(recs)), key=lambda i: not set(picks["old"]) & set(recs[i].ch_names))
            path = datasets.manifest_for_files([preview_files[i] for i in order], subject=subject,
                                               old_channels=picks["old"], new_channels=picks["new"], label=label)
            state.update(manifest_path=str(path), dataset_label=", ".join(p.name for p in preview_files))
            st.rerun()
    elif manifest_path:  # a manifest: preview its first recording with the manifest's channels
        rows = datasets.manifest_rows(cache.load_manifest(manifest_path, state.mtime(manifest_path)))
        with st.expander(f"Manifest: {len(rows)} recordings"):
            st.dataframe(rows, hide_index=True, width="stretch")
        names = [f"{r['subject']} · {Path(r['old_path']).name}" for r in rows]
        row = rows[st.selectbox("Recording", range(len(rows)), format_func=names.__getitem__, key="w_data_row")]
        recs = [cache.load_recording(row["old_path"], state.mtime(row["old_path"]))]
        if row["new_path"] != row["old_path"]:
            recs.append(cache.load_recording(row["new_path"], state.mtime(row["new_path"])))
        picks = {"old": list(row["old_channels"]), "new": list(row["new_channels"])}
    if not picks:
        st.caption("Nothing to preview yet.")
    else:
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

st.subheader("Windows")
with boundary("Windows"):
    spec = cache.encoder_spec(state.get("old_encoder"))
    c1, c2, c3 = st.columns(3)
    win = c1.number_input("Window length (s)", 1.0, 120.0, float(state.get("window_s") or spec.window_s), step=1.0,
                          key="w_data_window_s", help="The encoders were trained on this length.")
    step = c2.number_input("Step (s)", 0.5, 120.0, float(state.get("step_s") or win), step=0.5, key="w_data_step_s",
                           help="Step = window length means no overlap.")
    c3.selectbox("Label source", ["manifest label column", "none (unlabelled pairs)"], key="w_data_label_source")
    state.update(window_s=float(win) if win != spec.window_s else None, step_s=float(step))
    if manifest_path and st.toggle("Cut windows and show the summary", value=True, key="w_data_cut"):
        s = state.data_settings()
        pw = cache.get_paired_windows(s["manifest_path"], state.mtime(s["manifest_path"]), s["old_encoder"],
                                      s["new_encoder"], s["window_s"], s["step_s"])
        summ = pw.summary()
        m1, m2, m3 = st.columns(3)
        m1.metric("Windows", summ["n_windows"])
        m2.metric("Classes", len(summ["label_names"]))
        m3.metric("Dropped", sum(summ["dropped"].values()))
        st.dataframe(pw.counts(), width="stretch")
        if summ["dropped"]:
            st.caption("Dropped windows: " + ", ".join(f"{k}: {v}" for k, v in summ["dropped"].items()))
        st.page_link("pages/models.py", label="Next: Models", icon=":material/arrow_forward:")
