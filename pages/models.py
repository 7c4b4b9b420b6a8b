"""Models: choose the old and new encoders, train the old model's task head, show its metrics."""

import streamlit as st

from ui import actions, cache, plots, state
from ui.errors import boundary
from ui.widgets import encoder_pair, metric_cards, need_dataset, page_header, progress_callback, show_verdict



def assessment_section(settings: dict, assessment: dict | None) -> None:
    """Subject-grouped CV of the old model on train beside hand-crafted features on the same folds."""
    st.markdown("**Is the old model better than simple features?**")
    if st.button("Assess with subject-grouped cross-validation", key="w_models_assess",
                 help="The old model and a hand-crafted-feature logistic regression, on the same folds of the "
                      "train subjects."):
        actions.assess_old_model(settings, device=state.device_arg(),
                                 on_progress=progress_callback("Cross-validating…"))
        st.rerun()  # the verdict above now uses the cross-validated score
    if not assessment:
        return
    c1, c2, c3 = st.columns(3)
    for col, name, m in ((c1, "Old model (CV)", assessment.get("old_model")),
                         (c2, "Hand-crafted features (CV)", assessment.get("handcrafted"))):
        mean, sd = actions.cv_score(m)
        if isinstance(mean, (int, float)):
            col.metric(name, f"{mean:.3f}", delta=f"± {sd or 0:.3f} over {assessment.get('n_folds', '?')} folds",
                       delta_color="off", delta_arrow="off")
        elif m is None and name.startswith("Hand"):
            col.caption("No hand-crafted features for this modality.")
    if isinstance(assessment.get("chance"), (int, float)):
        c3.metric("Chance", f"{assessment['chance']:.3f}")
    st.caption(f"Balanced accuracy, {assessment.get('n_folds', '?')} folds grouped by subject over "
               f"{assessment.get('n_windows', '?')} labelled train windows of {assessment.get('n_subjects', '?')} "
               "subjects.")


def head_options_form() -> None:
    """Per-subject calibration and fine-tuning of the old encoder (stored in state; part of the head's key)."""
    d = actions.head_defaults()
    cur = {**d, **(state.get("head_options") or {})}
    c1, c2, c3, c4 = st.columns([2, 2, 1, 1])
    choices = list(actions.CALIBRATION_CHOICES)
    cal = c1.selectbox(
        "Per-subject calibration", choices, index=choices.index(cur["calibration"]) if cur["calibration"] in choices
        else 0, key="w_models_calibration",
        help="subject: standardise each subject's pooled features with that subject's own unlabelled windows "
             "(people differ more than their states do), for the old model, the bridge and KD alike; at prediction "
             "each uploaded recording is standardised with its own windows. none: never. auto: decide on the train "
             "split by subject-grouped cross-validation of the frozen old model, as `python -m bioxbridge_core run` "
             "does (subject only when it gains at least 0.02 balanced accuracy).")
    tune = c2.checkbox("Fine-tune the old encoder", value=bool(cur["fine_tune"]), key="w_models_finetune",
                       help="Also train the old encoder with its head on the train split (slower; the bridge, "
                            "alignment and predictions then use the fine-tuned encoder). Off: only the linear head "
                            "is trained on the frozen encoder.")
    epochs = c3.number_input("Epochs", 1, 1000, int(cur["epochs"]), key="w_models_ft_epochs", disabled=not tune)
    lr = c4.number_input("Encoder learning rate", 1e-8, 1.0, float(cur["lr"]), format="%.0e", key="w_models_ft_lr",
                         disabled=not tune)
    state.put("head_options", {"calibration": cal, "fine_tune": bool(tune), "epochs": int(epochs), "lr": float(lr)})


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
    st.caption("Mean-pooled last-layer tokens of the old encoder (frozen unless fine-tuned) → one linear layer, "
               "trained on the labelled *train* split (class-balanced). Its predictions become the pseudo labels of the pairs.")
    with boundary("Task head"):
        head_options_form()
        settings = state.data_settings()
        report = actions.head_report(settings)
        with boundary("Labelled windows"):
            show_verdict(actions.labels_verdict(settings), compact=report is not None)
        label = "Retrain the task head" if report else "Train the task head"
        if st.button(label, type="secondary" if report else "primary", key="w_models_train_head"):
            report = actions.train_old_head(settings, device=state.device_arg(),
                                            on_progress=progress_callback("Training the task head…"))
            st.success("Task head trained and saved.", icon=":material/check_circle:")
        if report is None:
            st.info("No task head for this dataset, old encoder and these options yet.", icon=":material/info:")
        else:
            summary = actions.head_summary(report)
            if summary:
                st.markdown(summary)
            assessment = actions.assessment_report(settings)
            show_verdict(actions.old_model_verdict(report, assessment))
            splits = report.get("splits", {})
            order = [s for s in ("test", "val", "train") if s in splits]  # held-out results first
            names = {"test": "held-out subjects (test)", "val": "validation subjects", "train": "train (seen in fit)"}
            tabs = st.tabs([f"{names[s]} · n={splits[s].get('n', '?')}" for s in order] or ["—"])
            for tab, split in zip(tabs, order):
                m = splits[split]
                with tab:
                    if split == "train":
                        st.caption("Scores on the windows the head was fitted on: optimistic, not evidence.")
                    metric_cards(m)
                    if m.get("confusion"):
                        st.plotly_chart(plots.confusion_matrix(m["confusion"], report["label_names"],
                                                               title=f"Old model on {names[split]}"),
                                        key=f"w_models_cm_{split}")
            with boundary("Assessment"):
                assessment_section(settings, assessment)
            st.page_link("pages/alignment.py", label="Next: Alignment", icon=":material/arrow_forward:")
