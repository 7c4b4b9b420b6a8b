"""BioX-Bridge Studio: the Streamlit entry point (``streamlit run app.py``).

Owns navigation and the shared sidebar. Pages live in ``pages/`` and are
registered explicitly with ``st.navigation`` (no auto-discovery).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `streamlit run` from another folder still finds ui/ and the engine
    sys.path.insert(0, str(ROOT))

from bioxbridge_core.cpus import set_torch_threads  # noqa: E402
from ui import state  # noqa: E402
from ui.widgets import active_summary, sidebar  # noqa: E402

st.set_page_config(page_title="BioX-Bridge Studio", page_icon="🫀", layout="wide")
logging.getLogger("bioxbridge_core").setLevel(logging.INFO)
if "_threads" not in st.session_state:  # the server's own torch work (task head, alignment): free cores only
    st.session_state["_threads"] = set_torch_threads()
state.init()

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/monitor_heart:"),
    st.Page("pages/models.py", title="Models", icon=":material/neurology:"),
    st.Page("pages/alignment.py", title="Alignment", icon=":material/grid_on:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/query_stats:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:"),
]

page = st.navigation(PAGES, position="sidebar")
slot = sidebar()
try:
    page.run()
finally:
    state.remember()  # a reload (same URL) comes back to this dataset, these encoders and positions
    active_summary(slot)  # after the page (even one that stopped early), so what it just chose shows at once
