"""Alignment: where the bridge reads (probe per new layer) and writes (CKA per old layer)."""

import numpy as np
import streamlit as st

from ui import actions, plots, state
from ui.errors import boundary
from ui.widgets import need_dataset, page_header, progress_callback, show_verdict

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
            chosen = state.get("positions") or {}
            rd = chosen.get("read") if chosen.get("read") in news else res.new_position
            wr = chosen.get("write") if chosen.get("write") in olds else res.old_position
            i, j = news.index(rd), olds.index(wr)
            verdict = actions.alignment_verdict(res, {"read": rd, "write": wr})
            baseline, threshold = verdict.numbers.get("baseline"), verdict.numbers.get("threshold")
            cka = np.asarray(res.cka if debiased else res.cka_biased)
            show_verdict(verdict)
            m1, m2, m3, m4 = st.columns(4)
            m1.metric("Pair windows (n)", res.n_pairs)
            m2.metric("Read (new) m", rd, help=f"probe macro-F1 {res.probe_f1[i]:.3f}")
            m3.metric("Write (old) l", wr)
            m4.metric("Debiased CKA of this cell", f"{np.asarray(res.cka)[i, j]:.3f}",
                      delta=f"shuffled-pairs baseline {baseline:.3f}" if baseline is not None else None,
                      delta_color="off", delta_arrow="off",
                      help=f"The same baseline marks the heatmap's colour bar; cells at or below {threshold:.3f} "
                      "(baseline + 2 SD, at least +0.02) are grey." if threshold is not None else None)
            for note in res.notes or []:
                st.caption(f":material/warning: {note}")
            st.plotly_chart(plots.probe_bars(news, res.probe_f1, errors=res.probe_f1_std, best=i,
                                             chance=None, metric=f"CV macro-F1 ({res.probe_cv})"),
                            key="w_align_probe")
            if debiased:
                fig = plots.cka_heatmap(cka, news, olds, selected=(i, j), stage1_row=news.index(res.new_position),
                                        baseline=baseline, threshold=threshold, title="Linear CKA, debiased")
                caption = ("Grey: not above the selected cell's shuffled-pairs baseline (what unrelated windows score "
                           "at this n). Orange band: the stage-1 row (best probe). Red box: the chosen cell.")
            else:
                fig = plots.cka_heatmap(cka, news, olds, selected=(i, j), stage1_row=news.index(res.new_position),
                                        colorscale="Greys", title="Linear CKA, biased (inflated at small n)")
                caption = ("The biased estimator scores even unrelated features high at small n (two independent "
                           "random 50×768 sets score about 0.94): compare cells with it, never read it as evidence.")
            st.plotly_chart(fig, key="w_align_cka")
            st.caption(caption)
            c1, c2 = st.columns(2)
            for col, name, mat, names in ((c1, "New model", res.self_new, news), (c2, "Old model", res.self_old, olds)):
                if np.asarray(mat).size:
                    col.plotly_chart(plots.self_similarity(np.asarray(mat), names, title=f"{name} self-similarity"),
                                     key=f"w_align_self_{name[:3].lower()}")

            st.subheader("Positions for the bridge")
            c1, c2 = st.columns(2)
            rd = c1.selectbox("Read (new model)", news, index=news.index(rd), key="w_align_read")
            wr = c2.selectbox("Write (old model)", olds, index=olds.index(wr), key="w_align_write")
            if {"read": rd, "write": wr} != chosen:
                state.put("positions", {"read": rd, "write": wr})
                if chosen:
                    st.rerun()  # the verdict and the boxed cell follow the override
            if (rd, wr) != (res.new_position, res.old_position):
                st.caption(f"Override: the recommended pair is {res.new_position} → {res.old_position}.")
            st.page_link("pages/train.py", label="Next: Train", icon=":material/arrow_forward:")
