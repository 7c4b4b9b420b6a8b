"""Pre-training data, physiology targets, training loop, probes and shipped weights of the built-ins (fast)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from bioxbridge_core.baselines.handcrafted import ecg_hrv_features, eeg_bandpower_features, ppg_pulse_features
from bioxbridge_core.errors import EncoderError, RecordingError
from bioxbridge_core.models.builtin import BUILTIN_NAMES, build_builtin
from bioxbridge_core.zoo.corpus import Corpus, make_signal
from bioxbridge_core.zoo.data import (PREPS, grid_starts, read_e4_csv, simulated_windows, stress_label_spans,
                                      window_ok, windows_from_signal)
from bioxbridge_core.zoo.physio import TARGET_NAMES, annotate, eeg_band_targets, window_targets
from bioxbridge_core.zoo.pretrain import (PretrainConfig, Pretrainer, held_out_subjects, patch_mask,
                                          save_pretrained, span_mask)
from bioxbridge_core.zoo.probe_eval import _adapt_state, cv_logreg, load_builtin_weights, make_folds

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "encoders"


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _sim(kind: str, seconds: float, sfreq: int, hr: float, seed: int = 0, method: str = "simple") -> np.ndarray:
    import neurokit2 as nk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ecg":
            return nk.ecg_simulate(duration=seconds, sampling_rate=sfreq, heart_rate=hr, method=method,
                                   random_state=seed, noise=0.01)
        return nk.ppg_simulate(duration=seconds, sampling_rate=sfreq, heart_rate=hr, random_state=seed,
                               motion_amplitude=0.0, powerline_amplitude=0.0, burst_number=0, drift=0.0)


def _ecg_corpus(n: int = 4, seconds: int = 40) -> Corpus:
    sigs = [make_signal(_sim("ecg", seconds, 250, 60 + 15 * i, seed=i)[None], 250.0, PREPS["ecg"], kind="ecg",
                        dataset="sim" if i % 2 else "real", source=f"s{i}", subject=f"p{i}") for i in range(n)]
    return Corpus("ecg", 100.0, sigs, {"sim": 0.5, "real": 0.5})


# -- data --------------------------------------------------------------------------
def test_windows_are_zscored_and_bad_windows_dropped():
    sfreq = 250.0
    sig = _sim("ecg", 40, int(sfreq), 70)[None].astype(np.float64)
    sig[0, int(12 * sfreq):int(13 * sfreq)] = np.nan          # NaN inside window 10-20 s
    sig[0, int(31 * sfreq):int(33 * sfreq)] = 0.25             # 2 s flat line inside 30-40 s
    x, kept = windows_from_signal(sig, sfreq, PREPS["ecg"], starts_s=grid_starts(40, 10, 10))
    assert kept.tolist() == [0.0, 20.0]
    assert x.shape == (2, 1, PREPS["ecg"].n_times)
    np.testing.assert_allclose(x.mean(-1), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(-1), 1, atol=1e-3)
    assert not window_ok(np.zeros((1, 500)), 50.0)


def test_eda_windows_tolerate_quantised_samples_but_not_lost_contact():
    rng = np.random.default_rng(0)
    eda = np.round(1.0 + 0.02 * np.cumsum(rng.standard_normal(400)), 2)[None]  # 4 Hz, repeats for > 1 s
    eda[0, 100:104] = eda[0, 100]
    assert window_ok(eda[:, :160], 4.0, flat_s=PREPS["eda"].flat_s, min_value=PREPS["eda"].min_value)
    eda[0, 50] = 0.0
    assert not window_ok(eda[:, :160], 4.0, flat_s=PREPS["eda"].flat_s, min_value=PREPS["eda"].min_value)


@pytest.mark.parametrize("kind, n_times", [("PPG", 500), ("EDA", 40)])
def test_simulated_windows_shapes(kind, n_times):
    ws = simulated_windows(kind, n_signals=2, duration_s=20, step_s=10, seed=3, cache=False)
    assert ws.x.shape == (4, 1, n_times) and np.isfinite(ws.x).all()
    assert set(ws.subject) == {"sim0", "sim1"}


def test_e4_csv_reader(tmp_path):
    path = tmp_path / "EDA.csv"
    path.write_text("1644227574.000000\n4.000000\n0.5\n0.6\n0.7\n")
    x, sfreq, start = read_e4_csv(path)
    assert sfreq == 4.0 and start == 1644227574.0 and x.tolist() == [0.5, 0.6, 0.7]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(RecordingError, match="bad.csv"):
        read_e4_csv(bad)


def test_stress_label_spans_split_on_label_changes_and_gaps(tmp_path):
    folder = tmp_path / "stress_predict"
    folder.mkdir()
    rows = ["participant,time_unix_s,label"] + [f"2,{100 + t},{int(5 <= t < 9)}" for t in range(12)]
    rows += [f"2,{200 + t},0" for t in range(3)]  # a gap, then rest again
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    assert stress_label_spans(tmp_path) == {"S02": [(100.0, 105.0, 0), (105.0, 109.0, 1), (109.0, 112.0, 0),
                                                    (200.0, 203.0, 0)]}


# -- physiology targets ------------------------------------------------------------------
def test_ecg_targets_find_the_simulated_heart_rate_at_any_length():
    x = make_signal(_sim("ecg", 40, 250, 72, method="ecgsyn")[None], 250.0, PREPS["ecg"], kind="ecg", dataset="d",
                    source="s", subject="p")
    assert set(x.ann) >= {"peaks", "width_ms", "amp", "beat_quality"} and len(x.ann["peaks"]) > 30
    for seconds in (2, 10, 30):
        t = window_targets("ecg", x.ann, 500, seconds * 100, 100.0)
        assert t.shape == (len(TARGET_NAMES["ecg"]),)
        assert 62 <= t[0] <= 82
        assert np.isnan(t[1]) == (seconds == 2)  # SDNN needs three intervals
    t = window_targets("ecg", x.ann, 500, 1000, 100.0)
    assert 10 <= t[3] <= 200 and 0.8 <= t[5] <= 1  # clean simulated beats match their template


def test_ppg_targets_find_the_pulse_rate_and_rise_time():
    ann = annotate("ppg", _sim("ppg", 40, 50, 90), 50.0)
    t = window_targets("ppg", ann, 250, 1000, 50.0)
    assert 80 <= t[0] <= 100
    assert 50 <= t[3] <= 400  # foot-to-peak rise time, ms


def test_eda_targets_count_responses_and_are_scale_free():
    import neurokit2 as nk

    sig = 2.0 + nk.eda_simulate(duration=120, sampling_rate=4, scr_number=6, drift=0.0, noise=0.0, random_state=1)
    a1, a2 = annotate("eda", sig, 4.0), annotate("eda", 10 * sig, 4.0)
    t1 = window_targets("eda", a1, 0, 480, 4.0, sig)
    t2 = window_targets("eda", a2, 0, 480, 4.0, 10 * sig)
    assert t1[0] > 0  # responses per minute
    np.testing.assert_allclose(t1, t2, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="signal"):
        window_targets("eda", a1, 0, 480, 4.0)


def test_eeg_band_targets_put_a_10hz_rhythm_in_alpha():
    t = np.arange(1000) / 100.0
    rng = np.random.default_rng(0)
    x = 0.1 * rng.standard_normal((1, 2, 1000))
    x[0, 1] += np.sin(2 * np.pi * 10 * t)
    f = eeg_band_targets(x, 100.0)
    assert f.shape == (1, 2, len(TARGET_NAMES["eeg"]))
    assert np.argmax(f[0, 1, :5]) == 2 and f[0, 1, 2] > f[0, 0, 2] + 1
    assert f[0, 1, 6] > 0  # log alpha/theta


def test_unusable_recordings_give_nan_targets_not_errors():
    ann = annotate("ecg", np.zeros(3000), 100.0)
    assert np.isnan(window_targets("ecg", ann, 0, 1000, 100.0)).all()


# -- corpus ---------------------------------------------------------------------------------
def test_corpus_never_samples_bad_samples_and_follows_dataset_weights():
    raw = _sim("ecg", 40, 250, 70)[None].astype(np.float64)
    raw[0, 2500:5000] = np.nan  # 10-20 s lost
    sig = make_signal(raw, 250.0, PREPS["ecg"], kind="ecg", dataset="a", source="s", subject="p")
    assert not sig.good[1000:2000].any() and sig.good[:900].all() and sig.good[2100:].all()
    other = make_signal(_sim("ecg", 40, 250, 70)[None], 250.0, PREPS["ecg"], kind="ecg", dataset="b",
                        source="t", subject="q")
    c = Corpus("ecg", 100.0, [sig, other], {"a": 0.8, "b": 0.2})
    picks = c.sample(np.random.default_rng(0), 500, 400)
    assert all(c.signals[i].good[s:s + 500].all() for i, s in picks)
    share_a = np.mean([i == 0 for i, _ in picks])
    assert 0.7 <= share_a <= 0.9
    with pytest.raises(RecordingError, match="60 s"):
        c.sample(np.random.default_rng(0), 6000, 1)


def test_held_out_subjects_are_deterministic_and_per_dataset():
    c = _ecg_corpus(6, 12)
    a = held_out_subjects(c, 0.3, seed=0)
    assert a == held_out_subjects(c, 0.3, seed=0)
    assert {d for d, _ in a} == {"sim", "real"}
    train, val = c.split(lambda s: (s.dataset, s.subject) in a)
    assert not {s.subject for s in train.signals} & {s.subject for s in val.signals}


# -- pre-training ------------------------------------------------------------------------
def test_masks_cover_about_the_asked_ratio_even_on_tiny_windows():
    rng = np.random.default_rng(0)
    m = span_mask(rng, 1, 1000, ratio=0.5, span=(30, 150))
    assert 0.45 <= m.mean() <= 0.7
    tiny = span_mask(rng, 1, 8, ratio=0.5, span=(4, 16))  # 2 s of EDA at 4 Hz
    assert 0 < tiny.sum() < 8
    p = patch_mask(rng, 4, 1000, ratio=0.5, patch=100)
    assert p.shape == (4, 1000) and p.any()
    assert (p.reshape(4, 10, 100).all(-1) == p.reshape(4, 10, 100).any(-1)).all()  # whole patches


def test_lengths_cover_the_whole_range_and_batches_scale():
    tr = Pretrainer(build_builtin("ecg"), PretrainConfig(encoder="ecg", steps=1, batch_size=16))
    rng = np.random.default_rng(0)
    lengths = [tr.draw_length(rng) for _ in range(400)]
    assert min(lengths) == 2.0 and max(lengths) == 60.0 and all(float(L).is_integer() for L in lengths)
    assert tr._batch_shape(rng, 2.0, 1)[0] > tr._batch_shape(rng, 60.0, 1)[0] >= 2


def test_pretraining_runs_at_varied_lengths_and_is_deterministic(tmp_path):
    corpus = _ecg_corpus(6, 20)
    cfg = PretrainConfig(encoder="ecg", steps=6, batch_size=4, eval_every=3, seed=0, val_frac=0.34,
                         val_windows=6, max_window_s=8.0, stat_windows=40)
    res = Pretrainer(build_builtin("ecg", seed=0), cfg).fit(corpus)
    assert res.steps == 6 and len(res.history) >= 2
    assert all(np.isfinite(h["recon_loss"]) and np.isfinite(h["physio_loss"]) for h in res.history)
    assert set(res.target_stats["mean"]) == set(TARGET_NAMES["ecg"])
    assert "heart_rate_bpm" in res.final_val["val_r2"]
    assert not any(p.requires_grad for p in res.encoder.parameters())  # returned frozen
    again = Pretrainer(build_builtin("ecg", seed=0), cfg).fit(corpus)
    a, b = res.encoder.state_dict(), again.encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], v) for k, v in build_builtin("ecg", seed=0).state_dict().items())

    path = save_pretrained(res, cfg, tmp_path, data_used=corpus.describe(), command="python -m x")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    assert meta["steps"] == "6" and meta["seed"] == "0" and "physiology" in meta["objective"]
    curve = json.loads((tmp_path / "pretrain_ecg.json").read_text())
    assert curve["history"][-1]["step"] == 6 and "val_r2" in curve["final_val"]
    loaded = load_builtin_weights("ecg", path)
    assert torch.equal(loaded.state_dict()["embed.proj.weight"], a["embed.proj.weight"])

    from bioxbridge_core.zoo.card import render_card

    card = render_card("ecg", tmp_path).read_text()
    assert "builtin:ecg" in card and "--steps 6" in card and "(not run)" in card and "2-60 s" in card


def _eda_corpus(n: int = 3, seconds: float = 120.0) -> Corpus:
    from bioxbridge_core.zoo.data import simulate_signal

    rng = np.random.default_rng(0)
    sigs = [make_signal(simulate_signal("EDA", rng, duration_s=seconds, sfreq=32.0)[None], 32.0, PREPS["eda"],
                        kind="eda", dataset="sim", source=f"e{i}", subject=f"p{i}") for i in range(n)]
    return Corpus("eda", 4.0, sigs, {"sim": 1.0})


def test_physiology_loss_reaches_the_encoder_and_can_be_fitted():
    """Physiology loss alone on one fixed batch: gradients reach the encoder and the loss falls."""
    torch.manual_seed(0)
    corpus = _eda_corpus()
    cfg = PretrainConfig(encoder="eda", steps=1, batch_size=8, recon_frac=0.0, val_frac=0.0, stat_windows=40)
    tr = Pretrainer(build_builtin("eda", seed=0), cfg)
    tr.fit_target_stats(corpus, np.random.default_rng(0))
    batch = tr.make_batch(corpus, np.random.default_rng(1), 30.0, count=12)
    dec, head = tr._heads()
    tr.encoder.unfreeze().train()
    before = tr.encoder.embed.proj.weight.detach().clone()
    opt = torch.optim.Adam(list(tr.encoder.parameters()) + list(head.parameters()), lr=3e-3)
    losses = []
    for _ in range(40):
        _, phys = tr._losses(dec, head, batch, np.zeros((0,), bool), 0)
        opt.zero_grad()
        phys.backward()
        opt.step()
        losses.append(float(phys.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert not torch.equal(before, tr.encoder.embed.proj.weight.detach())


def test_eeg_pretraining_with_channel_subsets_keeps_weights_montage_free(tmp_path):
    rng = np.random.default_rng(0)
    names = ("Fp1", "Fz", "Cz", "Pz", "O1", "O2")
    sigs = [make_signal(rng.standard_normal((6, 100 * 70)), 100.0, PREPS["eeg"], kind="eeg", dataset="noise",
                        source=f"r{i}", subject=f"p{i}") for i in range(3)]
    corpus = Corpus("eeg", 100.0, sigs, {"noise": 1.0}, names)
    enc = build_builtin("eeg", ch_names=names, seed=0)
    before = enc.embed.electrodes.clone()
    cfg = PretrainConfig(encoder="eeg", steps=3, batch_size=2, eval_every=1, val_frac=0.0, max_window_s=40,
                         stat_windows=20)
    tr = Pretrainer(enc, cfg)
    assert tr.n_targets == len(TARGET_NAMES["eeg"]) * (1 + enc.embed.electrode_embed.num_embeddings)
    res = tr.fit(corpus)
    assert torch.equal(res.encoder.embed.electrodes, before)
    assert np.isfinite([h["recon_loss"] for h in res.history]).all()
    assert tr._batch_shape(rng, 40.0, 6)[1] <= 4  # long windows use fewer channels
    path = save_pretrained(res, cfg, tmp_path, data_used={"noise": {"signals": 3}})
    small = load_builtin_weights("eeg", path, ch_names=["EEG O1", "EEG Cz", "EEG Fp2"])
    assert torch.equal(small.embed.electrode_embed.weight, res.encoder.embed.electrode_embed.weight)
    assert small.last_tokens(torch.zeros(2, 3, 300)).shape == (2, 9, 128)


def test_eda_pretraining_on_simulated_signals():
    cfg = PretrainConfig(encoder="eda", steps=4, batch_size=4, eval_every=2, val_frac=0.0, stat_windows=40)
    res = Pretrainer(build_builtin("eda"), cfg).fit(_eda_corpus())
    assert cfg.mask_span_s == (1.0, 4.0) and res.steps == 4
    assert np.isfinite([h["physio_loss"] for h in res.history]).all()


# -- probes ---------------------------------------------------------------------------------
def test_previous_eeg_weights_with_a_shorter_time_table_load():
    enc = build_builtin("eeg")
    old = {k: v.clone() for k, v in enc.state_dict().items()}
    old["embed.time_embed.weight"] = torch.ones(30, old["embed.time_embed.weight"].shape[1])
    del old["embed.spec_proj.weight"], old["embed.spec_proj.bias"]  # the spectral branch is newer
    state = _adapt_state(enc, old, "old.safetensors")
    assert torch.equal(state["embed.time_embed.weight"][:30], old["embed.time_embed.weight"])
    assert state["embed.time_embed.weight"].shape[0] == 60
    assert not state["embed.spec_proj.weight"].any()  # zero branch = the older model's function
    del old["norm.weight"]
    with pytest.raises(EncoderError, match="norm.weight"):
        _adapt_state(enc, old, "old.safetensors")


def test_baseline_features_still_measure_physiology():
    f = ecg_hrv_features(_sim("ecg", 10, 100, 72), 100.0)
    assert f.shape == (5,) and 62 <= f[0] <= 82
    sig = _sim("ppg", 10, 50, 90)
    f = ppg_pulse_features((sig - sig.mean()) / sig.std(), 50.0)
    assert 80 <= f[0] <= 100
    t = np.arange(1000) / 100.0
    x = 0.1 * np.random.default_rng(0).standard_normal((3, 1000))
    x[1] += np.sin(2 * np.pi * 10 * t)
    assert np.argmax(eeg_bandpower_features(x, 100.0).reshape(3, 4)[1]) == 2


def test_grouped_folds_never_split_a_subject_and_probe_scores_separable_data():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(12), 10)
    y = np.tile([0] * 7 + [1] * 3, 12)
    feats = rng.standard_normal((120, 5)) + 3 * y[:, None]
    folds = make_folds(y, groups, 4, seed=0)
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
    res = cv_logreg(feats, y, folds)
    assert res["balanced_accuracy_mean"] > 0.9 and len(res["folds"]) == 4
    noise = cv_logreg(rng.standard_normal((120, 5)), y, folds)
    assert noise["balanced_accuracy_mean"] < res["balanced_accuracy_mean"]


# -- shipped weights ------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_shipped_weights_load_with_matching_keys(name):
    path = ASSETS / f"{name}.safetensors"
    if not path.exists():
        pytest.skip(f"{path} not shipped")
    assert path.stat().st_size < 15 * 1024 * 1024
    from safetensors.torch import load_file

    state = load_file(str(path))
    ref = build_builtin(name).state_dict()
    assert set(state) == set(ref)
    assert all(state[k].shape == ref[k].shape for k in ref)
    from bioxbridge_core.models.registry import load_encoder

    ch = ["EEG Fp1", "EEG C3", "EEG Pz", "EEG O2"] if name == "eeg" else None  # any montage, same file
    enc = load_encoder(f"builtin:{name}", ch_names=ch, device="cpu")
    assert torch.equal(enc.state_dict()[next(iter(ref))].cpu(), state[next(iter(ref))])
    if name == "eeg":
        assert enc.spec.n_chans == 4


def test_beat_template_quality_drops_for_beats_unlike_the_others():
    from bioxbridge_core.zoo.physio import beat_template_quality

    fs = 100.0
    t = np.arange(-20, 40) / fs
    beat = np.exp(-(t / 0.02) ** 2)
    x = np.zeros(2000)
    peaks = np.arange(100, 1900, 100)
    for p in peaks:
        x[p - 20:p + 40] += beat
    x[peaks[5] - 20:peaks[5] + 40] = np.random.default_rng(0).standard_normal(60)  # one noise "beat"
    q = beat_template_quality(x, peaks, fs)
    assert q[5] < 0.5 and np.nanmin(np.delete(q, 5)) > 0.95


@pytest.mark.slow
@pytest.mark.realdata
def test_stress_windows_lie_inside_one_label_stretch(shared_data):
    if not (shared_data / "stress_predict").is_dir():
        pytest.skip("stress_predict not in the development data")
    from bioxbridge_core.zoo.data import read_e4_csv, stress_windows

    ws = stress_windows(shared_data, "EDA", window_s=30.0, cache=False)
    spans = stress_label_spans(shared_data)
    assert len(ws) > 500 and set(np.unique(ws.label)) == {0, 1}
    assert ws.x.shape[1:] == (1, 120)  # 30 s at 4 Hz
    start = {s: read_e4_csv(shared_data / "stress_predict" / s / "EDA.csv")[2] for s in np.unique(ws.subject)[:4]}
    for sub, t0, lab in zip(ws.subject, ws.start_s, ws.label):
        if sub not in start:
            continue
        a = start[sub] + t0
        assert any(s0 <= a and a + 30.0 <= s1 and y == lab for s0, s1, y in spans[sub])


def test_summary_table_and_goal_verdicts(tmp_path):
    from bioxbridge_core.zoo.__main__ import build_parser
    from bioxbridge_core.zoo.card import comparison, summary_table

    def res(v):
        return {"balanced_accuracy_mean": v, "balanced_accuracy_std": 0.1, "f1_macro_mean": v, "f1_macro_std": 0.1}

    rep = {"tasks": [
        {"task": "A", "results": {"pretrained": res(0.70), "handcrafted": res(0.705), "random_init": res(0.5)}},
        {"task": "B", "results": {"pretrained": res(0.60), "handcrafted": res(0.55), "handcrafted_us": res(0.65),
                                  "previous": res(0.58), "random_init": res(0.5)}},
    ]}
    (tmp_path / "probe_eda.json").write_text(json.dumps(rep))
    table = summary_table(tmp_path, names=("eda",))
    assert "| `builtin:eda` | A | **0.700** | 0.705 | - | 0.500 | met |" in table  # within one point
    assert "0.550 (µS: 0.650)" in table and "**not met**" in table  # the stronger baseline decides
    text = comparison(rep)
    assert "ties with the hand-crafted baseline" in text and "loses to the baseline on microsiemens" in text
    assert build_parser().parse_args(["pretrain", "--encoder", "eda"]).minutes == 30.0
