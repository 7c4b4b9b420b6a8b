"""Streamlit layer of BioX-Bridge Studio: state, caches, widgets, plots and the error boundary.

Nothing here holds an algorithm: every computation is a call into ``bioxbridge_core``.
The engine never imports this package (or Streamlit).
"""
