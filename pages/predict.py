"""Predict: run a trained bridge on recordings of the new signal alone."""

import numpy as np
import pandas as pd
import streamlit as st

from ui import actions, cache, datasets, plots, state
from ui.data_forms import FILE_TYPES, show_batch_messages
from ui.errors import boundary, engine
from ui.widgets import metric_cards, page_header, picker, run_picker, show_verdict

page_header("Predict", "Upload recordings of the new signal only; the bridged old model labels each window.")


def held_out_panel(run) -> None:
    """What this bridge scored on held-out subjects, next to every prediction it makes."""
    b = run.bridge_metrics
    test, oracle = b.get("test") or {}, (run.metrics.get("oracle") or {}).get("test") or {}
    chance = (run.metrics.get("chance") or {}).get("test") or {}
    c = st.columns(4)
    for col, name, m in ((c[0], "Bridge, held-out test", test), (c[1], "Old model on the old signal", oracle),
                         (c[2], "Chance", chance)):
        if isinstance(m.get("balanced_accuracy"), (int, float)):
            col.metric(name, f"{m['balanced_accuracy']:.3f}", help="Balanced accuracy on the test subjects.")
    cal = b.get("confidence_calibration") or {}
    if cal.get("temperature"):
        c[3].metric("Calibration T", f"{cal['temperature']:.2f}", help=f"Fitted on {cal.get('n', '?')} "
                    "pair-validation windows against the old model's own predictions (no labels).")
    if not test:
        st.caption("This run has no labelled test split, so no held-out score: treat its predictions as untested.")
    if b.get("stopped"):
        st.caption(f"Stopped early: the best epoch so far ({b.get('best_epoch')}) was kept and evaluated.")
    with boundary("Bridge verdict"):
        show_verdict(actions.bridge_verdict(run), compact=True)
        if (warning := actions.confidence_warning(run)) is not None:
            st.warning(warning, icon=":material/warning:")


def confidence_note(run, attrs: dict) -> str:
    cal = attrs.get("confidence_calibration") or {}
    conf = (run.bridge_metrics.get("test_confidence") or {}).get("calibrated") or {}
    if not cal:
        return ("Confidence is the bridged model's raw softmax, **not calibrated** (an older run): it is usually "
                "far too sure of itself.")
    text = (f"Confidence is calibrated (temperature scaling, T = {cal['temperature']:.2f}, fitted on "
            f"{cal.get('n', '?')} held-out pairs): it estimates how often the old model, given the old signal, "
            "would say the same. It does not include the old model's own errors — see its held-out score above.")
    if isinstance(conf.get("mean_right"), (int, float)) and isinstance(conf.get("mean_wrong"), (int, float)):
        text += (f" On the test subjects it averaged {conf['mean_right']:.2f} on right and "
                 f"{conf['mean_wrong']:.2f} on wrong predictions.")
    return text


with boundary("Predict"):
    run = run_picker("Trained bridge run", key="w_predict_run", where=lambda r: r.has_bundle and not r.is_active)
    if run is None:
        st.info("No usable bridge yet: finish (or stop after at least one epoch) a run on the Train page.",
                icon=":material/info:")
        st.page_link("pages/train.py", label="Go to Train", icon=":material/model_training:")
        st.stop()
    enc = run.config.get("encoders", {})
    pos = run.config.get("positions") or {}
    st.caption(f"Bridge `{enc.get('new', '?')}` **{pos.get('read', '?')}** → `{enc.get('old', '?')}` "
               f"**{pos.get('write', '?')}** · trained on {run.dataset}")
    held_out_panel(run)
    calibration = actions.run_calibration(run.path)
    if calibration == "subject":
        st.info(f"This bridge uses **per-subject calibration**: each uploaded recording is standardised with its "
                f"own windows (one recording = one person), so a recording needs several windows — at least "
                f"{actions.calibration_min_windows()}, better many — and should span more than one state: its "
                "predictions describe each window relative to the rest of the recording.", icon=":material/tune:")
    ups = st.file_uploader(f"New-signal recording(s) (up to {datasets.MAX_UPLOAD_MB} MB per file; a WFDB .hea "
                           "with its .dat, several records, or a zip)", type=FILE_TYPES, accept_multiple_files=True,
                           key="w_predict_upload")
    if not ups:
        st.stop()
    batch = datasets.save_upload_batch([(u.name, u.getvalue()) for u in ups])
    show_batch_messages(batch)
    records = batch.records
    if not records:
        st.stop()
    pick = 0
    if len(records) > 1:
        pick = st.selectbox("Recording", range(len(records)), format_func=lambda i: records[i].name,
                            key="w_predict_record")
    path = records[pick]
    rec = cache.load_recording(str(path), state.mtime(path))
    spec = cache.encoder_spec(enc.get("new", "builtin:ppg"))
    opts = list(dict.fromkeys(c for c, t in zip(rec.ch_names, rec.ch_types) if t == spec.modality))
    c1, c2 = st.columns([2, 1])
    if not opts:
        c1.warning(f"No {spec.modality} channel in {rec.name} (channels: {', '.join(rec.ch_names)}). This bridge "
                   f"reads {spec.modality}; pick channels by name only if you know they hold it.",
                   icon=":material/block:")
        if c1.checkbox("Pick channels by name", key="w_predict_by_name"):
            opts = list(rec.ch_names)
        default = []
    else:
        default = opts[: spec.n_chans or len(opts)]
    chans = picker(c1, "Channels", opts, default, key="w_predict_channels")
    truth = c2.text_input("True label of the whole recording (optional)", key="w_predict_truth")
    request = {"run": run.run_id, "files": [str(p) for p in records], "channels": list(chans)}
    if chans and st.button("Predict" if len(records) == 1 else f"Predict all {len(records)} recordings",
                           type="primary", key="w_predict_go"):
        state.put("predict_request", request)
    if state.get("predict_request") != request:
        st.stop()
    frames = {p.name: actions.predict_file(run.path, p, channels=chans, device=state.device_arg()) for p in records}
    if len(records) > 1:
        st.dataframe(actions.prediction_summary(frames), hide_index=True, width="stretch", key="w_predict_summary")
    short = actions.too_short_for_calibration(frames, calibration)
    if short:
        st.warning("Too few windows for per-subject calibration (needs "
                   f"{actions.calibration_min_windows()}): " + ", ".join(f"{n} ({k})" for n, k in short.items())
                   + ". Their features were not standardised, unlike everything the bridge was trained on: treat "
                   "these predictions with care.", icon=":material/warning:")
    frame = frames[path.name]
    names = [c[2:] for c in frame.columns if c.startswith("p_")]
    proba = frame[[f"p_{n}" for n in names]].to_numpy()
    window_s = float((frame["end_s"] - frame["start_s"]).iloc[0]) if len(frame) else 0.0
    counts = frame["label"].value_counts()
    m1, m2, m3 = st.columns(3)
    m1.metric("Windows", len(frame))
    m2.metric("Most frequent class", str(counts.index[0]) if len(counts) else "—")
    m3.metric("Mean confidence", f"{proba.max(axis=1).mean():.2f}" if len(proba) else "—",
              help="Calibrated probability of the predicted class, averaged over windows.")
    st.info(confidence_note(run, frame.attrs), icon=":material/info:")
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
    table = pd.concat([f.assign(recording=n) for n, f in frames.items()], ignore_index=True)
    st.download_button("Download predictions (CSV)", table.to_csv(index=False).encode(), key="w_predict_download",
                       file_name=f"{path.stem if len(records) == 1 else 'recordings'}_{run.run_id}_predictions.csv",
                       mime="text/csv")
