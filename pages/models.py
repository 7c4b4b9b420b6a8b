"""Models: choose the old and new encoders, train the old model's task head, show its metrics."""

import streamlit as st

from ui import actions, cache, plots, state
from ui.errors import boundary
from ui.widgets import encoder_pair, metric_cards, need_dataset, page_header, progress_callback

page_header("Models", "The old model (with a task head) and the new model the bridge will feed from.")

with boundary("Encoders"):
    old, new = encoder_pair("models")
    specs = (cache.encoder_spec(old), cache.encoder_spec(new))
    if state.get("manifest_path"):  # channel-agnostic encoders take the active dataset's channels
        try:
            mp = state.get("manifest_path")
            specs = cache.specs_for_manifest(cache.load_manifest(mp, state.mtime(mp)), old, new)
        except Exception:  # noqa: BLE001 - a broken manifest is reported on the Data page
            pass
    c1, c2 = st.columns(2)
    for col, spec in zip((c1, c2), specs):
        col.caption(f"{spec.modality} · {spec.sfreq:g} Hz · {spec.window_s:g} s windows · "
                    f"{spec.n_chans or 'any number of'} channel(s) · {spec.normalisation}")
    with st.expander("All available encoders"):
        st.dataframe(cache.list_encoders(), hide_index=True, width="stretch",
                     column_order=["name", "kind", "modality", "sampling_rate", "window_s", "params", "available",
                                   "description"])
    st.caption("Adapters load a local checkpoint: type `ADAPTER:PATH`, e.g. `hubert-ecg:/models/hubert-ecg-small`.")

manifest_path = need_dataset()
if manifest_path:
    st.subheader("Old task head")
    st.caption("Mean-pooled last-layer tokens of the frozen old encoder → one linear layer, trained on the "
               "labelled *train* split (class-balanced). Its predictions become the pseudo labels of the pairs.")
    with boundary("Task head"):
        settings = state.data_settings()
        report = actions.head_report(settings)
        label = "Retrain the task head" if report else "Train the task head"
        if st.button(label, type="secondary" if report else "primary", key="w_models_train_head"):
            report = actions.train_old_head(settings, device=state.device_arg(),
                                            on_progress=progress_callback("Training the task head…"))
            st.success("Task head trained and saved.", icon=":material/check_circle:")
        if report is None:
            st.info("No task head for this dataset and old encoder yet.", icon=":material/info:")
        else:
            splits = report.get("splits", {})
            tabs = st.tabs([f"{s} (n={v.get('n', '?')})" for s, v in splits.items()] or ["—"])
            for tab, (split, m) in zip(tabs, splits.items()):
                with tab:
                    metric_cards(m)
                    if m.get("confusion"):
                        st.plotly_chart(plots.confusion_matrix(m["confusion"], report["label_names"],
                                                               title=f"Old model on {split}"),
                                        key=f"w_models_cm_{split}")
            st.page_link("pages/alignment.py", label="Next: Alignment", icon=":material/arrow_forward:")
