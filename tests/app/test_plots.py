"""Figure builders: shapes, downsampling, marks (no Streamlit needed)."""

import numpy as np
import pytest

from ui import plots


def test_downsample_keeps_extremes_and_caps_points(rng):
    y = rng.normal(size=100_000)
    y[12_345] = 50.0
    y[77_777] = -60.0
    idx, yy = plots.downsample_minmax(y, 2000)
    assert len(idx) <= 2000
    assert yy.max() == 50.0 and yy.min() == -60.0
    assert np.all(np.diff(idx) > 0)


def test_aligned_signals_shares_time_axis():
    fig = plots.aligned_signals([("ECG", np.zeros(25_000), 250.0), ("PPG", np.ones(3_000), 60.0)], t0_s=10.0)
    assert len(fig.data) == 2
    assert len(fig.data[0].x) <= 4000  # 25 000 samples decimated
    assert fig.data[0].x[0] == pytest.approx(10.0) and fig.data[1].x[-1] == pytest.approx(10.0 + 2999 / 60.0)


def test_cka_heatmap_marks_selected_cell_and_stage1_row():
    z = np.arange(12, dtype=float).reshape(3, 4) / 12
    fig = plots.cka_heatmap(z, ["a", "b", "c"], ["w", "x", "y", "z"], selected=(1, 2), stage1_row=1, baseline=0.05)
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(rects) == 2
    cell = [s for s in rects if s.x1 - s.x0 == 1][0]
    assert (cell.x0, cell.y0) == (1.5, 0.5)
    assert "0.050" in fig.layout.title.text
    assert fig.data[0].text[1][2].startswith("★") and not fig.data[0].text[0][2].startswith("★")
    assert "CKA" in fig.data[0].hovertemplate
    with pytest.raises(ValueError):
        plots.cka_heatmap(z, ["a"], ["w"])


def test_confusion_and_timeline_and_curves():
    cm = plots.confusion_matrix([[3, 1], [0, 4]], ["rest", "task"])
    assert cm.data[0].z[0][0] == pytest.approx(0.75)
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    tl = plots.prediction_timeline(np.zeros(3000), 100.0, [0, 10, 20], 10.0, proba, ["rest", "task"])
    bars = [d for d in tl.data if d.type == "bar"]
    assert sorted(len(b.x) for b in bars) == [1, 2]
    curves = plots.loss_curves({"r1": [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2},
                                       {"epoch": 2, "train_loss": 0.5, "val_loss": None}]})
    assert [len(d.x) for d in curves.data] == [2, 1]
    bars = plots.probe_bars(["m0", "m1", "m2"], [0.2, 0.7, 0.4])
    assert bars.data[0].marker.color[1] != bars.data[0].marker.color[0]


def test_cka_colour_scale_keeps_noise_grey_and_marks_the_baseline():
    z = np.array([[0.002, -0.004], [0.010, 0.6]])
    fig = plots.cka_heatmap(z, ["a", "b"], ["w", "x"], baseline=0.005, threshold=0.025)
    hm = fig.data[0]
    assert hm.zmax == 1.0 and hm.zmin <= -0.004  # a fixed scale up to CKA's ceiling, not the data's max
    t = (0.025 - hm.zmin) / (hm.zmax - hm.zmin)
    greys = [c for pos, c in hm.colorscale if pos <= t]
    assert greys and set(greys) == {plots.NOISE_GREY}
    assert all(c != plots.NOISE_GREY for pos, c in hm.colorscale if pos > t)
    assert 0.005 in hm.colorbar.tickvals and "shuffled 0.005" in hm.colorbar.ticktext
    assert "0.005" in fig.layout.title.text


def test_training_figure_shows_agreement_and_its_chance_line():
    hist = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_agreement": 0.4 + e / 10} for e in (1, 2, 3)]
    fig = plots.training_figure(hist, chance_agreement=0.5, best_epoch=3)
    names = [d.name for d in fig.data]
    assert names == ["train", "pair-val", "agreement"]
    assert list(fig.data[2].y) == pytest.approx([0.5, 0.6, 0.7])
    assert any(getattr(s, "y0", None) == 0.5 for s in fig.layout.shapes)
