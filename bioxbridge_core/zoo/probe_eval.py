"""Frozen linear probes of the built-in encoders on real labelled data.

For each task the same subject-grouped folds and the same classifier
(median imputation, standardisation, L2 logistic regression with balanced
class weights) score three feature sets:

- ``pretrained``: mean-pooled last-layer tokens of the shipped encoder,
- ``random_init``: the same architecture with random weights (what pre-training bought),
- ``handcrafted``: a simple physiological baseline (heart rate / HRV, pulse rate
  and amplitude variability, EEG log band powers).

Tasks: eegmat rest vs mental arithmetic (ECG lead, EEG channels; 10 s
windows, folds grouped by subject) and CinC 2015 true vs false VT alarm
(ECG leads, PLETH; 284-300 s before the alarm, one sample per record:
features averaged over two 10 s windows and over the leads).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_write_json, load_safetensors
from ..baselines.handcrafted import handcrafted_features as _handcrafted
from ..device import resolve_device
from ..errors import EncoderError
from ..models.base import EncoderAdapter, iter_batches
from .data import CINC_ALARM_SPAN_S, PREPS, WindowSet, cinc_windows, eegmat_windows

log = logging.getLogger(__name__)

PROBE_C = 0.1


# -- hand-crafted features --------------------------------------------------------
def handcrafted_features(name: str, x: np.ndarray) -> np.ndarray:
    """Baseline features for windows ``(n, n_chans, n_times)`` of encoder ``name``'s modality."""
    return _handcrafted(x, modality=name.upper(), sfreq=PREPS[name].sfreq)


# -- encoder features ----------------------------------------------------------------
def load_builtin_weights(name: str, weights: str | Path | None, *, ch_names=None, seed: int = 0,
                         device=None) -> EncoderAdapter:
    """``build_builtin`` plus a strict load of ``weights`` (None keeps the random init); frozen."""
    from ..models.builtin import build_builtin

    enc = build_builtin(name, ch_names=ch_names, seed=seed)
    if weights is not None:
        state = load_safetensors(weights)
        missing, unexpected = enc.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise EncoderError(f"{weights}: keys do not match builtin:{name} "
                               f"(missing {missing[:5]}, unexpected {unexpected[:5]}).")
    return enc.to(resolve_device(device)).freeze()


@torch.inference_mode()
def encoder_features(encoder: EncoderAdapter, x: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled last-layer tokens (what the task head sees), ``(n, width)`` float64."""
    out = []
    for sl in iter_batches(len(x), batch_size):
        xb = encoder.check_input(x[sl])
        out.append(encoder.last_tokens(xb).mean(dim=1).double().cpu().numpy())
    return np.concatenate(out)


# -- cross-validated probe ---------------------------------------------------------------
def _metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    try:
        from ..metrics import classification_metrics

        m = classification_metrics(y_true, y_pred, 2)
        return {"balanced_accuracy": float(m["balanced_accuracy"]), "f1_macro": float(m["f1_macro"])}
    except ImportError:
        from sklearn.metrics import balanced_accuracy_score, f1_score

        return {"balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
                "f1_macro": float(f1_score(y_true, y_pred, average="macro", labels=[0, 1], zero_division=0))}


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


def _tasks(name: str, root: Path) -> list[dict]:
    """(task name, windows, per_record flag) for encoder ``name``."""
    tasks = []
    if name in ("ecg", "eeg"):
        kind = name.upper()
        tasks.append({"task": f"eegmat rest vs task ({kind}, 10 s windows)", "ws": eegmat_windows(root, kind),
                      "per_record": False, "groups": "subject"})
    if name in ("ecg", "ppg"):
        kind = name.upper()
        ws = cinc_windows(root, kind, step_s=6.0, span_s=CINC_ALARM_SPAN_S)
        ws = ws.take(np.flatnonzero(ws.label >= 0))
        tasks.append({"task": f"cinc2015 true vs false VT alarm ({'PLETH' if kind == 'PPG' else 'ECG leads'}, "
                              "284-300 s)", "ws": ws, "per_record": True, "groups": "record"})
    return tasks


def run_probe(name: str, *, data_root: str | Path, out_dir: str | Path, weights: str | Path | None = None,
              n_folds: int = 6, seed: int = 0, device=None) -> dict:
    """Probe pre-trained vs random-init encoder vs hand-crafted baseline; writes ``probe_<name>.json``."""
    import time

    out_dir = Path(out_dir)
    weights = Path(weights) if weights is not None else out_dir / f"{name}.safetensors"
    if not weights.exists():
        raise EncoderError(f"{weights}: no pre-trained weights for builtin:{name}; run pretrain first.")
    report: dict = {"encoder": f"builtin:{name}", "weights": str(weights), "n_folds": n_folds, "seed": seed,
                    "classifier": f"median impute + standardise + LogisticRegression(C={PROBE_C}, "
                                  "class_weight='balanced')", "features": "mean-pooled last-layer tokens",
                    "tasks": []}
    for task in _tasks(name, Path(data_root)):
        ws: WindowSet = task["ws"]
        ch = ws.ch_names if name == "eeg" else None
        t0 = time.perf_counter()
        feats = {
            "pretrained": encoder_features(load_builtin_weights(name, weights, ch_names=ch, device=device), ws.x),
            "random_init": encoder_features(load_builtin_weights(name, None, ch_names=ch, seed=seed, device=device),
                                            ws.x),
            "handcrafted": handcrafted_features(name, ws.x),
        }
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
            "n_windows": len(ws), "n_folds": len(folds), "results": results,
            "feature_dims": {k: int(v.shape[1]) for k, v in feats.items()},
            "seconds": round(time.perf_counter() - t0, 1),
        })
        log.info("%s: %s", task["task"], {k: round(v["balanced_accuracy_mean"], 3) for k, v in results.items()})
    atomic_write_json(out_dir / f"probe_{name}.json", report)
    return report
