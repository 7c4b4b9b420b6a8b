"""Data: choose paired recordings (demo, uploads or a server path), preview them, cut windows."""

from pathlib import Path

import streamlit as st

from bioxbridge_core import DEFAULT_SUBJECT_PATTERN
from ui import cache, datasets, plots, state
from ui.errors import boundary
from ui.widgets import encoder_pair, page_header

page_header("Data", "Paired recordings of the old and the new signal, recorded at the same time.")

SOURCES = {
    "demo": "Built-in demo",
    "upload-many": "Several files, each with both signals",
    "upload-one": "One file with both signals",
    "upload-two": "Two synchronised files",
    "upload-zip": "Manifest + zip of files",
    "server": "Folder or manifest on this server",
}
UPLOADS = ("upload-many", "upload-one", "upload-two")
#: where the labels of uploaded recordings come from (engine ``label_source`` -> shown text)
LABELS_MANY = {"filename": "File name (ending → label)", "annotations": "EDF annotations",
               "table": "Label CSV (file,label[,label_start,label_end])", "none": "None (unlabelled pairs)"}
LABELS_ONE = {"fixed": "Typed label", "annotations": "EDF annotations",
              "table": "Label CSV (file,label[,label_start,label_end])", "none": "None (unlabelled pairs)"}
FILE_TYPES = ["edf", "bdf", "hea", "dat", "mat", "csv", "tsv", "parquet", "npz"]
src_keys = list(SOURCES)
src = st.radio("Source", src_keys, format_func=SOURCES.get, horizontal=True, key="w_data_source",
               index=src_keys.index(state.get("data_source")) if state.get("data_source") in src_keys else 0)
state.put("data_source", src)
uploaded: list[Path] = []

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
        st.success(f"Demo **{kind}** is the active dataset.", icon=":material/check_circle:")
    elif src in UPLOADS:
        n = {"upload-one": 1, "upload-two": 2}.get(src)
        st.caption(f"Up to {datasets.MAX_UPLOAD_MB} MB per file. EDF/BDF, WFDB, CSV/TSV (with a time column), "
                   "Parquet or NPZ." + (" Each file is one recording holding both signals, e.g. EEG + ECG."
                                        if n is None else ""))
        ups = st.file_uploader("Recording files" if n is None else "Recording file(s)", type=FILE_TYPES,
                               accept_multiple_files=True, key=f"w_data_{src}")
        if ups and n and len(ups) != n:
            st.warning(f"Upload exactly {n} file(s); got {len(ups)}.")
        elif ups:
            uploaded = [datasets.save_upload(u.name, u.getvalue()) for u in ups]
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

recs: list = []
picks: dict[str, list[str]] = {}
if uploaded:  # uploads: encoders, channels, subjects and labels -> a manifest
    st.subheader("Signals, subjects and labels")
    with boundary("Uploads"):
        old_enc, new_enc = encoder_pair("data")
        old_spec, new_spec = cache.encoder_spec(old_enc), cache.encoder_spec(new_enc)
        shown = uploaded if src == "upload-two" else [uploaded[0]]
        if src == "upload-many" and len(uploaded) > 1:
            pick = st.selectbox("Preview recording", range(len(uploaded)), format_func=lambda i: uploaded[i].name,
                                key="w_data_preview_file")
            shown = [uploaded[pick]]
        recs = [cache.load_recording(str(p), state.mtime(p)) for p in shown]
        c1, c2 = st.columns(2)
        for col, side, spec in ((c1, "old", old_spec), (c2, "new", new_spec)):
            opts = [c for r in recs for c, t in zip(r.ch_names, r.ch_types) if t == spec.modality]
            opts = opts or [c for r in recs for c in r.ch_names]
            key = f"w_data_{side}_channels_{spec.modality.lower()}"  # another encoder: a fresh widget, new defaults
            picks[side] = col.multiselect(f"{side.capitalize()} signal ({spec.modality}) channels", opts,
                                          default=opts[: spec.n_chans or len(opts)], key=key)
        c1, c2 = st.columns(2)
        if src == "upload-many":
            pattern = c1.text_input("Subject from the file name (regular expression)", value=DEFAULT_SUBJECT_PATTERN,
                                    key="w_data_subject_pattern",
                                    help="Must match the whole name without extension; the group 'subject' (or "
                                         "the first group) is the subject. Default: the part before the last '_' "
                                         "(Subject00_1.edf → Subject00).")
            subject = ""
        else:
            subject = c1.text_input("Subject id", value=uploaded[0].stem, key="w_data_subject")
            pattern = DEFAULT_SUBJECT_PATTERN
        label_opts = LABELS_MANY if src == "upload-many" else LABELS_ONE
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
            up = st.file_uploader("Label CSV", type=["csv"], key="w_data_label_csv")
            kw["label_table"] = datasets.read_label_table(up.name, up.getvalue()) if up else None
        if src == "upload-many":
            st.dataframe(datasets.upload_plan([p.name for p in uploaded], subject_pattern=pattern,
                                              label_source=label_source, label_map=kw.get("label_map"),
                                              label_table=kw.get("label_table")),
                         hide_index=True, width="stretch", height=min(400, 38 + 35 * len(uploaded)))
        if st.button("Use these recordings", type="primary", key="w_data_use_upload"):
            common = dict(old_channels=picks["old"], new_channels=picks["new"], label_source=label_source, **kw)
            if src == "upload-many":
                built = datasets.manifest_for_uploads(uploaded, subject_pattern=pattern, **common)
            else:
                files = uploaded
                if src == "upload-two" and not set(picks["old"]) & set(recs[0].ch_names):
                    files = files[::-1]  # the old signal's file first
                built = datasets.manifest_for_files(files, subject=subject, **common)
            label = uploaded[0].name if len(uploaded) == 1 else f"{len(uploaded)} uploaded files"
            state.update(manifest_path=str(built.path), dataset_label=label,
                         data_notes={"manifest": str(built.path), "notes": list(built.notes)})
            st.rerun()

manifest_path = state.get("manifest_path")
if manifest_path:
    st.caption(f"Active manifest: `{manifest_path}`")
    notes = state.get("data_notes") or {}
    for note in notes.get("notes", []) if notes.get("manifest") == manifest_path else []:
        st.info(note, icon=":material/info:")

st.subheader("Preview")
with boundary("Preview"):
    old_spec = cache.encoder_spec(state.get("old_encoder"))
    new_spec = cache.encoder_spec(state.get("new_encoder"))
    if manifest_path:
        rows = datasets.manifest_rows(cache.load_manifest(manifest_path, state.mtime(manifest_path)))
        labels = sorted({r["label"] for r in rows if r.get("label")})
        with st.expander(f"Manifest: {len(rows)} recordings · {len({r['subject'] for r in rows})} subjects · "
                         f"labels {', '.join(labels) or '— (none)'}"):
            st.dataframe(rows, hide_index=True, width="stretch",
                         column_order=["subject", "old_file", "new_file", "label", "label_start", "label_end",
                                       "split", "old_channels", "new_channels"])
        if not recs:  # no uploads on screen: preview a manifest row with the manifest's channels
            names = [f"{r['subject']} · {Path(r['old_path']).name}" for r in rows]
            row = rows[st.selectbox("Recording", range(len(rows)), format_func=names.__getitem__,
                                    key="w_data_row")]
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
    c1, c2 = st.columns(2)
    win = c1.number_input("Window length (s)", 1.0, 120.0, float(state.get("window_s") or spec.window_s), step=1.0,
                          key="w_data_window_s", help="The encoders were trained on this length.")
    step = c2.number_input("Step (s)", 0.5, 120.0, float(state.get("step_s") or win), step=0.5, key="w_data_step_s",
                           help="Step = window length means no overlap.")
    state.update(window_s=float(win) if win != spec.window_s else None, step_s=float(step))
    if manifest_path and st.toggle("Cut windows and show the summary", value=True, key="w_data_cut"):
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
        if not summ["label_names"]:
            st.warning("No window has a label: the old task head (Models page) needs labelled windows in the "
                       "train split. Choose a label source above.", icon=":material/warning:")
        st.page_link("pages/models.py", label="Next: Models", icon=":material/arrow_forward:")
