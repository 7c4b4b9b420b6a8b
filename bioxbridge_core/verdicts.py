"""Plain verdicts per stage: is it fit to go on, and which number decides it.

Each function takes the numbers a stage produced and returns a ``Verdict``: a level
(``go`` / ``caution`` / ``stop``), one plain sentence, and the deciding numbers. The app
and the CLI show them; nothing here trains or reads data. Thresholds are module constants
so the pages, reports and tests use the same ones.

Rules (all "above chance" tests use two standard errors, i.e. about a 95 % one-sided bar):

- **Old model**: its held-out score (balanced accuracy, chance = 1/K) must beat chance by
  ``max(MIN_MARGIN, 2·SE)``; SE is ``fold std / sqrt(folds)`` for subject-grouped CV, else the
  binomial ``sqrt(c(1-c)/n)`` over the evaluated windows (optimistic: windows of one subject are
  correlated). Below a hand-crafted-feature baseline by more than the same margin: caution.
- **Labels**: every class needs ``MIN_WINDOWS_PER_CLASS`` labelled windows in the train split
  (fewer: caution; fewer than 2, or one class: stop).
- **Alignment**: the selected cell's CKA must exceed its shuffled-pairs null by
  ``max(2·null std, MIN_CKA_EXCESS)``; otherwise "no alignment above chance".
- **Bridge**: its agreement with the old model on held-out pairs at the best epoch must beat
  the agreement of always predicting the old model's most common class by
  ``max(MIN_MARGIN, 2·SE)`` (binomial SE over the pair-validation windows).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

LEVELS = ("go", "caution", "stop")
#: smallest gap above chance that counts, whatever the sample size
MIN_MARGIN = 0.05
#: labelled windows per class in the train split below which the head's scores are noise
MIN_WINDOWS_PER_CLASS = 10
#: smallest CKA excess over the shuffled-pairs null that counts as alignment
MIN_CKA_EXCESS = 0.02
#: a best epoch this early in a run of at least MIN_EPOCHS_FOR_EARLY_BEST epochs is flagged
MIN_EPOCHS_FOR_EARLY_BEST = 5


@dataclass(frozen=True)
class Verdict:
    """One stage's verdict.

    ``level``: ``"go"`` (fit to go on), ``"caution"`` (go on knowing the weakness) or ``"stop"``
    (nothing useful can come out of the next stage). ``headline``: one plain sentence.
    ``detail``: the deciding numbers in words. ``numbers``: the same numbers, JSON-ready.
    """

    stage: str
    level: str
    headline: str
    detail: str = ""
    numbers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"verdict level must be one of {LEVELS}, got {self.level!r}")

    @property
    def ok(self) -> bool:
        return self.level == "go"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(float(x))


def chance_level(n_classes: int) -> float:
    """Expected balanced accuracy of a guess that ignores the input: ``1 / n_classes``."""
    if n_classes < 2:
        raise ValueError(f"need at least 2 classes, got {n_classes}")
    return 1.0 / n_classes


def margin(chance: float, *, n: int | None = None, fold_std: float | None = None,
           n_folds: int | None = None) -> float:
    """Gap above ``chance`` a score needs: ``max(MIN_MARGIN, 2·SE)``.

    SE is ``fold_std / sqrt(n_folds)`` when both are given, else ``sqrt(c(1-c)/n)`` over ``n``
    evaluated windows; with neither, ``MIN_MARGIN``.
    """
    se = 0.0
    if _finite(fold_std) and n_folds and n_folds > 1:
        se = float(fold_std) / math.sqrt(n_folds)
    elif n and n > 0:
        se = math.sqrt(chance * (1.0 - chance) / n)
    return max(MIN_MARGIN, 2.0 * se)


def old_model_verdict(score: float | None, *, n_classes: int, n_eval: int | None = None,
                      fold_std: float | None = None, n_folds: int | None = None,
                      baseline: float | None = None, source: str = "held-out subjects",
                      metric: str = "balanced accuracy") -> Verdict:
    """Is the old model (encoder + task head) worth transferring?

    Parameters
    ----------
    score : its held-out ``metric`` (subject-grouped CV mean, or a held-out test split).
    n_classes : number of classes (chance = 1/K for balanced accuracy).
    n_eval : windows the score was computed on (binomial SE when no fold std is given).
    fold_std, n_folds : spread of the CV folds (preferred SE).
    baseline : the same metric of a hand-crafted-feature classifier on the same folds.
    source : where the score comes from, in words ("subject-grouped CV on train").
    """
    if not _finite(score):
        return Verdict("old model", "caution", "The old model has no held-out score yet.",
                       "Train the task head: it is scored on subjects it never saw.")
    chance = chance_level(n_classes)
    need = margin(chance, n=n_eval, fold_std=fold_std, n_folds=n_folds)
    nums = {"score": float(score), "chance": chance, "margin": need, "n_eval": n_eval, "source": source,
            "baseline": float(baseline) if _finite(baseline) else None, "metric": metric}
    where = f"{metric} {score:.3f} on {source}" + (f" (n={n_eval})" if n_eval else "")
    if float(score) - chance <= need:
        return Verdict(
            "old model", "stop", "The old model is at chance on held-out subjects: there is nothing to transfer.",
            f"{where} vs chance {chance:.3f}; it needs more than {chance + need:.3f} to count as above chance. "
            "Improve the old model (more labelled subjects, another encoder, other labels) before bridging.", nums)
    if _finite(baseline) and float(score) < float(baseline) - need:
        return Verdict(
            "old model", "caution",
            "The old model beats chance but loses to simple hand-crafted features.",
            f"{where} vs hand-crafted baseline {baseline:.3f} and chance {chance:.3f}. A bridge can at best "
            "carry over what the old model knows.", nums)
    tail = f"; hand-crafted baseline {baseline:.3f}" if _finite(baseline) else ""
    return Verdict("old model", "go", "The old model is above chance on held-out subjects.",
                   f"{where} vs chance {chance:.3f}{tail}.", nums)


def label_verdict(train_counts: Mapping[str, int], *, test_counts: Mapping[str, int] | None = None,
                  minimum: int = MIN_WINDOWS_PER_CLASS) -> Verdict:
    """Enough labelled windows per class to train (train split) and to score (test split)?

    ``train_counts`` / ``test_counts``: labelled windows per class name in those splits.
    """
    counts = {str(k): int(v) for k, v in train_counts.items()}
    nums = {"train": counts, "test": {str(k): int(v) for k, v in (test_counts or {}).items()}, "minimum": minimum}
    present = {k: v for k, v in counts.items() if v > 0}
    if len(present) < 2:
        have = ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"
        return Verdict("labels", "stop", "The train split does not hold two labelled classes: no task head can "
                       "be trained.", f"Labelled train windows per class: {have}. Add labels or subjects.", nums)
    low = {k: v for k, v in counts.items() if v < minimum}
    per = ", ".join(f"{k}: {v}" for k, v in counts.items())
    if any(v < 2 for v in counts.values()):
        return Verdict("labels", "stop", "A class has fewer than 2 labelled windows in the train split.",
                       f"Labelled train windows per class: {per}.", nums)
    if low:
        names = ", ".join(f"'{k}' ({v})" for k, v in low.items())
        return Verdict("labels", "caution", f"Few labelled windows: {names} in the train split, below the "
                       f"suggested minimum of {minimum} per class.",
                       f"Labelled train windows per class: {per}. The task head will be fitted, but its "
                       "held-out score will be noisy.", nums)
    if test_counts is not None and sum(1 for v in test_counts.values() if v > 0) < 2:
        return Verdict("labels", "caution", "Enough labelled training windows, but the test split has fewer "
                       "than two labelled classes: held-out scores will be missing or one-sided.",
                       f"Labelled train windows per class: {per}.", nums)
    return Verdict("labels", "go", f"At least {minimum} labelled training windows per class.",
                   f"Labelled train windows per class: {per}.", nums)


def alignment_verdict(cka: float | None, null_mean: float | None, null_std: float | None = None, *,
                      n_pairs: int | None = None, new_position: str = "", old_position: str = "",
                      unprobed: str | None = None) -> Verdict:
    """Does the selected (read, write) cell align better than shuffled pairs?

    ``cka``: debiased linear CKA of the selected cell; ``null_mean``/``null_std``: the same cell's
    CKA over shuffled (unpaired) windows. ``numbers["baseline"]`` is the one baseline the page shows
    on the metric and on the heatmap; ``numbers["threshold"]`` the value a cell must exceed.
    ``unprobed``: why stage 1 could not probe the old model's pseudo labels (e.g. they are all one
    class); the verdict is then "stop" whatever the CKA, because similar features carry no task that
    the old model does not have.
    """
    cell = f"{new_position} → {old_position}".strip(" →") or "the selected cell"
    if not _finite(cka) or not _finite(null_mean):
        return Verdict("alignment", "caution", "No alignment score yet.", "Compute the alignment.",
                       {"cka": None, "baseline": None, "threshold": None, "n_pairs": n_pairs})
    spread = float(null_std) if _finite(null_std) else 0.0
    threshold = float(null_mean) + max(2.0 * spread, MIN_CKA_EXCESS)
    nums = {"cka": float(cka), "baseline": float(null_mean), "null_std": spread, "threshold": threshold,
            "n_pairs": n_pairs}
    at_n = f" at n={n_pairs} pairs" if n_pairs else ""
    if unprobed:
        return Verdict(
            "alignment", "stop", "Nothing to transfer: the old model's pseudo labels on the pairs could not be "
            "probed.",
            f"{unprobed[0].upper()}{unprobed[1:]}. CKA of {cell} is {cka:.3f} vs shuffled-pairs baseline "
            f"{null_mean:.3f}, but similar features cannot carry a task the old model does not show here.",
            {**nums, "unprobed": unprobed})
    if float(cka) <= threshold:
        return Verdict(
            "alignment", "stop", "No alignment above chance: the two models' features at the chosen positions "
            "share no more linear structure than shuffled pairs do.",
            f"CKA of {cell} is {cka:.3f} vs shuffled-pairs baseline {null_mean:.3f}; it needs more than "
            f"{threshold:.3f}{at_n}. A bridge trained here is unlikely to carry the task over.", nums)
    return Verdict("alignment", "go", "The chosen positions align above chance.",
                   f"CKA of {cell} is {cka:.3f} vs shuffled-pairs baseline {null_mean:.3f} "
                   f"(threshold {threshold:.3f}{at_n}).", nums)


def alignment_result_verdict(alignment: Any, new_position: str | None = None,
                             old_position: str | None = None) -> Verdict:
    """``alignment_verdict`` for one cell of an ``AlignmentResult`` (default: its selected cell).

    Reads the cell's debiased CKA, its shuffled-pairs null and the probe status (stage 1 could not
    probe when ``probe_cv == "none"``; the first note says why). Raises ``ValueError`` for a position
    the result does not hold.
    """
    news, olds = list(alignment.new_positions), list(alignment.old_positions)
    rd = new_position or alignment.new_position
    wr = old_position or alignment.old_position
    i, j = news.index(rd), olds.index(wr)
    std = np.asarray(alignment.null_cka_std)
    unprobed = ((alignment.notes[0] if alignment.notes else "stage 1 could not probe")
                if getattr(alignment, "probe_cv", "") == "none" else None)
    return alignment_verdict(float(np.asarray(alignment.cka)[i, j]), float(np.asarray(alignment.null_cka)[i, j]),
                             float(std[i, j]) if std.size else None, n_pairs=alignment.n_pairs,
                             new_position=rd, old_position=wr, unprobed=unprobed)


def majority_share(predictions: Sequence[int] | np.ndarray) -> float | None:
    """Share of the most common class in ``predictions`` (agreement of a constant guess); None if empty."""
    p = np.asarray(predictions)
    if p.size == 0:
        return None
    return float(np.unique(p, return_counts=True)[1].max() / p.size)


def best_epoch_row(history: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The history row with the lowest pair-validation loss (train loss when there is none)."""
    rows = [r for r in history if _finite(r.get("val_loss")) or _finite(r.get("train_loss"))]
    if not rows:
        return None
    return min(rows, key=lambda r: float(r["val_loss"]) if _finite(r.get("val_loss")) else float(r["train_loss"]))


def bridge_verdict(history: Sequence[Mapping[str, Any]], *, chance_agreement: float | None = None,
                   n_val: int | None = None, epochs: int | None = None) -> Verdict:
    """Did the bridge learn to say what the old model says, on held-out pairs?

    ``history``: per-epoch rows with ``val_agreement`` (share of pair-validation windows where the
    bridged prediction equals the old model's); ``chance_agreement``: the old model's most common
    class share on those windows (what a constant bridge scores); ``n_val``: their number.
    """
    best = best_epoch_row(history)
    if best is None or not _finite(best.get("val_agreement")):
        return Verdict("bridge", "caution", "No agreement with the old model measured yet.",
                       "It appears after the first epoch (it needs the old task head).")
    agree = float(best["val_agreement"])
    epoch = int(best.get("epoch", 0))
    nums = {"agreement": agree, "best_epoch": epoch, "chance_agreement": chance_agreement, "n_val": n_val,
            "epochs": epochs or len(history)}
    base = f"At the best epoch ({epoch}) the bridge agrees with the old model on {agree:.0%} of held-out pairs"
    if _finite(chance_agreement):
        need = margin(float(chance_agreement), n=n_val)
        nums["margin"] = need
        if agree - float(chance_agreement) <= need:
            return Verdict(
                "bridge", "stop", "The bridge does no better than always predicting the old model's most common "
                "class.", f"{base}; a constant guess agrees on {chance_agreement:.0%} (needs more than "
                f"{min(1.0, chance_agreement + need):.0%}).", nums)
    n_epochs = epochs or len(history)
    if epoch == 1 and n_epochs >= MIN_EPOCHS_FOR_EARLY_BEST:
        return Verdict("bridge", "caution", "The best epoch is the first: later epochs only made the held-out "
                       "loss worse.", f"{base}. Try a lower learning rate or other positions.", nums)
    tail = f"; a constant guess agrees on {chance_agreement:.0%}" if _finite(chance_agreement) else ""
    return Verdict("bridge", "go", "The bridge agrees with the old model above chance on held-out pairs.",
                   f"{base}{tail}.", nums)


# -- a whole pipeline run (``run`` in the command line, report.json) -------------------------------------------
def temperature_at_bound(confidence: Mapping[str, Any] | None, *, rel: float = 0.01) -> bool:
    """True when a fitted confidence temperature sits at (within ``rel`` of) the edge of its search range
    (``calibration.T_BOUNDS``): the fit found no signal, so the probabilities say nothing (about 1/K)."""
    from .calibration import T_BOUNDS

    t = (confidence or {}).get("temperature")
    if not _finite(t):
        return False
    return float(t) >= T_BOUNDS[1] * (1.0 - rel) or float(t) <= T_BOUNDS[0] * (1.0 + rel)


def run_verdicts(report: Mapping[str, Any], *, alignment: Any = None,
                 history: Sequence[Mapping[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """The three stage verdicts of a pipeline report: ``{"old model", "alignment", "bridge": Verdict.to_dict()}``.

    ``report``: a ``pipeline.run_pipeline`` report (``label_names``, ``old_model.assessment``, ``oracle``,
    ``bridge`` with ``agreement_chance``/``n_val``/``epochs``). ``alignment``: the run's ``AlignmentResult``
    (matrices ``cka``/``null_cka``/``null_cka_std`` over ``new_positions`` × ``old_positions``);
    ``history``: the bridge's per-epoch rows. The old model is judged on its subject-grouped CV
    assessment when there is one, else on the held-out test split.
    """
    n_classes = max(2, len(report.get("label_names") or []))
    assessment = (report.get("old_model") or {}).get("assessment") or {}
    cv = assessment.get("old_model") if isinstance(assessment.get("old_model"), Mapping) else None
    if cv is not None:
        hand = assessment.get("handcrafted") if isinstance(assessment.get("handcrafted"), Mapping) else {}
        old = old_model_verdict(
            cv.get("balanced_accuracy_mean", cv.get("balanced_accuracy")), n_classes=n_classes,
            n_eval=assessment.get("n_windows"), fold_std=cv.get("balanced_accuracy_sd"),
            n_folds=assessment.get("n_folds"), baseline=(hand or {}).get("balanced_accuracy_mean",
                                                                          (hand or {}).get("balanced_accuracy")),
            source=f"subject-grouped CV on train ({assessment.get('n_subjects', '?')} subjects)")
    else:
        test = (report.get("oracle") or {}).get("metrics") or {}
        old = old_model_verdict(test.get("balanced_accuracy"), n_classes=n_classes, n_eval=test.get("n"),
                                source="the held-out test subjects")
    if alignment is not None:
        align = alignment_result_verdict(alignment)
    else:
        align = alignment_verdict(None, None)
    b = report.get("bridge") or {}
    bridge = bridge_verdict(history or [], chance_agreement=b.get("agreement_chance"), n_val=b.get("n_val"),
                            epochs=b.get("epochs"))
    return {v.stage: v.to_dict() for v in (old, align, bridge)}


def format_verdict_line(v: Mapping[str, Any]) -> str:
    """``"bridge: STOP — headline detail"``: one line per stage for the command line."""
    return f"{v['stage']}: {str(v['level']).upper()} — {v['headline']} {v.get('detail') or ''}".rstrip()


def trust_warning(report: Mapping[str, Any] | None, confidence: Mapping[str, Any] | None = None) -> str | None:
    """Why a run's predictions are not to be trusted, in one sentence; None when there is no reason.

    Reasons: the bridge verdict stored in ``report["verdicts"]`` is not "go", or the confidence
    temperature (``confidence`` or ``report["bridge"]["confidence_calibration"]``) hit its search bound.
    """
    report = report or {}
    confidence = confidence or (report.get("bridge") or {}).get("confidence_calibration")
    why = []
    bridge = (report.get("verdicts") or {}).get("bridge")
    if bridge and bridge.get("level") != "go":
        detail = str(bridge.get("detail") or "").rstrip(".")
        why.append(f"the bridge verdict is {str(bridge['level']).upper()}: {str(bridge['headline']).rstrip('.')}"
                   + (f" ({detail})" if detail else ""))
    if temperature_at_bound(confidence):
        why.append(f"the confidence temperature hit its bound (T={float(confidence['temperature']):.5g}), so the "
                   "probabilities carry no information")
    if not why:
        return None
    return "predictions are not trustworthy: " + "; ".join(why) + "."
