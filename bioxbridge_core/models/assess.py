"""Is the old model worth transferring? Subject-grouped cross-validation on the ``train`` split.

``assess_old_model`` scores the old model (its encoder + the linear head, trained exactly
as the pipeline trains it: same L2 search, class weights, calibration and, if asked,
fine-tuning) by subject-grouped cross-validation on the labelled ``train`` windows, next
to a hand-crafted-feature logistic regression on the *same folds*
(``baselines.handcrafted``: heart rate/HRV for ECG, pulse features for PPG, band powers
for EEG, tonic/phasic features for EDA). A user sees before anything is transferred
whether the old model beats chance and how it compares with what a physiologist would
measure: the bridge can never do better than the old model (METHOD.md, "oracle").

Folds: ``sklearn.model_selection.StratifiedGroupKFold`` (subjects never straddle folds,
class balance kept where subjects allow). The old model's frozen features are computed
once; with ``fine_tune`` every fold fine-tunes its own copy of the encoder (k times the
cost of fine-tuning once).
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError
from .subject_norm import calibrate, check_calibration

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None] | None
#: the hand-crafted baseline's regularisation grid (inverse strength, chosen by inner grouped CV)
HANDCRAFTED_CS = (0.01, 0.1, 1.0, 10.0)


def _folds(y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    k = min(int(n_folds), len(np.unique(groups)))
    if k < 2:
        raise ConfigError(f"subject-grouped CV needs at least 2 subjects with labelled windows; got {k}.")
    try:
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(seed))
        folds = list(cv.split(np.zeros(len(y)), y, groups))
    except ValueError:  # fewer windows per class than folds: plain grouped folds
        from sklearn.model_selection import GroupKFold

        folds = list(GroupKFold(n_splits=k).split(np.zeros(len(y)), y, groups))
    return [(tr, te) for tr, te in folds if len(np.unique(y[tr])) >= 2]


def _summary(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, folds, n_classes: int) -> dict:
    """Pooled out-of-fold metrics, mean +- SD over folds, and one score per subject."""
    from ..metrics import classification_metrics

    per_fold = [classification_metrics(y[te], pred[te], n_classes) for _, te in folds]
    done = np.zeros(len(y), dtype=bool)
    for _, te in folds:
        done[te] = True
    pooled = classification_metrics(y[done], pred[done], n_classes)
    per_subject = {}
    for s in np.unique(groups[done]):
        m = done & (groups == s)
        # balanced accuracy where the subject has several classes, else plain accuracy
        score = (classification_metrics(y[m], pred[m], n_classes)["balanced_accuracy"]
                 if len(np.unique(y[m])) > 1 else float(np.mean(y[m] == pred[m])))
        per_subject[str(s)] = {"score": round(float(score), 4), "n_windows": int(m.sum()),
                               "classes": sorted(int(c) for c in np.unique(y[m]))}
    out = {"balanced_accuracy": pooled["balanced_accuracy"], "f1_macro": pooled["f1_macro"],
           "confusion": pooled["confusion"], "per_subject": per_subject, "per_fold": []}
    for k in ("balanced_accuracy", "f1_macro"):
        vals = np.array([f[k] for f in per_fold])
        out[f"{k}_mean"], out[f"{k}_sd"] = float(vals.mean()), float(vals.std())
    out["per_fold"] = [{"balanced_accuracy": f["balanced_accuracy"], "f1_macro": f["f1_macro"], "n": f["n"]}
                       for f in per_fold]
    return out


def handcrafted_cv(features: np.ndarray, y_all: np.ndarray, groups: np.ndarray, folds, *, calibration: str = "none",
                   seed: int = 0) -> np.ndarray:
    """Out-of-fold predictions (``-1`` where never tested) of the hand-crafted baseline.

    ``features`` ``(n, p)`` for all windows (NaN allowed); ``y_all`` with ``-1`` for unlabelled rows;
    ``folds`` index the labelled rows. Median imputation + standardisation + class-balanced
    ``LogisticRegressionCV`` (C from ``HANDCRAFTED_CS`` by inner grouped 3-fold CV, balanced
    accuracy), all scikit-learn. With ``calibration="subject"`` the imputed features are first
    calibrated per subject over all its windows, as the old model's are.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f = np.asarray(features, dtype=np.float64)
    f = np.where(np.isfinite(f), f, np.nan)
    if calibration == "subject":  # impute with each column's median first (calibration needs numbers)
        med = np.nanmedian(np.where(np.isnan(f).all(axis=0), 0.0, f), axis=0)
        f = np.where(np.isnan(f), np.nan_to_num(med)[None, :], f)
        f = calibrate(torch.from_numpy(f), groups).numpy()
    lab = np.flatnonzero(y_all >= 0)
    fl, yl, gl = f[lab], y_all[lab], groups[lab]
    pred = np.full(len(lab), -1, dtype=np.int64)
    for tr, te in folds:
        n_inner = min(3, len(np.unique(gl[tr])))
        if n_inner >= 2:
            inner = [(a, b) for a, b in GroupKFold(n_splits=n_inner).split(fl[tr], yl[tr], gl[tr])
                     if len(np.unique(yl[tr][a])) >= 2]
            clf = LogisticRegressionCV(Cs=list(HANDCRAFTED_CS), cv=inner or 2, class_weight="balanced",
                                       scoring="balanced_accuracy", max_iter=5000)
        else:
            clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000)
        model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), clf)
        with warnings.catch_warnings():  # scikit-learn 1.9 announces API changes of LogisticRegressionCV
            warnings.simplefilter("ignore", FutureWarning)
            model.fit(fl[tr], yl[tr])
        pred[te] = model.predict(fl[te])
    return pred


def assess_old_model(old_encoder, train, *, n_folds: int = 5, seed: int = 0, calibration: str = "none",
                     fine_tune: bool = False, fine_tune_epochs: int = 5, fine_tune_lr: float = 3e-5,
                     handcrafted: bool = True, compare_calibration: bool = True,
                     on_progress: Progress = None) -> dict:
    """Subject-grouped CV score of the old model on ``train``, next to a hand-crafted baseline.

    Parameters
    ----------
    old_encoder : the old-modality encoder (never modified: fine-tuning works on copies).
    train : ``PairedWindows`` of the ``train`` split -- all its windows, labelled or not
        (unlabelled ones count only for per-subject calibration statistics); only ``x_old`` is used.
    n_folds : at most this many subject-grouped folds (fewer when there are fewer subjects).
    seed : fold assignment and fine-tuning shuffles.
    calibration : ``"none"`` or ``"subject"``, as in the pipeline (applies to both models).
    fine_tune, fine_tune_epochs, fine_tune_lr : assess the fine-tuned old model instead of the
        frozen encoder + linear head (each fold fine-tunes a copy).
    handcrafted : also score the hand-crafted baseline (skipped, with a note, for a modality
        without hand-crafted features).
    compare_calibration : for the frozen old model, also score the other calibration setting on
        the same folds (cheap: same features), reported under ``alternatives`` and in the verdict.
    on_progress : optional ``callback(step, total, message)``.

    Returns
    -------
    dict with ``n_windows`` (labelled), ``n_subjects``, ``n_folds``, ``folds`` (how),
    ``label_names``, ``chance`` (1 / n_classes), ``calibration``, ``fine_tuned``, ``modality``,
    ``old_model`` and ``handcrafted`` (each: ``balanced_accuracy`` and ``f1_macro`` of the
    pooled out-of-fold predictions, ``*_mean``/``*_sd`` over folds, ``per_fold``, ``per_subject``
    {subject: {score, n_windows, classes}} and ``confusion``; ``handcrafted`` is None when
    unavailable), ``alternatives`` ({"calibration=<other>": same summary of the old model} or {}),
    ``alternatives_handcrafted`` (the hand-crafted baseline with that other calibration), ``seconds``,
    ``verdict`` (one sentence) and ``notes``.

    Raises ``ConfigError`` when fewer than 2 subjects or classes have labelled windows.
    """
    from ..baselines.handcrafted import handcrafted_features
    from .heads import fit_head_on_features, pooled_last, train_task_head

    t0 = time.perf_counter()
    calibration = check_calibration(calibration, owner="assess_old_model")
    y_all = np.asarray(train.labels())
    groups = np.asarray(train.subjects).astype(str)
    lab = np.flatnonzero(y_all >= 0)
    if lab.size == 0 or len(np.unique(y_all[lab])) < 2:
        raise ConfigError("assess_old_model: the train split needs labelled windows of at least 2 classes.")
    names = list(train.label_names)
    n_classes = len(names)
    yl, gl = y_all[lab], groups[lab]
    folds = _folds(yl, gl, n_folds, seed)
    if not folds:
        raise ConfigError("assess_old_model: no fold has two classes in its training part; add subjects.")
    total = len(folds) + 2
    notes: list[str] = []
    if on_progress:
        on_progress(0, total, "old model: computing features")

    pred_old = np.full(lab.size, -1, dtype=np.int64)
    alternatives: dict = {}
    if not fine_tune:
        z_all = pooled_last(old_encoder, train.x_old)
        if compare_calibration:
            other = "subject" if calibration == "none" else "none"
            pred_alt = np.full(lab.size, -1, dtype=np.int64)
            for tr, te in folds:
                y_fold = np.full(len(y_all), -1)
                y_fold[lab[tr]] = y_all[lab[tr]]
                head = fit_head_on_features(z_all, y_fold, groups=groups, n_classes=n_classes, label_names=names,
                                            calibration=other, seed=seed)
                with torch.no_grad():
                    pred_alt[te] = head.logits_from_pooled(z_all, groups).argmax(dim=1).cpu().numpy()[lab[te]]
            alternatives[f"calibration={other}"] = _summary(yl, pred_alt, gl, folds, n_classes)
    for i, (tr, te) in enumerate(folds):
        fit_rows = np.zeros(len(y_all), dtype=bool)
        fit_rows[lab[tr]] = True
        y_fold = np.where(fit_rows, y_all, -1)  # test-fold windows keep only their calibration role
        if fine_tune:
            enc = copy.deepcopy(old_encoder)
            head = train_task_head(enc, train.x_old, y_fold, label_names=names, groups=groups, seed=seed,
                                   calibration=calibration, fine_tune=True, epochs=fine_tune_epochs,
                                   lr_encoder=fine_tune_lr)
            logits = head.logits(enc, train.x_old, subjects=groups)
        else:
            head = fit_head_on_features(z_all, y_fold, groups=groups, n_classes=n_classes, label_names=names,
                                        calibration=calibration, seed=seed)
            with torch.no_grad():
                logits = head.logits_from_pooled(z_all, groups)
        pred_old[te] = logits.argmax(dim=1).cpu().numpy()[lab[te]]
        if on_progress:
            on_progress(1 + i, total, f"old model: fold {i + 1}/{len(folds)}")
    old_res = _summary(yl, pred_old, gl, folds, n_classes)

    hand_res, alternatives_hand = None, {}
    modality = getattr(old_encoder.spec, "modality", None)
    if handcrafted:
        if on_progress:
            on_progress(total - 1, total, "hand-crafted baseline")
        try:
            feats = handcrafted_features(np.asarray(train.x_old), modality=modality, sfreq=old_encoder.spec.sfreq)
        except ConfigError as exc:
            notes.append(f"no hand-crafted baseline: {exc}")
        else:
            try:
                pred_h = handcrafted_cv(feats, y_all, groups, folds, calibration=calibration, seed=seed)
                hand_res = _summary(yl, pred_h, gl, folds, n_classes)
                for name in alternatives:
                    other = name.split("=", 1)[1]
                    pred_h = handcrafted_cv(feats, y_all, groups, folds, calibration=other, seed=seed)
                    alternatives_hand[name] = _summary(yl, pred_h, gl, folds, n_classes)
            except ValueError as exc:  # scikit-learn refuses folds this small
                notes.append(f"no hand-crafted baseline: {exc}")
    chance = 1.0 / n_classes
    out = {"n_windows": int(lab.size), "n_subjects": int(len(np.unique(gl))), "n_folds": len(folds),
           "folds": "subject-grouped (StratifiedGroupKFold)", "label_names": names, "chance": chance,
           "calibration": calibration, "fine_tuned": bool(fine_tune), "modality": modality,
           "encoder": getattr(old_encoder, "encoder_name", ""), "old_model": old_res, "handcrafted": hand_res,
           "alternatives": alternatives, "alternatives_handcrafted": alternatives_hand,
           "seconds": round(time.perf_counter() - t0, 2), "notes": notes}
    out["verdict"] = verdict(out)
    if on_progress:
        on_progress(total, total, "assessment done")
    return out


def verdict(result: dict) -> str:
    """One sentence on whether the old model is worth transferring (thresholds: chance + 0.10, hand-crafted - 0.05)."""
    old = result["old_model"]["balanced_accuracy"]
    chance = result["chance"]
    hand = result["handcrafted"]["balanced_accuracy"] if result.get("handcrafted") else None
    head = f"Old model {old:.2f} balanced accuracy by subject-grouped CV (chance {chance:.2f}"
    head += f", hand-crafted {hand:.2f})" if hand is not None else ")"
    tip = ""
    for name, alt in (result.get("alternatives") or {}).items():
        if alt["balanced_accuracy"] > old + 0.05:
            tip = f" With {name} it reaches {alt['balanced_accuracy']:.2f}."
    if old < chance + 0.10:
        return (head + ": close to chance, so there is little to transfer; try calibration, fine-tuning or more "
                       "labelled data." + tip)
    if hand is not None and old < hand - 0.05:
        return (head + ": above chance but below simple hand-crafted features; transfer works, but a stronger old "
                       "model would carry more." + tip)
    return head + ": worth transferring." + tip


#: ``calibration="auto"`` takes per-subject calibration when it beats none by at least this much
AUTO_MARGIN = 0.02


def choose_calibration(result: dict) -> tuple[str, str]:
    """``("subject" | "none", reason)`` from an assessment made with ``calibration="none"`` and
    ``compare_calibration=True``: subject calibration when its subject-grouped CV balanced accuracy
    beats none's by at least ``AUTO_MARGIN`` (calibration has a cost at prediction: an upload must
    span several states), else none.
    """
    none = result["old_model"]["balanced_accuracy"]
    alt = (result.get("alternatives") or {}).get("calibration=subject")
    if result.get("calibration") != "none" or alt is None:
        return "none", "no comparison available; calibration off"
    sub = alt["balanced_accuracy"]
    choice = "subject" if sub >= none + AUTO_MARGIN else "none"
    return choice, (f"old model by subject-grouped CV on train: {none:.3f} without, {sub:.3f} with per-subject "
                    f"calibration -> {choice} (needs +{AUTO_MARGIN:.2f} to switch it on)")


def with_calibration(result: dict, calibration: str) -> dict:
    """The assessment re-centred on ``calibration``: its old-model and hand-crafted scores become the main
    ones (the previous main ones move to ``alternatives``) and the verdict is redone. Unchanged when it
    already is that calibration or has no such alternative."""
    key = f"calibration={calibration}"
    if result.get("calibration") == calibration or key not in (result.get("alternatives") or {}):
        return result
    out = dict(result)
    back = f"calibration={result['calibration']}"
    out["alternatives"] = {back: result["old_model"]}
    out["alternatives_handcrafted"] = ({back: result["handcrafted"]} if result.get("handcrafted") else {})
    out["old_model"] = result["alternatives"][key]
    out["handcrafted"] = (result.get("alternatives_handcrafted") or {}).get(key, result.get("handcrafted"))
    out["calibration"] = calibration
    out["verdict"] = verdict(out)
    return out
