"""Home: what the Studio does, a one-click demo, recent runs."""

import streamlit as st

from ui import state
from ui.errors import boundary
from ui.runs_view import list_runs
from ui.widgets import page_header, runs_table

page_header("BioX-Bridge Studio", "Move a working biosignal model to a new modality — without new labels.")

st.markdown(
    "You have a model that works on one signal (say **ECG**) and want the same task on another, cheaper one "
    "(say **PPG**). The Studio trains a tiny *bridge* between two frozen encoders using only paired, "
    "unlabelled recordings, shows where the two models' layers line up, and then predicts from the new "
    "signal alone."
)

st.caption(
    "What the demo shows, measured (2026-12-01, `python -m bioxbridge_core run --demo ecg-ppg --baselines kd`, "
    "3 seeds, shipped encoders, 2-core machine; README and bench/RESULTS.md): on held-out subjects of the "
    "simulated ECG → PPG demo the bridge reached a balanced accuracy of 0.989–1.000 from PPG alone, as high as "
    "the old ECG model on ECG (1.000) and within 1.1 points of a fully trained PPG student (knowledge "
    "distillation, 1.000), while training 46,656 parameters (3.0 % of the student's); the whole run, student "
    "included, took 55–117 s."
)

c1, c2, c3 = st.columns(3)
c1.markdown("**1 · Data**  \nPaired recordings of both signals, or the built-in demo.")
c2.markdown("**2 · Align & train**  \nPick layers from probes and CKA, train the bridge.")
c3.markdown("**3 · Predict**  \nUpload new-signal recordings; get a class timeline.")

st.divider()
left, right = st.columns([1, 2])
with left:
    st.subheader("Try it now")
    st.caption("Synthetic ECG + PPG, three classes, generated offline in a few seconds.")
    if st.button("Run the demo", type="primary", key="w_home_demo", icon=":material/play_arrow:"):
        state.update(data_source="demo", demo_kind="ecg-ppg")
        st.switch_page("pages/data.py")
with right:
    st.subheader("Recent runs")
    with boundary("Recent runs"):
        runs = list_runs(state.run_root())[:8]
        if runs:
            runs_table(runs)
            st.page_link("pages/runs.py", label="All runs", icon=":material/folder_open:")
        else:
            st.caption("No runs yet. Train a bridge on the Train page and it appears here.")
