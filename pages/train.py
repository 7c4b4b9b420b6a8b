"""Train: bridge settings, parameter count, start/stop/resume background runs, live curves and verdicts."""

import streamlit as st

from bioxbridge_core import BridgeConfig
from ui import actions, plots, state
from ui.errors import boundary, show_error
from ui.runs_view import STATE_BADGES, format_seconds, list_runs, timing
from ui.widgets import need_dataset, page_header, show_verdict

page_header("Train", "Only the bridge is trained; both encoders and the task head stay frozen. "
            "Training runs in the background: switch pages or reload freely.")

manifest_path = need_dataset()
if manifest_path:
    with boundary("Bridge settings"):
        settings = state.data_settings()
        positions = state.get("positions")
        with st.expander("Before you train: what the earlier stages say", expanded=True):
            with boundary("Old model"):
                show_verdict(actions.old_model_verdict(actions.head_report(settings),
                                                       actions.assessment_report(settings)), compact=True)
            res = actions.load_alignment(settings)
            if res is not None:
                with boundary("Alignment"):
                    show_verdict(actions.alignment_verdict(res, positions), compact=True)
        if not positions:
            st.info("Choose the read/write positions on the Alignment page first.", icon=":material/info:")
            st.page_link("pages/alignment.py", label="Go to Alignment", icon=":material/grid_on:")
        else:
            st.markdown(f"`{settings['new_encoder']}` **{positions['read']}** → bridge → "
                        f"`{settings['old_encoder']}` **{positions['write']}**")
            d = BridgeConfig()  # the engine's defaults are the page's defaults
            c1, c2, c3, c4 = st.columns(4)
            rank = c1.number_input("Rank r", 1, 4096, d.rank, key="w_train_rank")
            n_proto = c2.number_input("Prototypes Np", 1, 100000, d.n_prototypes, key="w_train_prototypes")
            init = c3.selectbox("Prototype init", ["tokens", "normal"], key="w_train_init",
                                help="tokens: real old-layer tokens from the pairs; normal: N(0, 1).")
            loss = c4.selectbox("Loss", ["cosine", "mse", "l1"], key="w_train_loss")
            c1, c2, c3, c4, c5 = st.columns(5)
            lr = c1.number_input("Learning rate", 1e-7, 1.0, d.lr, format="%.0e", key="w_train_lr")
            epochs = c2.number_input("Epochs", 1, 10000, d.epochs, key="w_train_epochs")
            patience = c3.number_input("Patience", 0, 10000, d.patience, key="w_train_patience",
                                       help="Stop early when the held-out pair loss has not improved for this "
                                            "many epochs (the best epoch is kept). 0 = run every epoch.")
            batch = c4.number_input("Batch size", 1, 4096, d.batch_size, key="w_train_batch")
            seed = c5.number_input("Seed", 0, 2**31 - 1, 0, key="w_train_seed")
            kd = st.checkbox("Also train the KD student baseline (much larger)", key="w_train_kd")
            m1, m2 = st.columns(2)
            n_bridge = None
            with boundary("Parameter count"):
                n_bridge = actions.bridge_param_count(settings, positions, int(rank), int(n_proto), state.device_arg())
                m1.metric("Bridge trainable parameters", f"{n_bridge:,}")
            with boundary("KD student"):
                n_kd = actions.kd_param_count(settings, state.device_arg())
                m2.metric("KD student parameters", f"{n_kd:,}",
                          delta=f"bridge is {n_bridge / n_kd:.1%} of it" if n_kd and n_bridge else None,
                          delta_color="off", delta_arrow="off")
            if st.button("Start training", type="primary", key="w_train_start", icon=":material/play_arrow:"):
                run_id = actions.start_bridge_run(
                    settings, positions, dict(rank=int(rank), n_prototypes=int(n_proto), prototype_init=init,
                                              loss=loss, lr=float(lr), epochs=int(epochs), patience=int(patience),
                                              batch_size=int(batch),
                                              seed=int(seed)), device=state.device_arg(), kd=kd)
                state.put("active_run", run_id)
                st.toast(f"Started run {run_id}")
                st.rerun()  # redraw the sidebar and the run list with the new run


def run_card(r) -> None:
    """One run: state, progress with seconds per epoch and time left, curves, verdict, stop/resume."""
    with st.container(border=True, key=f"w_train_run_{r.run_id}"):
        c1, c2 = st.columns([4, 1])
        c1.markdown(f"{STATE_BADGES.get(r.state, STATE_BADGES['unknown'])} **{r.run_id}** · {r.dataset} · {r.state}"
                    + (f" · {r.message}" if r.message else ""))
        t = timing(r)
        if r.is_active:
            prog = r.progress
            total = prog.get("total") or 0
            c1.progress(min(1.0, prog.get("step", 0) / total) if total else 0.0,
                        text=prog.get("message") or f"step {prog.get('step', 0)} of {total or '?'}")
            if c2.button("Stop", key=f"w_train_stop_{r.run_id}", disabled=r.stop_requested,
                         help="Stops after the current step and keeps the best epoch so far as a usable bridge."):
                try:
                    actions.stop_run(r.path)
                except Exception as exc:  # shown in place; the fragment keeps polling
                    show_error(exc, where="Stop")
        elif r.can_resume:
            if c2.button("Resume", key=f"w_train_resume_{r.run_id}", icon=":material/play_arrow:",
                         help="Continue from the last saved epoch."):
                try:
                    actions.resume_run(r.path)
                except Exception as exc:
                    show_error(exc, where="Resume")
            if r.state == "failed":
                st.error(f"Run failed: {r.message or 'no reason recorded'}", icon=":material/error:")
        if t["seconds_per_epoch"] is not None:
            left = f" · about {format_seconds(t['seconds_left'])} left" if r.is_active and t["seconds_left"] else ""
            st.caption(f"Epoch {t['done']} of {t['total'] or '?'} · {t['seconds_per_epoch']:.1f} s per epoch{left}")
        if r.history:
            history = r.history  # one read per redraw: the caption, the chart and the timing agree
            verdict = actions.bridge_verdict(r)
            st.plotly_chart(plots.training_figure(history, chance_agreement=r.bridge_metrics.get("agreement_chance"),
                                                  best_epoch=verdict.numbers.get("best_epoch")),
                            key=f"w_train_curve_{r.run_id}")
            last = history[-1]
            if last.get("val_agreement") is not None:
                st.caption(f"Epoch {last['epoch']}: the bridged new-signal model agrees with the old model on "
                           f"{last['val_agreement']:.0%} of held-out pairs (no labels needed).")
            if not r.is_active:
                show_verdict(verdict)
                if (warning := actions.confidence_warning(r)) is not None:
                    st.warning(warning, icon=":material/warning:")


@st.fragment(run_every=1.0)
def live_runs() -> None:
    """Poll the run folders (status.json, history.json) and draw live curves; never touches the worker."""
    runs = [r for r in list_runs(state.run_root()) if r.config.get("kind", "bridge") == "bridge"]
    active = [r for r in runs if r.is_active]
    recent = active + [r for r in runs if not r.is_active][: max(0, 3 - len(active))]
    if not recent:
        st.caption("No bridge runs yet.")
        return
    for r in recent:
        run_card(r)


st.subheader("Runs")
live_runs()
