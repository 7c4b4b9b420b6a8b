"""Predict: run a trained bridge on a recording of the new signal alone."""

import numpy as np
import streamlit as st

from ui import actions, cache, datasets, plots, state
from ui.errors import boundary, engine
from ui.widgets import metric_cards, page_header, run_picker

page_header("Predict", "Upload a recording of the new signal only; the bridged old model labels each window.")

FILE_TYPES = ["edf", "bdf", "hea", "dat", "mat", "csv", "tsv", "parquet", "npz"]

with boundary("Predict"):
    run = run_picker("Trained bridge run", key="w_predict_run", states=("completed", "stopped"))
    if run is None:
        st.info("No trained bridge yet. Start one on the Train page.", icon=":material/info:")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()
    enc = run.config.get("encoders", {})
    st.caption(f"Bridge `{enc.get('new', '?')}` → `{enc.get('old', '?')}` · positions "
               f"{run.config.get('positions', {})}")
    up = st.file_uploader(f"New-signal recording (up to {datasets.MAX_UPLOAD_MB} MB)", type=FILE_TYPES,
                          key="w_predict_upload")
    if up is None:
        st.stop()
    path = datasets.save_upload(up.name, up.getvalue())
    rec = cache.load_recording(str(path), state.mtime(path))
    spec = cache.encoder_spec(enc.get("new", "builtin:ppg"))
    opts = [c for c, t in zip(rec.ch_names, rec.ch_types) if t == spec.modality] or list(rec.ch_names)
    c1, c2 = st.columns([2, 1])
    chans = c1.multiselect("Channels", opts, default=opts[: spec.n_chans or len(opts)], key="w_predict_channels")
    truth = c2.text_input("True label of the whole recording (optional)", key="w_predict_truth")
    request = {"run": run.run_id, "file": str(path), "channels": list(chans)}
    if chans and st.button("Predict", type="primary", key="w_predict_go"):
        state.put("predict_request", request)
    if state.get("predict_request") != request:
        st.stop()
    frame = actions.predict_file(run.path, path, channels=chans, device=state.device_arg())
    names = [c[2:] for c in frame.columns if c.startswith("p_")]
    proba = frame[[f"p_{n}" for n in names]].to_numpy()
    window_s = float((frame["end_s"] - frame["start_s"]).iloc[0]) if len(frame) else 0.0
    counts = frame["label"].value_counts()
    m1, m2, m3 = st.columns(3)
    m1.metric("Windows", len(frame))
    m2.metric("Most frequent class", str(counts.index[0]) if len(counts) else "—")
    m3.metric("Mean confidence", f"{proba.max(axis=1).mean():.2f}" if len(proba) else "—")
    if frame.attrs.get("dropped"):
        st.caption("Dropped windows: " + ", ".join(f"{k}: {v}" for k, v in frame.attrs["dropped"].items()))
    sig = rec.data[rec.ch_names.index(chans[0])]
    st.plotly_chart(plots.prediction_timeline(sig, rec.sfreq, frame["start_s"], window_s, proba, names,
                                              true_labels=[truth] * len(frame) if truth else None,
                                              signal_name=f"{chans[0]} · {rec.name}"), key="w_predict_timeline")
    if truth:
        if truth not in names:
            st.warning(f"'{truth}' is not one of the model's classes: {', '.join(names)}.")
        else:
            classification_metrics = engine("metrics", "classification_metrics", feature="Metrics")
            m = classification_metrics(np.full(len(proba), names.index(truth)), proba.argmax(axis=1), len(names))
            metric_cards(m)
            st.plotly_chart(plots.confusion_matrix(m["confusion"], names), key="w_predict_cm")
    st.dataframe(frame, hide_index=True, width="stretch", height=240)
    st.download_button("Download predictions (CSV)", frame.to_csv(index=False).encode(), key="w_predict_download",
                       file_name=f"{path.stem}_{run.run_id}_predictions.csv", mime="text/csv")
