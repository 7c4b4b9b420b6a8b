"""Runs: every run with its settings, positions, metrics and curves; compare, download, delete."""

import json

import streamlit as st

from ui import actions, plots, state
from ui.errors import boundary
from ui.runs_view import bundle_bytes, flat_metrics, list_runs, public_config
from ui.widgets import metric_cards, page_header, runs_table, show_verdict

page_header("Runs", "Everything saved in the run store.")

by_id = {}
with boundary("Runs"):
    runs = list_runs(state.run_root())
    st.caption(f"{len(runs)} run(s) in the run store")
    if not runs:
        st.info("No runs yet. Train a bridge on the Train page.", icon=":material/info:")
        st.stop()
    runs_table(runs)
    by_id = {r.run_id: r for r in runs}
if not by_id:
    st.stop()
tab_one, tab_cmp = st.tabs(["Details", "Compare"])

with tab_one, boundary("Run details"):
    ids = list(by_id)
    active = state.get("active_run")
    rid = st.selectbox("Run", ids, index=ids.index(active) if active in ids else 0, key="w_runs_pick",
                       format_func=lambda i: by_id[i].label())
    state.put("active_run", rid)
    r = by_id[rid]
    st.caption(f"Dataset: **{r.dataset}** · {r.headline() or 'no result yet'}")
    if r.state == "failed":
        st.error(f"This run failed: {r.message or 'no reason recorded'}", icon=":material/error:")
    elif r.is_active:
        st.info(f"Running: {r.progress.get('message') or r.message}", icon=":material/autorenew:")
    elif r.state == "stopped":
        st.warning(f"Stopped: {r.message or 'by request'}"
                   + ("" if r.has_bundle else " — no usable bridge was kept (no epoch had finished)."),
                   icon=":material/stop_circle:")
    if r.can_resume and st.button("Resume this run", key="w_runs_resume", icon=":material/play_arrow:",
                                  help="Continue from the last saved epoch, in the same folder."):
        actions.resume_run(r.path)
        st.rerun()
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Settings**")
        st.json(public_config(r), expanded=False)
    with c2:
        st.markdown("**Metrics (held-out test subjects)**")
        test = r.bridge_metrics.get("test")
        metric_cards(test or {})
        with st.expander("All metrics"):
            st.json(r.metrics)
    if r.history:
        show_verdict(actions.bridge_verdict(r), compact=True)
        if (warning := actions.confidence_warning(r)) is not None:
            st.warning(warning, icon=":material/warning:")
        st.plotly_chart(plots.training_figure(r.history, chance_agreement=r.bridge_metrics.get("agreement_chance"),
                                              best_epoch=r.bridge_metrics.get("best_epoch")), key="w_runs_curve")
    d1, d2 = st.columns(2)
    d1.download_button("Download bridge bundle (zip)", bundle_bytes(r), file_name=f"{r.run_id}.zip",
                       mime="application/zip", key="w_runs_download", disabled=r.is_active or not r.has_bundle)
    with d2.popover("Delete run", disabled=r.is_active):
        st.write(f"Delete **{r.run_id}** and all its files?")
        if st.button("Yes, delete", type="primary", key="w_runs_delete"):
            actions.delete_run(r.run_id)
            state.put("active_run", None)
            st.rerun()

with tab_cmp, boundary("Compare"):
    chosen = st.multiselect("Runs to compare", list(by_id), default=list(by_id)[:2], key="w_runs_compare",
                            format_func=lambda i: by_id[i].label())
    if chosen:
        flat = {i: flat_metrics(by_id[i]) for i in chosen}
        keys = sorted({k for f in flat.values() for k in f})
        table = [{"metric": k, **{i: flat[i].get(k) for i in chosen}} for k in keys]
        rows = [{"setting": "dataset", **{i: by_id[i].dataset for i in chosen}}]
        rows += [{"setting": k, **{i: json.dumps(public_config(by_id[i]).get(k), default=str) for i in chosen}}
                 for k in ("encoders", "positions", "bridge")]
        c1, c2 = st.columns(2)
        c1.dataframe(rows, hide_index=True, width="stretch")
        c2.dataframe(table, hide_index=True, width="stretch")
        groups = {}
        for i in chosen:  # one bar group per run and model (bridge, KD, ...) on the test split
            for model, per_split in (by_id[i].metrics or {}).items():
                if isinstance(per_split, dict) and isinstance(per_split.get("test"), dict):
                    groups[f"{i[-9:]} {model}"] = per_split["test"]
        if groups:
            st.plotly_chart(plots.metric_bars(groups, title="Test split"), key="w_runs_cmp_bars")
        st.plotly_chart(plots.loss_curves({i: by_id[i].history for i in chosen}), key="w_runs_cmp_curves")
