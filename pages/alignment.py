"""Alignment: where the bridge reads (probe per new layer) and writes (CKA per old layer)."""

import numpy as np
import streamlit as st

from ui import actions, plots, state
from ui.errors import boundary
from ui.widgets import need_dataset, page_header, progress_callback

page_header("Alignment", "Stage 1 picks the new-model layer that best predicts the old model's pseudo labels; "
            "stage 2 the old-model layer whose input is most similar to it (linear CKA).")

manifest_path = need_dataset()
if manifest_path:
    with boundary("Alignment"):
        settings = state.data_settings()
        res = actions.load_alignment(settings)
        c1, c2 = st.columns([1, 3])
        debiased = c1.toggle("Debiased CKA", value=True, key="w_align_debiased",
                             help="The biased estimator is inflated for small n; the debiased one is not.")
        if c2.button("Compute alignment" if res is None else "Recompute", key="w_align_run",
                     type="primary" if res is None else "secondary"):
            res = actions.run_alignment(settings, device=state.device_arg(),
                                        on_progress=progress_callback("Scoring layers…"))
        if res is None:
            st.info("Not computed yet for this dataset and these encoders (needs the task head from Models).",
                    icon=":material/info:")
        else:
            news, olds = list(res.new_positions), list(res.old_positions)
            i, j = news.index(res.new_position), olds.index(res.old_position)
            cka = np.asarray(res.cka if debiased else res.cka_biased)
            null = np.asarray(res.null_cka)
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("Pair windows (n)", res.n_pairs)
            m2.metric("Read (new) m", res.new_position, help=f"probe macro-F1 {res.probe_f1[i]:.3f}")
            m3.metric("Write (old) l", res.old_position, help=f"CKA {cka[i, j]:.3f}")
            m4.metric("CKA vs shuffled pairs", f"{cka[i, j]:.3f}", delta=f"baseline {null[i, j]:.3f}",
                      delta_color="off")
            for note in res.notes or []:
                st.caption(f":material/warning: {note}")
            st.plotly_chart(plots.probe_bars(news, res.probe_f1, errors=res.probe_f1_std, best=i,
                                             chance=None, metric=f"CV macro-F1 ({res.probe_cv})"),
                            key="w_align_probe")
            st.plotly_chart(plots.cka_heatmap(cka, news, olds, selected=(i, j), stage1_row=i,
                                              baseline=float(np.nanmean(null)) if null.size else None,
                                              zmin=None if debiased else 0.0,
                                              title="Linear CKA, " + ("debiased" if debiased else "biased")),
                            key="w_align_cka")
            st.caption("Orange band: the stage-1 row (best probe). Red box: the selected pair. Title: the mean "
                       "CKA of shuffled (unpaired) windows — what 'no relation' scores at this n.")
            c1, c2 = st.columns(2)
            for col, name, mat, names in ((c1, "New model", res.self_new, news), (c2, "Old model", res.self_old, olds)):
                if np.asarray(mat).size:
                    col.plotly_chart(plots.self_similarity(np.asarray(mat), names, title=f"{name} self-similarity"),
                                     key=f"w_align_self_{name[:3].lower()}")

            st.subheader("Positions for the bridge")
            chosen = state.get("positions") or {}
            rd0 = chosen.get("read") if chosen.get("read") in news else res.new_position
            wr0 = chosen.get("write") if chosen.get("write") in olds else res.old_position
            c1, c2 = st.columns(2)
            rd = c1.selectbox("Read (new model)", news, index=news.index(rd0), key="w_align_read")
            wr = c2.selectbox("Write (old model)", olds, index=olds.index(wr0), key="w_align_write")
            state.put("positions", {"read": rd, "write": wr})
            if (rd, wr) != (res.new_position, res.old_position):
                st.caption(f"Override: the recommended pair is {res.new_position} → {res.old_position}.")
            st.page_link("pages/train.py", label="Next: Train", icon=":material/arrow_forward:")
