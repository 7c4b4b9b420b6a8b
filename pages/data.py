"""Data: choose paired recordings (demo, uploads or a server data folder), preview them, cut windows."""

from pathlib import Path

import streamlit as st

from ui import data_forms as forms
from ui import state
from ui.errors import boundary
from ui.widgets import page_header

page_header("Data", "Paired recordings of the old and the new signal, recorded at the same time.")

SOURCES = {
    "demo": "Built-in demo",
    "upload-many": "Several recordings, each with both signals",
    "upload-one": "One recording with both signals",
    "upload-two": "Two synchronised recordings",
    "upload-zip": "Manifest + zip of files",
    "server": "A data folder on this server",
}
UPLOADS = ("upload-many", "upload-one", "upload-two")
src_keys = list(SOURCES)
src = st.radio("Source", src_keys, format_func=SOURCES.get, horizontal=True, key="w_data_source",
               index=src_keys.index(state.get("data_source")) if state.get("data_source") in src_keys else 0)
if src != state.get("data_source"):  # a new source: the old dataset's summary must not linger
    state.clear_dataset()
    state.put("data_source", src)
recordings: list[Path] = []

with boundary("Dataset"):
    if src == "demo":
        forms.demo_source()
    elif src in UPLOADS:
        recordings = forms.upload_source(src)
    elif src == "upload-zip":
        forms.zip_source()
    else:
        recordings = forms.server_source()

recs: list = []
picks: dict[str, list[str]] = {}
if recordings:  # uploads or a plain server folder: encoders, channels, subjects and labels -> a manifest
    with boundary("Recordings"):
        recs, picks = forms.recordings_form(recordings, src)

manifest_path = state.get("manifest_path")
forms.notes_section(manifest_path)

st.subheader("Preview")
with boundary("Preview"):
    forms.preview_section(manifest_path, recs, picks)

st.subheader("Windows")
with boundary("Windows"):
    forms.windows_section(manifest_path)
