"""Render ``MODEL_CARD_<name>.md`` from the measured JSON reports.

Every number in the tables comes from ``pretrain_<name>.json`` / ``probe_<name>.json`` or is measured
while rendering (file size, load time); the ``WHY`` paragraphs were written after reading them
(numbers quoted there are from the runs they describe).
"""

from __future__ import annotations

import time
from pathlib import Path

from .._io import atomic_write_bytes, read_json
from .data import EDA_MIN_US, PREPS

ATTRIBUTION = {
    "eegmat": "EEG During Mental Arithmetic Tasks v1.0.0 (PhysioNet): Zyma I, Tukaev S, Seleznov I, et al. "
              "Electroencephalograms during Mental Arithmetic Task Performance. Data 2019;4(1):14. "
              "Licence: Open Data Commons Attribution v1.0 (ODC-By 1.0).",
    "cinc2015_vt": "PhysioNet/Computing in Cardiology Challenge 2015 (training set, VT alarms): Clifford GD, "
                   "Silva I, Moody B, et al. The PhysioNet/Computing in Cardiology Challenge 2015: Reducing False "
                   "Arrhythmia Alarms in the ICU. Computing in Cardiology 2015;42:273-276. PhysioNet open access.",
    "stress_predict": "Stress-Predict Dataset: Iqbal T, Simpkin AJ, Roshan D, et al. Stress Monitoring Using "
                      "Wearable Sensors: A Pilot Study and Stress-Predict Dataset. Sensors 2022;22(21):8135. "
                      "MIT licence.",
    "physionet": "Goldberger AL, et al. PhysioBank, PhysioToolkit, and PhysioNet. Circulation 2000;101(23):e215-e220.",
    "neurokit2": "Simulated signals and physiology targets: NeuroKit2 (Makowski D, et al. Behavior Research "
                 "Methods 2021;53:1689-1696).",
}

BASELINES = {
    "ecg": "heart rate, SDNN, RMSSD and RR range from NeuroKit2 R-peaks, plus the dominant spectral frequency "
           "(5 features per window)",
    "ppg": "pulse rate, inter-beat SD, RMSSD, pulse-amplitude coefficient of variation and SD from NeuroKit2 "
           "PPG peaks on the z-scored window (5 features; gain-free)",
    "eeg": "log Welch band power (delta 1-4, theta 4-8, alpha 8-13, beta 13-30 Hz) per channel (76 features)",
    "eda": "tonic mean, tonic slope, phasic (SCR) peak rate and phasic SD from NeuroKit2's smooth-median "
           "decomposition (4 features), once on the z-scored window the encoder sees and once on the filtered "
           "signal in microsiemens (where the tonic level is kept)",
}

ROW_LABELS = {"pretrained": "**shipped weights**", "previous": "previous weights (masked reconstruction only)",
              "random_init": "same architecture, random weights", "handcrafted": "hand-crafted baseline",
              "handcrafted_us": "hand-crafted baseline on microsiemens"}

#: Interpretation written after reading the measured numbers of the shipped run (see each card).
WHY: dict[str, str] = {
    "ecg": """**Reading the numbers.** On eegmat rest vs task the label is carried mostly by heart rate (about
+14 bpm during the task). The previous weights, trained only to fill masked gaps, left it barely readable
(0.624, level with random weights); with the physiology targets the pooled features predict heart rate on
held-out subjects with R² 0.85 and the probe reaches the five hand-crafted HR/HRV features (0.714 vs 0.706,
within one point, so "ties"). On the CinC alarms R-peak features stay near chance (wide-complex VT and
the artefacts behind false alarms defeat the beat detector), while every convolutional encoder is well
above it; the previous weights score 4 points more than the shipped ones there (0.764 vs 0.722), within one
fold SD (0.086) but a real possibility: masked reconstruction alone may keep more of the artefact and
waveform detail that separates false alarms.

**Recipe history (honest record).** Run 1 (`--minutes 30`, physiology weight 1) planned its steps from a
timing probe taken while the shared machine was heavily loaded, so it stopped after 1007 steps and 13.5
minutes; its probe gave 0.678 on eegmat and 0.709 on CinC (held-out heart-rate R² 0.80). After reading
that probe we fixed the step count to fill the budget (2100 steps, 23.4 minutes) and doubled the
physiology weight; the shipped weights are from that second run. Because the change was decided after
seeing run 1's eegmat figure, the eegmat number above is not a clean held-out estimate of the recipe.""",
    "ppg": """**Reading the numbers.** On the CinC alarms the hand-crafted pulse features are below chance (pulse
rate and amplitude barely differ between true and false VT alarms here, and the peak detector is
unreliable on weak or irregular pulses), while the shipped encoder gains 5 points over the previous
weights and 10 over random ones (132 records, 27 true alarms, so fold SDs are large). On Stress-Predict
the label is only weakly visible in the wrist BVP (the dataset's authors report heart rate up by a median
of about 3 bpm): all rows lie between 0.53 and 0.58, the shipped encoder first by 4 points over the
baseline and by one to two points over the previous and random weights, all within one fold SD. Pulse
rate is linearly readable from the pooled features (held-out R² 0.96), but between-subject differences in
resting pulse are as large as the stress effect, so a subject-grouped probe cannot use it well.

**Recipe history.** One run, with the settings fixed before any PPG probe was read (physiology weight 2
and the 30-minute time box, as decided for the second ECG run).""",
    "eeg": """**Reading the numbers.** The shipped encoder beats the 76 log band powers by 2.3 points (0.638 vs
0.615) and the previous weights by the same margin, with a smaller spread over folds than the baseline.
The physiology targets are what a band-power baseline measures, and on held-out subjects the pooled
features now predict the montage-mean log relative band powers with R² 0.52 (theta) to 0.96 (alpha).

**Recipe history (honest record).** Run 1 used the previous patch embedding (a small conv per 1 s patch)
with physiology weight 1 (643 steps, 26.3 min): held-out band-power R² averaged 0.50 (beta -0.15, theta
0.37) and the probe gave 0.570, below the baseline (0.615) and even random weights (0.583). We then added
the spectral branch (a linear map of each patch's log power spectrum, as BIOT tokenises EEG) and doubled
the physiology weight; the shipped weights are from this second run, which hit the hard time limit (1.25 x
the 30-minute box) after 3072 of 3714 planned steps because the shared machine slowed down after the
timing probe, so its learning rate was cut off at about 8 % of the peak instead of decaying to zero.
Both changes were decided after reading run 1's probe, so the eegmat number is not a clean held-out
estimate of the recipe.""",
    "eda": """**Reading the numbers.** All four rows lie within one fold SD of each other (0.564-0.589): the shipped
encoder ties the four NeuroKit2 features on the z-scored window (0.582 vs 0.586) and beats them on
microsiemens (0.564), which meets the goal as worded, but it also ties random weights of the same
architecture (0.589), so pre-training bought nothing measurable on this task. Pre-training did teach what
it was asked: on held-out subjects the pooled features predict tonic slope, phasic share and SCR amplitude
with R² 0.94-0.95 and the SCR rate with R² 0.51; those quantities barely separate stress from rest in
30 s windows of this dataset, across subjects. The label is better carried by slow changes over minutes
within each subject, which a 30 s window and subject-grouped folds cannot see; per-subject calibration
(`run --calibration subject`) is the project's remedy for that.

**Recipe history.** One run, with the settings fixed before any EDA probe was read (physiology weight 2,
the 30-minute time box, as for PPG).""",
}


def _fmt(m: dict, key: str) -> str:
    return f"{m[key + '_mean']:.3f} ± {m[key + '_std']:.3f}"


def probe_table(report: dict) -> str:
    """Markdown table of a ``probe_<name>.json`` report."""
    rows = ["| task | n (groups) | features | balanced accuracy | macro-F1 |", "|---|---|---|---|---|"]
    for t in report["tasks"]:
        for i, (k, m) in enumerate(t["results"].items()):
            first = f"{t['task']} | {t['n_samples']} ({t['n_groups']} {t['group_by']}s, {t['n_folds']} folds)"
            rows.append(f"| {first if i == 0 else ' | '} | {ROW_LABELS.get(k, k)} ({t['feature_dims'][k]} dims) | "
                        f"{_fmt(m, 'balanced_accuracy')} | {_fmt(m, 'f1_macro')} |")
    return "\n".join(rows)


def verdict(p: float, ref: float) -> str:
    """'beats' (> +1 point), 'ties with' (within one point) or 'loses to'."""
    return "beats" if p - ref > 0.01 else ("loses to" if ref - p > 0.01 else "ties with")


def comparison(report: dict) -> str:
    """One sentence per task: the shipped weights against the baseline, the previous weights and random init."""
    out = []
    for t in report["tasks"]:
        r = t["results"]
        p = r["pretrained"]["balanced_accuracy_mean"]
        parts = []
        for key, label in (("handcrafted", "the hand-crafted baseline"),
                           ("handcrafted_us", "the baseline on microsiemens"),
                           ("previous", "the previous weights"), ("random_init", "random weights")):
            if key in r:
                q = r[key]["balanced_accuracy_mean"]
                parts.append(f"{verdict(p, q)} {label} ({q:.3f}, {100 * (p - q):+.1f} points)")
        goal = all(p - r[k]["balanced_accuracy_mean"] >= -0.01 for k in ("handcrafted", "handcrafted_us") if k in r)
        out.append(f"- {t['task']}: the shipped encoder ({p:.3f}) " + "; ".join(parts)
                   + f". Goal (match or beat the hand-crafted baseline): **{'met' if goal else 'not met'}**.")
    return "\n".join(out)


def goal_summary(report: dict) -> list[tuple[str, float, float, bool]]:
    """(task, encoder, best baseline, met) per task: 'met' = within one point of the best baseline or above."""
    rows = []
    for t in report["tasks"]:
        r = t["results"]
        p = r["pretrained"]["balanced_accuracy_mean"]
        hc = max(r[k]["balanced_accuracy_mean"] for k in ("handcrafted", "handcrafted_us") if k in r)
        rows.append((t["task"], p, hc, p - hc >= -0.01))
    return rows


def previous_published(out: Path, name: str) -> str:
    """The previous weights' card figures as they were published (old task definitions), for the record."""
    path = out / "previous" / f"probe_{name}.json"
    if not path.exists():
        return ""
    rep = read_json(path)
    lines = ["| task (as defined then) | previous weights | hand-crafted | random weights |", "|---|---|---|---|"]
    for t in rep["tasks"]:
        r = t["results"]
        lines.append(f"| {t['task']} | {_fmt(r['pretrained'], 'balanced_accuracy')} | "
                     f"{_fmt(r['handcrafted'], 'balanced_accuracy')} | {_fmt(r['random_init'], 'balanced_accuracy')} |")
    return ("For the record, the previous card published these balanced accuracies (file "
            f"`previous/probe_{name}.json`; CinC then averaged two 10 s windows, 284-294 and 290-300 s):\n\n"
            + "\n".join(lines))


def measure_load_seconds(name: str, out: Path, repeats: int = 3) -> float:
    """Median wall time of building the encoder and loading ``<out>/<name>.safetensors`` (imports done)."""
    from .probe_eval import load_builtin_weights

    load_builtin_weights(name, out / f"{name}.safetensors", device="cpu")  # warm imports
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        enc = load_builtin_weights(name, out / f"{name}.safetensors", device="cpu")
        _ = enc.positions  # the dry pass load_encoder also runs
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def render_card(name: str, out_dir: str | Path, *, discussion: str | None = None) -> Path:
    """Write ``MODEL_CARD_<name>.md`` from the weights, ``pretrain_<name>.json`` and ``probe_<name>.json``."""
    from ..models.builtin import DESCRIPTIONS, build_builtin
    from .physio import TARGET_NAMES

    out = Path(out_dir)
    pre = read_json(out / f"pretrain_{name}.json")
    probe_path = out / f"probe_{name}.json"
    probe = read_json(probe_path) if probe_path.exists() else None
    enc = build_builtin(name)
    spec = enc.spec
    lo, hi = spec.window_range
    prep = PREPS[name]
    meta, hist, cfg = pre["metadata"], pre["history"], pre["config"]
    size_mb = (out / f"{name}.safetensors").stat().st_size / 1e6
    load_s = measure_load_seconds(name, out)
    pos = "\n".join(f"| `{p.name}` | {p.in_layout} {tuple(p.in_shape)} | {p.out_layout} {tuple(p.out_shape)} |"
                    for p in enc.positions)
    tokens = []
    for L in (lo, hi):
        last = build_builtin(name).set_window(L).positions[-1]
        tokens.append(f"{L:g} s: {last.out_tokens} tokens")
    data_rows = "\n".join(
        f"| {d} | {v['signals']} | {v['subjects']} | {v['hours']:.2f} | {v['weight']:.2f} |"
        for d, v in pre["data"].items())
    sources = [ATTRIBUTION[d] for d in ("eegmat", "cinc2015_vt", "stress_predict") if d in pre["data"]]
    sources += [ATTRIBUTION["physionet"], ATTRIBUTION["neurokit2"]]
    first, last = hist[0], hist[-1]
    final = pre.get("final_val") or {}
    r2 = final.get("val_r2", {})
    r2_rows = "\n".join(f"| `{k}` | {pre['target_stats']['defined'].get(k, float('nan')):.0%} | {v:.2f} |"
                        for k, v in r2.items())
    targets = ", ".join(f"`{t}`" for t in TARGET_NAMES[name]) + (" (per channel and montage mean)" if name == "eeg" else "")
    mask_desc = (f"random contiguous spans of {cfg['mask_span_s'][0]:g}-{cfg['mask_span_s'][1]:g} s covering about "
                 f"{cfg['mask_ratio']:.0%} of each channel" if name != "eeg" or cfg.get("eeg_mask") == "span" else
                 f"random (channel, 1 s patch) cells, about {cfg['mask_ratio']:.0%} of them")
    if discussion is None:
        discussion = (comparison(probe) if probe else "") + ("\n\n" + WHY[name] if name in WHY else "")
    montage = ("any subset of 10-20 electrodes (names such as `EEG Fp1`, `Fp1`, `T3`/`T7`); the weights hold an "
               "electrode-embedding table over all 10-20/10-10 names and no montage" if name == "eeg" else "1 channel")
    band = (f"low-pass {prep.band_hz[1]:g} Hz" if prep.band_hz[0] is None
            else f"band-pass {prep.band_hz[0]:g}-{prep.band_hz[1]:g} Hz")
    flat = f"a flat stretch of >= {prep.flat_s:g} s" + (f", values below {EDA_MIN_US:g} uS (no skin contact)"
                                                       if prep.min_value is not None else "")
    replay = (f"python -m bioxbridge_core.zoo pretrain --encoder {name} --seed {meta['seed']} --steps {meta['steps']} "
              f"--lr {cfg['lr']:g} --batch-size {cfg['batch_size']} --mask-ratio {cfg['mask_ratio']:g} "
              f"--mask-span {cfg['mask_span_s'][0]:g} {cfg['mask_span_s'][1]:g} "
              f"--physio-weight {cfg['physio_weight']:g}" + (f" --eeg-mask {cfg['eeg_mask']}" if name == "eeg" else "")
              + " --threads 1 --data /work/shared/data --out assets/encoders")
    probe_note = ""
    if probe:
        probe_note = (f"Classifier for every row: {probe['classifier']}, same folds for every row "
                      f"(grouped, stratified, seed {probe['seed']}). Mean ± SD over folds. Previous weights: "
                      f"{probe.get('previous_weights') or 'none (new encoder)'}.")
    text = f"""# Model card: `builtin:{name}`

{DESCRIPTIONS[name]}

Shipped as `assets/encoders/{name}.safetensors` ({size_mb:.1f} MB, float32, the adapter's `state_dict()`;
load it with `bioxbridge_core.models.registry.load_encoder("builtin:{name}")`). Building the model and
loading this file took {load_s:.2f} s (median of 3, imports already done, dry pass included; measured when
this card was rendered, on the shared development machine).

## Architecture

- Built by `bioxbridge_core.models.builtin.build_builtin("{name}")`; config: `{enc.config}`.
- Parameters: {enc.n_params():,}.
- Window lengths: any from {lo:g} to {hi:g} s with the same weights (`SignalSpec(min_window_s={lo:g},
  max_window_s={hi:g})`); last-layer tokens at {tokens[0]}, at {tokens[1]}.
- Positions (stages a bridge may read/write), per window, batch excluded
  (shapes for the default {spec.window_s:g} s window{' and 19-channel montage' if name == 'eeg' else ''}):

| position | input | output |
|---|---|---|
{pos}

## Input contract

- Modality {prep.modality}, {prep.sfreq:g} Hz ({'recordings at other rates are resampled' if name != 'eda'
  else 'recordings at 4 Hz and above are low-passed and resampled to 4 Hz'}), {lo:g}-{hi:g} s windows, {montage}.
- Preprocessing used in pre-training and probes (the product's `data.preprocess.filter_signal`): zero-phase
  4th-order Butterworth {band} at the file's own rate, polyphase resampling to {prep.sfreq:g} Hz, z-score per
  window and channel (`normalisation="zscore-window"`); windows with NaN, {flat} or no variance are dropped.

## Pre-training data

| dataset | signals | subjects/records | good hours | share of windows |
|---|---|---|---|---|
{data_rows}

Windows are drawn per step: a dataset by its share (so one large database does not drown the others),
a signal by its length, a start whose whole window is good. Held out for the validation curves:
{len(pre['target_stats'].get('held_out_subjects', []))} subjects/records (about {cfg['val_frac']:.0%} per dataset).
Only the *development half* of each database (in `/work/shared/data`) was used; labels were never used in
pre-training.{" CinC records were cut at 280 s, so the labelled 284-300 s alarm span of the probe was never seen." if "cinc2015_vt" in pre["data"] else ""}
{"The eegmat / Stress-Predict recordings used by the probes *were* seen (unlabelled) in pre-training; those probes are therefore transductive with respect to the recordings (not to the labels)." if any(d in pre["data"] for d in ("eegmat", "stress_predict")) else ""}

Attribution:

{chr(10).join('- ' + s for s in sources)}

## Objective and why

Two losses on every step, on windows of one length drawn log-uniformly from {lo:g}-{hi:g} s (whole seconds;
batch size scaled so each step holds about the same number of tokens{'; long EEG windows use fewer channels, a random subset of 3-19 electrodes per step' if name == 'eeg' else ''}):

1. **Masked reconstruction** on {cfg['recon_frac']:.0%} of each batch: {mask_desc} are set to zero; a linear
   decoder maps each last-layer token back to its stretch of signal; MSE on the masked samples.
2. **Physiology regression** on the other {1 - cfg['recon_frac']:.0%} (unmasked): one linear layer on the
   mean-pooled last-layer tokens predicts {targets}, computed per window by NeuroKit2/SciPy
   (`bioxbridge_core/zoo/physio.py`), standardised over the training windows; NaN targets (too few beats or
   responses in a short window) are masked out; weight {cfg['physio_weight']:g}.

Why: the previous weights, trained on masked reconstruction alone, learnt local waveform shape and left
the quantities that carry the labels (heart rate, HRV, band power) barely readable from pooled features
(see the previous-weights rows below). Asking the encoder to predict what a physiologist measures, from the
very features the task head and the bridge read, makes those quantities linearly readable (PaPaGei,
Pillai et al. ICLR 2025, pre-trains PPG this way); masked reconstruction keeps the tokens informative about
the waveform beyond those few numbers. The decoder and the regression head are thrown away.

## Training

- Steps: {meta['steps']} (planned {meta['planned_steps']}), batch {meta['batch_size']} windows at 10 s, AdamW lr
  {meta['lr']} with 5% warm-up then cosine decay, weight decay {cfg['weight_decay']}, gradient clipping 1.0,
  seed {meta['seed']}.
- Wall time: **{meta['minutes']} min** of training on {meta['hardware']} (torch {meta['torch']}); the machine's 2 cores
  were shared with other jobs, so the time box bought fewer steps than an idle machine would. Building the
  annotated corpus (NeuroKit2 over every recording) is cached and not counted.
- Masked-sample MSE (z-scored units; 1.0 = predicting zero): train {first['recon_loss']:.3f} -> {last['recon_loss']:.3f};
  held-out subjects {first.get('val_recon', float('nan')):.3f} -> {final.get('val_recon', float('nan')):.3f}.
  Standardised physiology loss: train {first['physio_loss']:.3f} -> {last['physio_loss']:.3f}.
- Held-out subjects, regression head at the end (R², windows of 4, 10 and 30 s; share of windows where the
  target is defined):

| target | defined | R² |
|---|---|---|
{r2_rows}

Full curves: `pretrain_{name}.json`.

## Linear-probe evaluation (frozen features, real data)

Features: mean-pooled last-layer tokens (what the project's `TaskHead` pools). {probe_note}
Baseline: {BASELINES[name]}.

{probe_table(probe) if probe else '(not run)'}

{discussion}

{previous_published(out, name)}

## Reproduce

```bash
export BIOXBRIDGE_SHARED_DATA=/work/shared/data
# the run that wrote the shipped file:
{meta.get('command') or '(not recorded)'}
# replay it step for step:
{replay}
python -m bioxbridge_core.zoo probe --encoder {name} --data /work/shared/data --out assets/encoders
python -m bioxbridge_core.zoo card --encoder {name} --out assets/encoders
```

`--steps` replays the run (window lengths, batches, masks, dropout and schedule depend only on the seed
and the step count; bit-identical on the same CPU and thread count, `--threads 1`); `--minutes M` turns a
time box into a step count with a short timing probe.
{"The run hit its hard time limit before the planned step count; a replay with --steps " + meta['steps'] + " uses a schedule for that many steps and is therefore not bit-identical. " if meta['steps'] != meta['planned_steps'] else ""}
## Limitations

- Small data: the development halves only, no external corpora ({sum(v['hours'] for v in pre['data'].values()):.1f} hours of
  signal, {sum(v['subjects'] for k, v in pre['data'].items() if not k.startswith('neurokit2')):,} real subjects/records).
- About {float(meta['minutes']):.0f} CPU minutes of training: far from converged; the numbers above are what
  this budget buys, not what the architecture can do.
- Probes are small (tens of subjects or a few hundred records); fold SDs are large, so differences of a
  few points are not meaningful.
- Not a medical device; not validated for clinical use.
"""
    path = out / f"MODEL_CARD_{name}.md"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def summary_table(out_dir: str | Path, names: tuple[str, ...] = ("ecg", "ppg", "eeg", "eda")) -> str:
    """Markdown table of every built-in's probe (balanced accuracy) for the README, from ``probe_<name>.json``."""
    out = Path(out_dir)
    rows = ["| encoder | task | shipped | hand-crafted | previous weights | random weights | goal |",
            "|---|---|---|---|---|---|---|"]
    for name in names:
        path = out / f"probe_{name}.json"
        if not path.exists():
            continue
        rep = read_json(path)
        for t in rep["tasks"]:
            r = t["results"]

            def ba(k: str) -> str:
                return f"{r[k]['balanced_accuracy_mean']:.3f}" if k in r else "-"
            hc = ba("handcrafted") + (f" (µS: {ba('handcrafted_us')})" if "handcrafted_us" in r else "")
            met = [g for g in goal_summary({"tasks": [t]})][0][3]
            rows.append(f"| `builtin:{name}` | {t['task']} | **{ba('pretrained')}** | {hc} | {ba('previous')} | "
                        f"{ba('random_init')} | {'met' if met else '**not met**'} |")
    return "\n".join(rows)
