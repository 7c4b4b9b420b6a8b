"""Plotly figure builders. Pure functions of arrays and lists: no Streamlit, no engine calls.

Long signals are reduced with min/max decimation so a 5-minute 250 Hz trace keeps
its peaks while sending a few thousand points to the browser.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=50, b=40), font=dict(size=12))


def downsample_minmax(y: np.ndarray, max_points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values keeping each bucket's min and max (at most ``max_points`` points)."""
    y = np.asarray(y, dtype=float).ravel()
    n = y.size
    if n <= max_points or max_points < 4:
        return np.arange(n), y
    n_buckets = max_points // 2
    edges = np.linspace(0, n, n_buckets + 1).astype(int)
    idx = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        seg = y[a:b]
        finite = np.isfinite(seg)
        if not finite.any():
            idx.append(a)
            continue
        lo = a + int(np.nanargmin(np.where(finite, seg, np.inf)))
        hi = a + int(np.nanargmax(np.where(finite, seg, -np.inf)))
        idx.extend(sorted({lo, hi}))
    idx = np.asarray(idx, dtype=int)
    return idx, y[idx]


def aligned_signals(signals: Sequence[tuple[str, np.ndarray, float]], *, t0_s: float = 0.0,
                    max_points: int = 4000, title: str = "", units: Sequence[str] | None = None) -> go.Figure:
    """Stacked traces sharing one time axis; each item is ``(label, samples 1-D, sfreq Hz)``."""
    n = max(1, len(signals))
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=[s[0] for s in signals] or [""])
    for i, (label, y, sfreq) in enumerate(signals):
        idx, yy = downsample_minmax(np.asarray(y), max_points)
        t = t0_s + idx / float(sfreq)
        # SVG, not WebGL: browsers cap WebGL contexts and blank some of many stacked gl subplots
        fig.add_trace(go.Scatter(x=t, y=yy, mode="lines", name=label,
                                 line=dict(width=1, color=PALETTE[i % len(PALETTE)]),
                                 hovertemplate="%{x:.2f} s<br>%{y:.3g}<extra>" + label + "</extra>"),
                      row=i + 1, col=1)
        if units and i < len(units) and units[i]:
            fig.update_yaxes(title_text=units[i], row=i + 1, col=1)
    fig.update_xaxes(title_text="time (s)", row=n, col=1)
    fig.update_layout(**LAYOUT, title=title or None, showlegend=False, height=140 + 150 * n)
    return fig


def _cell_box(fig: go.Figure, i: int, j: int, color: str, width: float = 3, dash: str = "solid") -> None:
    fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                  line=dict(color=color, width=width, dash=dash), fillcolor="rgba(0,0,0,0)")


NOISE_GREY = "#dcdcdc"


def _cka_colorscale(zmin: float, zmax: float, threshold: float | None, base: str = "Blues") -> list:
    """A colour scale that paints everything at or below ``threshold`` one flat grey (noise never looks
    strong) and runs a sequential scale only above it."""
    import plotly.colors as pc

    ramp = pc.get_colorscale(base)
    if threshold is None or not np.isfinite(threshold) or threshold <= zmin:
        return ramp
    t = min(1.0, max(0.0, (threshold - zmin) / (zmax - zmin)))
    if t >= 1.0:
        return [[0.0, NOISE_GREY], [1.0, NOISE_GREY]]
    colours = pc.sample_colorscale(ramp, [0.2 + 0.8 * k / 9 for k in range(10)])  # skip the near-white end
    scale = [[0.0, NOISE_GREY], [t, NOISE_GREY]]
    scale += [[t + (1.0 - t) * k / 9 + (1e-9 if k == 0 else 0.0), c] for k, c in enumerate(colours)]
    return scale


def cka_heatmap(matrix: np.ndarray, row_names: Sequence[str], col_names: Sequence[str], *,
                selected: tuple[int, int] | None = None, stage1_row: int | None = None,
                title: str = "Linear CKA", zmin: float | None = None, zmax: float = 1.0,
                row_title: str = "new model (read position m)", col_title: str = "old model (write position l)",
                baseline: float | None = None, threshold: float | None = None, colorscale: str = "Blues") -> go.Figure:
    """M×L heatmap on a fixed scale up to ``zmax`` (CKA's ceiling, 1), values on hover.

    With ``baseline`` (the shuffled-pairs CKA) and ``threshold`` (what counts as above it), every cell at
    or below the threshold is one flat grey and the colour bar marks the baseline: the same number the
    page's metric shows. The stage-1 row is outlined, the selected cell boxed.
    """
    z = np.asarray(matrix, dtype=float)
    if z.shape != (len(row_names), len(col_names)):
        raise ValueError(f"CKA matrix has shape {z.shape}; expected ({len(row_names)}, {len(col_names)}).")
    finite = z[np.isfinite(z)]
    lo = min([0.0] + ([float(finite.min())] if finite.size else []) +
             ([float(baseline)] if baseline is not None and np.isfinite(baseline) else []))
    zmin = lo if zmin is None else zmin
    y_idx = list(range(len(row_names)))
    x_idx = list(range(len(col_names)))
    text = [[f"{v:.3f}" if np.isfinite(v) else "" for v in row] for row in z]
    if selected is not None:  # star the chosen cell in its own label (an annotation would cover the cell above)
        text[selected[0]][selected[1]] = "★ " + text[selected[0]][selected[1]]
    marks = []  # (value, label): the baseline and the bar first, round numbers only where they do not crowd them
    if baseline is not None and np.isfinite(baseline):
        marks.append((float(baseline), f"shuffled {baseline:.3f}"))
    if threshold is not None and np.isfinite(threshold) and threshold < zmax:
        marks.append((float(threshold), f"chance bar {threshold:.3f}"))
    for v in (0.0, 0.5, zmax):
        if all(abs(v - m) > 0.08 * (zmax - zmin) for m, _ in marks):
            marks.append((v, f"{v:.2f}"))
    ticks, labels = [m for m, _ in marks], [t for _, t in marks]
    fig = go.Figure(go.Heatmap(
        z=z, x=x_idx, y=y_idx, colorscale=_cka_colorscale(zmin, zmax, threshold, colorscale), zmin=zmin, zmax=zmax,
        colorbar=dict(title="CKA", tickvals=ticks, ticktext=labels),
        customdata=[[[r, c] for c in col_names] for r in row_names],
        hovertemplate="new %{customdata[0]} → old %{customdata[1]}<br>CKA %{z:.3f}<extra></extra>",
        text=text, texttemplate="%{text}" if z.size <= 400 else None,
    ))
    if stage1_row is not None and 0 <= stage1_row < len(row_names):
        fig.add_shape(type="rect", x0=-0.5, x1=len(col_names) - 0.5, y0=stage1_row - 0.5, y1=stage1_row + 0.5,
                      line=dict(color="#ff7f0e", width=2, dash="dash"), fillcolor="rgba(255,127,14,0.08)")
    if selected is not None:
        i, j = selected
        _cell_box(fig, i, j, "#d62728", width=3)
    sub = (f" · shuffled-pairs baseline {baseline:.3f}" if baseline is not None and np.isfinite(baseline) else "")
    fig.update_layout(**LAYOUT, title=title + sub, height=max(380, 90 + 30 * len(row_names)))
    fig.update_xaxes(title_text=col_title, tickmode="array", tickvals=x_idx, ticktext=list(col_names), tickangle=-45)
    fig.update_yaxes(title_text=row_title, tickmode="array", tickvals=y_idx, ticktext=list(row_names), autorange="reversed")
    return fig


def self_similarity(matrix: np.ndarray, names: Sequence[str], *, title: str = "Self-similarity") -> go.Figure:
    """Square layer-by-layer similarity map of one model."""
    z = np.asarray(matrix, dtype=float)
    idx = list(range(len(names)))
    fig = go.Figure(go.Heatmap(z=z, x=idx, y=idx, colorscale="Blues", zmin=0, zmax=1,
                               customdata=[[[a, b] for b in names] for a in names],
                               hovertemplate="%{customdata[0]} vs %{customdata[1]}<br>%{z:.3f}<extra></extra>"))
    fig.update_layout(**LAYOUT, title=title, height=max(300, 60 + 22 * len(names)))
    fig.update_xaxes(tickmode="array", tickvals=idx, ticktext=list(names), tickangle=-45)
    fig.update_yaxes(tickmode="array", tickvals=idx, ticktext=list(names), autorange="reversed")
    return fig


def probe_bars(names: Sequence[str], scores: Sequence[float], *, errors: Sequence[float] | None = None,
               best: int | None = None, chance: float | None = None, metric: str = "CV macro-F1",
               title: str = "Probe score per new-model position") -> go.Figure:
    """Bar per position; the best one coloured, an optional chance line."""
    scores = np.asarray(scores, dtype=float)
    if best is None and scores.size and np.isfinite(scores).any():
        best = int(np.nanargmax(scores))
    colors = ["#d62728" if i == best else "#9ab7d3" for i in range(len(names))]
    fig = go.Figure(go.Bar(x=list(names), y=scores, marker_color=colors,
                           error_y=dict(type="data", array=list(errors)) if errors is not None else None,
                           hovertemplate="%{x}<br>" + metric + " %{y:.3f}<extra></extra>"))
    if chance is not None:
        fig.add_hline(y=chance, line=dict(color="grey", dash="dot"), annotation_text="chance")
    fig.update_layout(**LAYOUT, title=title, yaxis_title=metric, height=360)
    fig.update_xaxes(tickangle=-45)
    return fig


def loss_curves(histories: Mapping[str, Sequence[Mapping]] | Sequence[Mapping], *,
                keys: Sequence[str] = ("train_loss", "val_loss"), title: str = "Bridge loss") -> go.Figure:
    """Per-epoch curves; several runs are drawn in distinct colours, train solid and pair-val dashed."""
    if not isinstance(histories, Mapping):
        histories = {"": histories}
    names = {"train_loss": "train", "val_loss": "pair-val"}
    fig = go.Figure()
    for r, (run, hist) in enumerate(histories.items()):
        color = PALETTE[r % len(PALETTE)]
        for k, key in enumerate(keys):
            pts = [(h.get("epoch", i + 1), h.get(key)) for i, h in enumerate(hist or [])]
            pts = [(e, v) for e, v in pts if v is not None and np.isfinite(float(v))]
            if not pts:
                continue
            label = f"{run} {names.get(key, key)}".strip()
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=label,
                                     line=dict(color=color, dash="solid" if k == 0 else "dash"), marker=dict(size=4)))
    fig.update_layout(**LAYOUT, title=title, xaxis_title="epoch", yaxis_title="loss", height=340,
                      legend=dict(orientation="h", y=-0.25))
    return fig


def confusion_matrix(cm: Sequence[Sequence[float]], label_names: Sequence[str], *, normalise: bool = True,
                     title: str = "Confusion matrix") -> go.Figure:
    """Rows = true class, columns = predicted; colour by row share, hover shows counts."""
    counts = np.asarray(cm, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0) if normalise else counts
    text = [[f"{int(c)}<br>{s:.0%}" if normalise else f"{int(c)}" for c, s in zip(cr, sr)] for cr, sr in zip(counts, share)]
    names = list(label_names)
    fig = go.Figure(go.Heatmap(z=share, x=names, y=names, colorscale="Blues", zmin=0, zmax=1 if normalise else None,
                               text=text, texttemplate="%{text}", showscale=False,
                               hovertemplate="true %{y} → predicted %{x}<br>%{text}<extra></extra>"))
    fig.update_layout(**LAYOUT, title=title, height=120 + 60 * max(2, len(names)))
    fig.update_xaxes(title_text="predicted", type="category")
    fig.update_yaxes(title_text="true", type="category", autorange="reversed")
    return fig


def prediction_timeline(signal: np.ndarray, sfreq: float, start_s: Sequence[float], window_s: float,
                        proba: np.ndarray, label_names: Sequence[str], *, true_labels: Sequence[str] | None = None,
                        signal_name: str = "signal", max_points: int = 4000) -> go.Figure:
    """Signal on top, predicted class per window below it, class probabilities at the bottom."""
    proba = np.asarray(proba, dtype=float)
    start_s = np.asarray(start_s, dtype=float)
    pred = proba.argmax(axis=1) if proba.size else np.zeros(0, int)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.09, row_heights=[0.5, 0.15, 0.35],
                        subplot_titles=[signal_name, "predicted class", "class probability"])
    idx, yy = downsample_minmax(np.asarray(signal).ravel(), max_points)
    fig.add_trace(go.Scattergl(x=idx / float(sfreq), y=yy, mode="lines", line=dict(width=1, color="#444"),
                               name=signal_name, showlegend=False), row=1, col=1)
    for c, name in enumerate(label_names):
        color = PALETTE[c % len(PALETTE)]
        sel = pred == c
        if sel.any():
            fig.add_trace(go.Bar(x=start_s[sel] + window_s / 2, y=np.ones(sel.sum()), width=window_s,
                                 marker_color=color, name=str(name), legendgroup=str(name),
                                 customdata=proba[sel, c],
                                 hovertemplate=f"{name}<br>p=%{{customdata:.2f}}<extra></extra>"), row=2, col=1)
        fig.add_trace(go.Scatter(x=start_s + window_s / 2, y=proba[:, c], mode="lines+markers", marker=dict(size=3),
                                 line=dict(color=color, shape="hv"), name=str(name), legendgroup=str(name),
                                 showlegend=not sel.any()), row=3, col=1)  # every class in the legend
    if true_labels is not None:
        fig.add_trace(go.Scatter(x=start_s + window_s / 2, y=[1.15] * len(start_s), mode="markers",
                                 marker=dict(symbol="line-ns-open", color="black"), text=list(true_labels),
                                 hovertemplate="true: %{text}<extra></extra>", name="true label"), row=2, col=1)
    fig.update_yaxes(visible=False, row=2, col=1)
    fig.update_yaxes(range=[0, 1], title_text="p", row=3, col=1)
    fig.update_xaxes(title_text="time (s)", row=3, col=1)
    fig.update_layout(**LAYOUT, height=560, bargap=0, legend=dict(orientation="h", y=-0.12))
    return fig


def metric_bars(rows: Mapping[str, Mapping[str, float]], *, metrics: Sequence[str] = ("balanced_accuracy", "f1_macro"),
                title: str = "Run comparison") -> go.Figure:
    """Grouped bars: one group per metric, one bar per run/baseline."""
    fig = go.Figure()
    for r, (name, vals) in enumerate(rows.items()):
        fig.add_trace(go.Bar(name=name, x=list(metrics), y=[vals.get(m) for m in metrics],
                             marker_color=PALETTE[r % len(PALETTE)]))
    fig.update_layout(**LAYOUT, title=title, barmode="group", yaxis=dict(range=[0, 1]), height=340)
    return fig


def training_figure(history: Sequence[Mapping], *, chance_agreement: float | None = None,
                    best_epoch: int | None = None, title: str = "") -> go.Figure:
    """One run's curves: bridge loss (train, pair-val) on top, agreement with the old model below.

    The agreement panel (share of held-out pairs where the bridged prediction equals the old model's)
    has a dotted line at what always predicting the old model's most common class would agree on,
    and the best epoch (lowest pair-val loss) marked.
    """
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12, row_heights=[0.55, 0.45],
                        subplot_titles=["bridge loss", "agreement with the old model (held-out pairs)"])
    rows = list(history or [])
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(rows)]
    for key, name, dash in (("train_loss", "train", "solid"), ("val_loss", "pair-val", "dash")):
        pts = [(e, h.get(key)) for e, h in zip(epochs, rows) if h.get(key) is not None and np.isfinite(float(h[key]))]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=name,
                                     line=dict(color=PALETTE[0], dash=dash), marker=dict(size=4)), row=1, col=1)
    agree = [(e, h.get("val_agreement")) for e, h in zip(epochs, rows) if h.get("val_agreement") is not None]
    if agree:
        fig.add_trace(go.Scatter(x=[p[0] for p in agree], y=[p[1] for p in agree], mode="lines+markers",
                                 name="agreement", line=dict(color=PALETTE[2]), marker=dict(size=4),
                                 hovertemplate="epoch %{x}<br>agrees on %{y:.0%}<extra></extra>"), row=2, col=1)
    if chance_agreement is not None and np.isfinite(chance_agreement):
        fig.add_hline(y=float(chance_agreement), line=dict(color="grey", dash="dot"), row=2, col=1,
                      annotation_text=f"constant guess {chance_agreement:.0%}", annotation_position="bottom right")
    if best_epoch is not None:
        fig.add_vline(x=best_epoch, line=dict(color=PALETTE[1], dash="dot", width=1))
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="agreement", range=[0, 1.05], tickformat=".0%", row=2, col=1)
    fig.update_xaxes(title_text="epoch", row=2, col=1)
    fig.update_layout(**LAYOUT, title=title or None, height=460, legend=dict(orientation="h", y=-0.18))
    return fig
