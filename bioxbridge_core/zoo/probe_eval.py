"""Frozen linear probes of the built-in encoders on real labelled data.

For each task the same subject-grouped folds and the same classifier (median imputation,
standardisation, L2 logistic regression with balanced class weights) score these feature sets:

- ``pretrained``: mean-pooled last-layer tokens of the weights being shipped,
- ``previous``: the same for the previously shipped weights (from git history, when they exist),
- ``random_init``: the same architecture with random weights (what pre-training bought),
- ``handcrafted``: the project's hand-crafted physiological baseline (``baselines.handcrafted``)
  on the same windows the encoder sees (z-scored); for EDA also ``handcrafted_us`` on the
  filtered signal in microsiemens (the tonic level, which z-scoring removes).

Tasks (every development task an encoder's modality can see):

- eegmat rest vs mental arithmetic (ECG lead; 19 EEG channels): 10 s windows, folds by subject;
- CinC 2015 true vs false VT alarm (each ECG lead; PLETH): the labelled 284-300 s span as one
  16 s window per lead, features averaged over leads, one sample per record;
- Stress-Predict stress vs rest (wrist BVP; EDA): 30 s windows lying fully inside a stretch of
  constant label (``labels.csv``, one label per second), folds by subject.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write_json, load_safetensors
from ..baselines.handcrafted import handcrafted_features as _handcrafted
from ..device import resolve_device
from ..errors import EncoderError
from ..models.base import EncoderAdapter, iter_batches
from ..paths import REPO_ROOT
from .data import CINC_ALARM_SPAN_S, PREPS, WindowSet, cinc_windows, eegmat_windows, stress_windows

log = logging.getLogger(__name__)

PROBE_C = 0.1
#: the commit whose assets/encoders/*.safetensors are "the previous weights" (masked reconstruction only)
PREVIOUS_WEIGHTS_REF = "628ffaf82b2766e8b3317ca04c8e9a05761a50a8"
STRESS_WINDOW_S = 30.0
CINC_WINDOW_S = CINC_ALARM_SPAN_S[1] - CINC_ALARM_SPAN_S[0]


# -- hand-crafted features --------------------------------------------------------
def handcrafted_features(name: str, x: np.ndarray) -> np.ndarray:
    """Baseline features for windows ``(n, n_chans, n_times)`` of encoder ``name``'s modality."""
    return _handcrafted(x, modality=name.upper(), sfreq=PREPS[name].sfreq)


# -- encoder features ----------------------------------------------------------------
def _adapt_state(enc: EncoderAdapter, state: dict, source: str) -> dict:
    """Fit an older state dict to the current architecture where only a table grew or a branch was added.

    The EEG temporal-embedding table grew from 30 to 60 rows (1 s patches, windows up to 60 s); the
    rows an older file lacks keep the current initialisation (they were never trained there). The
    EEG spectral patch branch (``embed.spec_proj``) is new: an older file gets it as zeros, which
    reproduces the older model's function exactly. Any other mismatch is an error naming the keys.
    """
    own = enc.state_dict()
    out = dict(state)
    for k in own:
        if k not in state and k.startswith("embed.spec_proj."):
            out[k] = torch.zeros_like(own[k])
    for k, v in state.items():
        if k in own and v.dim() == 2 and own[k].dim() == 2 and v.shape[1] == own[k].shape[1] \
                and v.shape[0] < own[k].shape[0] and k.endswith("time_embed.weight"):
            grown = own[k].clone()
            grown[: v.shape[0]] = v
            out[k] = grown
    missing = [k for k in own if k not in out]
    unexpected = [k for k in out if k not in own]
    wrong = [k for k in own if k in out and tuple(out[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise EncoderError(f"{source}: keys do not match {enc.encoder_name} "
                           f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}).")
    return out


def load_builtin_weights(name: str, weights: str | Path | None, *, ch_names=None, seed: int = 0,
                         device=None) -> EncoderAdapter:
    """``build_builtin`` plus a strict load of ``weights`` (None keeps the random init); frozen."""
    from ..models.builtin import build_builtin

    enc = build_builtin(name, ch_names=ch_names, seed=seed)
    if weights is not None:
        enc.load_state_dict(_adapt_state(enc, load_safetensors(weights), str(weights)), strict=True)
    return enc.to(resolve_device(device)).freeze()


def previous_weights(name: str, ref: str | None = PREVIOUS_WEIGHTS_REF, *, folder: Path | None = None) -> Path | None:
    """The previously shipped ``<name>.safetensors`` extracted from git history (None when absent)."""
    if not ref:
        return None
    folder = folder or Path(tempfile.mkdtemp(prefix="bioxbridge_prev_"))
    path = folder / f"previous_{name}.safetensors"
    try:
        blob = subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"{ref}:assets/encoders/{name}.safetensors"],
                              check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        log.info("no previous weights for builtin:%s at %s", name, ref)
        return None
    path.write_bytes(blob)
    return path


@torch.inference_mode()
def encoder_features(encoder: EncoderAdapter, x: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Mean-pooled last-layer tokens (what the task head sees), ``(n, width)`` float64."""
    out = []
    for sl in iter_batches(len(x), batch_size):
        xb = encoder.check_input(x[sl])
        out.append(encoder.last_tokens(xb).mean(dim=1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


# -- cross-validated probe ---------------------------------------------------------------
def _metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    from ..metrics import classification_metrics

    m = classification_metrics(y_true, y_pred, 2)
    return {"balanced_accuracy": float(m["balanced_accuracy"]), "f1_macro": float(m["f1_macro"])}


def make_folds(y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Subject-grouped, class-stratified folds (deterministic for ``seed``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_folds = min(n_folds, len(np.unique(groups)))
    cv = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y)), y, groups))


def cv_logreg(features: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Fit the probe on each fold's training part; metrics on its held-out groups (mean, std, per fold)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    per_fold = []
    for tr, te in folds:
        clf = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                            LogisticRegression(C=PROBE_C, class_weight="balanced", max_iter=5000))
        clf.fit(features[tr], y[tr])
        per_fold.append(_metrics(y[te], clf.predict(features[te])))
    out: dict = {"folds": per_fold}
    for k in ("balanced_accuracy", "f1_macro"):
        vals = np.array([f[k] for f in per_fold])
        out[f"{k}_mean"], out[f"{k}_std"] = float(vals.mean()), float(vals.std())
    return out


def _per_record(ws: WindowSet, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average window features over windows and leads of each record: (features, labels, groups)."""
    recs = np.unique(ws.subject)
    f = np.stack([np.nanmean(feats[ws.subject == r], axis=0) for r in recs])
    y = np.array([ws.label[ws.subject == r][0] for r in recs])
    return f, y, recs


def probe_tasks(name: str, root: Path) -> list[dict]:
    """The development tasks encoder ``name`` can see: task name, windows, grouping (see module docstring)."""
    tasks = []
    if name in ("ecg", "eeg"):
        kind = name.upper()
        tasks.append({"task": f"eegmat rest vs task ({kind}, 10 s windows)", "ws": eegmat_windows(root, kind),
                      "per_record": False, "groups": "subject"})
    if name in ("ecg", "ppg"):
        kind = name.upper()
        ws = cinc_windows(root, kind, step_s=CINC_WINDOW_S, span_s=CINC_ALARM_SPAN_S, window_s=CINC_WINDOW_S)
        ws = ws.take(np.flatnonzero(ws.label >= 0))
        tasks.append({"task": f"cinc2015 true vs false VT alarm ({'PLETH' if kind == 'PPG' else 'ECG leads'}, "
                              "284-300 s, one 16 s window)", "ws": ws, "per_record": True, "groups": "record"})
    if name in ("ppg", "eda"):
        kind = name.upper()
        ws = stress_windows(root, kind, window_s=STRESS_WINDOW_S)
        task = {"task": f"stress_predict stress vs rest ({'wrist BVP' if kind == 'PPG' else 'EDA'}, "
                        f"{STRESS_WINDOW_S:g} s windows)", "ws": ws, "per_record": False, "groups": "subject"}
        if name == "eda":
            raw = stress_windows(root, kind, window_s=STRESS_WINDOW_S, normalise=False)
            if not (np.array_equal(raw.start_s, ws.start_s) and np.array_equal(raw.subject, ws.subject)):
                raise EncoderError("stress_predict: z-scored and microsiemens windows differ; clear the zoo cache.")
            task["raw_x"] = raw.x
        tasks.append(task)
    return tasks


def run_probe(name: str, *, data_root: str | Path, out_dir: str | Path, weights: str | Path | None = None,
              previous: str | Path | None = "git", n_folds: int = 6, seed: int = 0, device=None) -> dict:
    """Probe shipped vs previous vs random-init weights vs hand-crafted baseline; writes ``probe_<name>.json``.

    ``previous``: a safetensors path, ``"git"`` (the file at ``PREVIOUS_WEIGHTS_REF``) or None (skip).
    """
    import time

    out_dir = Path(out_dir)
    weights = Path(weights) if weights is not None else out_dir / f"{name}.safetensors"
    if not weights.exists():
        raise EncoderError(f"{weights}: no pre-trained weights for builtin:{name}; run pretrain first.")
    prev_path = previous_weights(name) if previous == "git" else (Path(previous) if previous else None)
    report: dict = {"encoder": f"builtin:{name}", "weights": str(weights), "n_folds": n_folds, "seed": seed,
                    "previous_weights": (f"git {PREVIOUS_WEIGHTS_REF[:10]}:assets/encoders/{name}.safetensors"
                                         if previous == "git" and prev_path else (str(prev_path) if prev_path else None)),
                    "classifier": f"median impute + standardise + LogisticRegression(C={PROBE_C}, "
                                  "class_weight='balanced')", "features": "mean-pooled last-layer tokens",
                    "tasks": []}
    for task in probe_tasks(name, Path(data_root)):
        ws: WindowSet = task["ws"]
        ch = ws.ch_names if name == "eeg" else None
        t0 = time.perf_counter()
        feats = {"pretrained": encoder_features(load_builtin_weights(name, weights, ch_names=ch, device=device), ws.x)}
        if prev_path is not None:
            feats["previous"] = encoder_features(load_builtin_weights(name, prev_path, ch_names=ch, device=device), ws.x)
        feats["random_init"] = encoder_features(load_builtin_weights(name, None, ch_names=ch, seed=seed,
                                                                     device=device), ws.x)
        feats["handcrafted"] = handcrafted_features(name, ws.x)
        if "raw_x" in task:
            feats["handcrafted_us"] = handcrafted_features(name, task["raw_x"])
        if task["per_record"]:
            per = {k: _per_record(ws, v) for k, v in feats.items()}
            y, groups = per["pretrained"][1], per["pretrained"][2]
            feats = {k: v[0] for k, v in per.items()}
        else:
            y, groups = ws.label, ws.subject
        folds = make_folds(y, groups, n_folds, seed)
        results = {k: cv_logreg(v, y, folds) for k, v in feats.items()}
        report["tasks"].append({
            "task": task["task"], "n_samples": int(len(y)), "n_groups": int(len(np.unique(groups))),
            "group_by": task["groups"], "class_counts": np.bincount(y, minlength=2).tolist(),
            "n_windows": len(ws), "window_s": float(ws.x.shape[-1] / PREPS[name].sfreq), "n_folds": len(folds),
            "results": results, "feature_dims": {k: int(v.shape[1]) for k, v in feats.items()},
            "seconds": round(time.perf_counter() - t0, 1),
        })
        log.info("%s: %s", task["task"], {k: round(v["balanced_accuracy_mean"], 3) for k, v in results.items()})
    atomic_write_json(out_dir / f"probe_{name}.json", report)
    return report
