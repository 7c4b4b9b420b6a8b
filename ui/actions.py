"""App-side glue between widgets and the engine: one function per button.

Each function calls the engine and persists what it produced on disk (the app
workspace or the run store), so every page and a reload see the same result.
No algorithm lives here; when the engine's ``pipeline`` grows a matching step,
these become one-line calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bioxbridge_core._io import atomic_write_json, read_json

from . import cache, state
from .errors import engine

Progress = Callable[[int, int, str], None] | None


def _encoder(settings: dict, side: str, device: str | None) -> Any:
    """The frozen old/new encoder of the active dataset, at the window length in use."""
    return cache.encoder_for(settings[f"{side}_encoder"], settings["manifest_path"], side, device,
                             settings.get("window_s"))


# -- old task head (Models page) ---------------------------------------------------------------------------
#: the head options and the ``PipelineConfig`` fields whose defaults they take
HEAD_OPTION_FIELDS = {"calibration": "calibration", "fine_tune": "old_finetune", "epochs": "old_finetune_epochs",
                      "lr": "old_finetune_lr"}
CALIBRATION_CHOICES = ("auto", "none", "subject")
ENCODER_STATE = "old_encoder.safetensors"


def head_defaults() -> dict:
    """The head options' defaults: those of the headless pipeline (``PipelineConfig``)."""
    import dataclasses

    PipelineConfig = engine("pipeline", "PipelineConfig", feature="Pipeline settings")
    fields = {f.name: f.default for f in dataclasses.fields(PipelineConfig)}
    return {k: fields[f] for k, f in HEAD_OPTION_FIELDS.items()}


def head_options(settings: dict) -> dict:
    """The old task head's options for ``settings`` (``settings["head"]`` over the defaults), normalised:
    ``calibration`` (auto/none/subject), ``fine_tune`` and, only when fine-tuning, ``epochs`` and ``lr``.

    Raises ``ConfigError`` for an unknown calibration or out-of-range fine-tuning settings.
    """
    from bioxbridge_core.errors import ConfigError

    opts = {**head_defaults(), **{k: v for k, v in (settings.get("head") or {}).items() if k in HEAD_OPTION_FIELDS}}
    if opts["calibration"] not in CALIBRATION_CHOICES:
        raise ConfigError(f"Per-subject calibration must be one of {', '.join(CALIBRATION_CHOICES)}; "
                          f"got {opts['calibration']!r}.")
    if not opts["fine_tune"]:
        return {"calibration": str(opts["calibration"]), "fine_tune": False}
    epochs, lr = int(opts["epochs"]), float(opts["lr"])
    if epochs < 1 or not 0 < lr <= 1:
        raise ConfigError(f"Fine-tuning needs at least 1 epoch and an encoder learning rate in (0, 1]; got "
                          f"{epochs} epochs, {lr:g}.")
    return {"calibration": str(opts["calibration"]), "fine_tune": True, "epochs": epochs, "lr": lr}


def _data_key(settings: dict) -> dict:
    return {k: settings.get(k) for k in ("manifest_path", "old_encoder", "new_encoder", "window_s", "step_s")}


def head_dir(settings: dict) -> Path:
    """Workspace folder of the old task head for these data settings, old encoder and head options
    (calibration, fine-tuning): a different choice is a different head."""
    key = state.fingerprint({k: settings[k] for k in ("manifest_path", "old_encoder", "window_s", "step_s")},
                            head_options(settings), state.mtime(settings["manifest_path"]))
    return state.workspace("heads", key)


def head_report(settings: dict) -> dict | None:
    """The saved head report (metrics per split, confusion, label names, ``old_model``), or None if not trained yet."""
    path = head_dir(settings) / "report.json"
    return read_json(path) if path.exists() else None


def encoder_state_path(settings: dict) -> Path | None:
    """The fine-tuned old encoder saved with the head, or None (head not trained, or trained frozen)."""
    path = head_dir(settings) / ENCODER_STATE
    return path if path.exists() else None


def old_model_encoder(settings: dict, device: str | None) -> Any:
    """The old encoder as the saved head reads it: the fine-tuned copy when the head fine-tuned it, else frozen."""
    return cache.encoder_for(settings["old_encoder"], settings["manifest_path"], "old", device,
                             settings.get("window_s"), state_path=encoder_state_path(settings))


def _rows(pw: Any, split: str, calibration: str) -> Any:
    """The windows of ``split`` to feed: all of them when calibrating per subject (each subject's
    statistics come from all its windows, labelled or not), else the labelled ones (as the pipeline does)."""
    part = pw.split(split)
    return part if calibration == "subject" else part.labelled()


def choose_head_calibration(settings: dict, opts: dict, pw: Any, enc: Any) -> tuple[str, str | None]:
    """``(calibration, reason)``: the requested one, or for ``auto`` the engine's choice by subject-grouped CV
    of the frozen old model on ``train`` (``pipeline.resolve_calibration``, as ``python -m bioxbridge_core run``)."""
    if opts["calibration"] != "auto":
        return opts["calibration"], None
    PipelineConfig, PreparedData, resolve_calibration = engine(
        "pipeline", "PipelineConfig", "PreparedData", "resolve_calibration", feature="Per-subject calibration")
    cfg = PipelineConfig(old=settings["old_encoder"], new=settings["new_encoder"], manifest=settings["manifest_path"],
                         calibration="auto", old_finetune=opts["fine_tune"], assess_old=False,
                         **({"old_finetune_epochs": opts["epochs"], "old_finetune_lr": opts["lr"]}
                            if opts["fine_tune"] else {}))
    cal, note, _ = resolve_calibration(cfg, PreparedData(pw, enc, None, settings["manifest_path"]))
    return cal, note


def train_old_head(settings: dict, *, device: str | None, on_progress: Progress = None, seed: int = 0) -> dict:
    """Train the old model's task head on the train split with the chosen options; evaluate on val and test;
    save the head, the fine-tuned encoder (if any) and the report in ``head_dir``."""
    import copy

    fit_old_head = engine("pipeline", "fit_old_head", feature="Task-head training")
    evaluate_head, save_encoder_state = engine("models.heads", "evaluate_head", "save_encoder_state",
                                               feature="Task-head training")
    opts = head_options(settings)
    pw = cache.paired_windows_for(settings)
    frozen = _encoder(settings, "old", device)
    cal, reason = choose_head_calibration(settings, opts, pw, frozen)
    # fine-tuning changes the encoder in place: work on a copy, the cached frozen one is shared by every page
    enc = copy.deepcopy(frozen) if opts["fine_tune"] else frozen
    tr = _rows(pw, "train", cal)
    head = fit_old_head(enc, tr, seed=seed, on_progress=on_progress, calibration=cal, fine_tune=opts["fine_tune"],
                        **({"epochs": opts["epochs"], "lr_encoder": opts["lr"]} if opts["fine_tune"] else {}))
    old_model = {"calibration": cal, "calibration_requested": opts["calibration"], "calibration_reason": reason,
                 "fine_tuned": bool(head.fine_tuned),
                 **({"finetune_epochs": opts["epochs"], "finetune_lr": opts["lr"]} if opts["fine_tune"] else {})}
    report: dict[str, Any] = {"label_names": list(pw.label_names), "n_train": int((tr.labels() >= 0).sum()),
                              "old_model": old_model, "splits": {}}
    for split in ("train", "val", "test"):
        ev = _rows(pw, split, cal)
        if len(ev) == 0 or not (ev.labels() >= 0).any():
            continue
        report["splits"][split] = {"n": int((ev.labels() >= 0).sum()),
                                   **evaluate_head(enc, head, ev.x_old, ev.labels(), subjects=ev.subjects)}
    folder = head_dir(settings)
    if head.fine_tuned:  # first: a saved fine-tuned head always finds its encoder
        save_encoder_state(enc, folder / ENCODER_STATE)
    head.save(folder / "head.safetensors")
    atomic_write_json(folder / "report.json", report)
    return report


def head_summary(report: dict | None) -> str | None:
    """One line on how the saved head's old model was built: calibration (why, for auto) and fine-tuning."""
    om = (report or {}).get("old_model")
    if not om:
        return None
    cal = om.get("calibration", "none")
    text = "Per-subject calibration: **on**" if cal == "subject" else "Per-subject calibration: **off**"
    if om.get("calibration_requested") == "auto":
        text += f" (auto: {om.get('calibration_reason') or 'no reason recorded'})"
    if om.get("fine_tuned"):
        text += (f" · Old encoder: **fine-tuned** with the head ({om.get('finetune_epochs')} epochs, encoder "
                 f"learning rate {om.get('finetune_lr'):g})")
    else:
        text += " · Old encoder: **frozen** (only the linear head was trained)"
    return text


# -- alignment (Alignment page) ----------------------------------------------------------------------------
def alignment_dir(settings: dict) -> Path:
    """Workspace folder of the alignment result for these data settings and head options."""
    key = state.fingerprint(_data_key(settings), head_options(settings), state.mtime(settings["manifest_path"]))
    return state.workspace("alignment", key)


def run_alignment(settings: dict, *, device: str | None, on_progress: Progress = None) -> Any:
    """Probe + CKA selection on the pair split, against pseudo labels of the saved old head; saved to disk."""
    align = engine("alignment", "align", feature="Layer alignment")
    TaskHead, pseudo_labels = engine("models.heads", "TaskHead", "pseudo_labels", feature="Task heads")
    head_path = head_dir(settings) / "head.safetensors"
    if not head_path.exists():
        from bioxbridge_core.errors import NotFittedError

        raise NotFittedError("Train the old model's task head on the Models page first: alignment scores the "
                             "new model's layers against the head's pseudo labels.")
    pairs = cache.paired_windows_for(settings).split("pair")
    old = old_model_encoder(settings, device)  # fine-tuned with the head when it was
    new = _encoder(settings, "new", device)
    y = pseudo_labels(old, TaskHead.load(head_path), pairs.x_old, subjects=pairs.subjects)
    result = align(old, new, pairs.x_old, pairs.x_new, y, groups=pairs.subjects, device=device,
                   on_progress=on_progress)
    result.save(alignment_dir(settings))
    return result


def load_alignment(settings: dict) -> Any | None:
    """The saved ``AlignmentResult`` for these settings (without features), or None."""
    folder = alignment_dir(settings)
    if not (folder / "alignment.json").exists():
        return None
    AlignmentResult = engine("alignment", "AlignmentResult", feature="Layer alignment")
    return AlignmentResult.load(folder, features=False)


# -- bridge runs (Train page) ------------------------------------------------------------------------------
def bridge_param_count(settings: dict, positions: dict, rank: int, n_prototypes: int, device: str | None) -> int:
    """Trainable parameters of a bridge between the chosen positions (before training)."""
    Bridge = engine("bridge", "Bridge", feature="The bridge")
    new = _encoder(settings, "new", device)
    old = _encoder(settings, "old", device)
    rp, wp = new.position(positions["read"]), old.position(positions["write"])
    return Bridge.param_count(rank, n_prototypes, rp.out_width, wp.in_tokens, wp.in_width)


def kd_param_count(settings: dict, device: str | None) -> int:
    """Parameters a KD student would train: the whole new encoder plus a linear head (comparison card).

    Uses ``baselines.kd_param_count`` when the engine offers it; otherwise counts the new encoder's
    parameters plus ``(width + 1) * n_classes`` for the head on its last-layer tokens.
    """
    try:
        fn = engine("baselines", "kd_param_count")
        return int(fn(settings["new_encoder"], device=device))
    except Exception:  # noqa: BLE001 - fall back to counting
        pass
    new = _encoder(settings, "new", device)
    report = head_report(settings) or {}
    n_classes = max(2, len(report.get("label_names") or []))
    return int(new.n_params() + (new.positions[-1].out_width + 1) * n_classes)


def start_bridge_run(settings: dict, positions: dict, bridge: dict, *, device: str | None, kd: bool = False) -> str:
    """Save the pairs, create a run folder with the full config and start its training job (a subprocess)."""
    BridgeConfig = engine("bridge", "BridgeConfig", feature="Bridge settings")
    RunStore = engine("runs.store", "RunStore", feature="The run store")
    start_job = engine("jobs", "start_job", feature="Background training jobs")
    head = head_dir(settings) / "head.safetensors"
    if not head.exists():
        from bioxbridge_core.errors import NotFittedError

        raise NotFittedError("Train the old model's task head on the Models page first.")
    meta = read_json(head.with_suffix(".json"))  # the head's own record: calibration, fine-tuned
    # the bridge calibrates as the head does (the job refuses anything else); validates every field
    cfg = BridgeConfig(**{**bridge, "calibration": meta.get("calibration", "none")})
    state_path = encoder_state_path(settings) if meta.get("fine_tuned") else None
    if meta.get("fine_tuned") and state_path is None:
        from bioxbridge_core.errors import NotFittedError

        raise NotFittedError("The task head was trained with a fine-tuned old encoder whose weights are missing; "
                             "retrain the task head on the Models page.")
    pw = cache.paired_windows_for(settings)
    windows = state.workspace("windows", state.fingerprint(_data_key(settings),
                                                           state.mtime(settings["manifest_path"])))
    windows = windows / "pairs.npz"
    if not windows.exists():
        pw.save(windows)
    manifest = cache.load_manifest(settings["manifest_path"], state.mtime(settings["manifest_path"]))
    first = manifest.table.iloc[0]
    config = {
        # what the app shows (Runs page)
        "data": {"manifest": settings["manifest_path"], "window_s": pw.window_s, "step_s": pw.step_s,
                 "label": state.get("dataset_label")},
        "encoders": {"old": settings["old_encoder"], "new": settings["new_encoder"]},
        "positions": dict(positions),
        "baselines": {"kd": bool(kd)},
        "old_model": {"calibration": cfg.calibration, "fine_tuned": bool(meta.get("fine_tuned"))},
        "seed": cfg.seed,
        # what the bridge job reads (jobs.bridge_job)
        "windows": str(windows), "splits": ["pair"],
        "old_encoder": settings["old_encoder"], "new_encoder": settings["new_encoder"],
        "old_ch_names": list(first["old_channels"]), "new_ch_names": list(first["new_channels"]),
        "old_position": positions["write"], "new_position": positions["read"],
        "bridge": cfg.to_dict(), "head": str(head), "device": device,
        **({"old_encoder_state": str(state_path)} if state_path else {}),
    }
    handle = RunStore(state.run_root()).create("bridge", config)
    start_job(handle.path)
    return handle.id


def stop_run(run_dir: Path) -> None:
    request_stop = engine("runs.store", "request_stop", feature="The run store")
    request_stop(run_dir)


def delete_run(run_id: str) -> None:
    RunStore = engine("runs.store", "RunStore", feature="The run store")
    RunStore(state.run_root()).delete(run_id)


# -- prediction (Predict page) -----------------------------------------------------------------------------
def predict_file(run_dir: Path, rec_path: Path, *, channels: list[str] | None, device: str | None) -> Any:
    """Per-window predictions (DataFrame: start_s, end_s, label, p_<class>...) of a trained bridge run."""
    return cache.predictions(str(run_dir), state.mtime(Path(run_dir) / "bundle.json"), str(rec_path),
                             state.mtime(rec_path), tuple(channels) if channels else None, device)


def run_calibration(run_dir: Path) -> str:
    """The per-subject calibration (``"none"``/``"subject"``) of a trained run's bundle."""
    read_bundle_info = engine("runs.bundle", "read_bundle_info", feature="Loading trained bridges")
    info = read_bundle_info(run_dir)
    return str(info.get("calibration") or (info.get("bridge_config") or {}).get("calibration") or "none")


def calibration_min_windows() -> int:
    """Windows a recording needs for its own calibration statistics (``models.subject_norm.MIN_WINDOWS``)."""
    return int(engine("models.subject_norm", "MIN_WINDOWS", feature="Per-subject calibration"))


def too_short_for_calibration(frames: dict[str, Any], calibration: str) -> dict[str, int]:
    """``{recording: windows}`` of predicted recordings with fewer windows than per-subject calibration
    needs (empty when the run does not calibrate): their features were left as they are."""
    if calibration != "subject":
        return {}
    minimum = calibration_min_windows()
    return {name: len(f) for name, f in frames.items() if len(f) < minimum}


# -- verdict inputs -------------------------------------------------------------------------------------------
def label_counts(pw: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Labelled windows per class in the train and test splits of ``PairedWindows``."""
    counts = pw.counts()
    out = []
    for split in ("train", "test"):
        row = counts.loc[split] if split in counts.index else {}
        out.append({str(c): int(v) for c, v in dict(row).items() if c != "unlabelled"})
    return out[0], out[1]


# -- the old model: held-out score, assessment against hand-crafted features, verdicts ------------------------
#: engine function of the transfer work (``bioxbridge_core.models.assess``):
#: ``assess_old_model(old_encoder, train_windows, *, n_folds=5, seed=0, on_progress=None) -> dict`` with
#: ``n_windows``, ``n_subjects``, ``n_folds``, ``chance`` and, for ``old_model`` and ``handcrafted`` (None when
#: the modality has no hand-crafted features), ``balanced_accuracy_mean``/``balanced_accuracy_sd`` over folds
#: of subject-grouped CV on ``train``.
ASSESS_FN = ("models.assess", "assess_old_model")


def cv_score(summary: dict | None) -> tuple[float | None, float | None]:
    """(mean, SD over folds) of balanced accuracy from one model's assessment summary."""
    summary = summary or {}
    mean = summary.get("balanced_accuracy_mean", summary.get("mean", summary.get("balanced_accuracy")))
    sd = summary.get("balanced_accuracy_sd", summary.get("std"))
    return mean, sd


def assessment_report(settings: dict) -> dict | None:
    path = head_dir(settings) / "assessment.json"
    return read_json(path) if path.exists() else None


def assess_old_model(settings: dict, *, device: str | None, on_progress: Progress = None, seed: int = 0) -> dict:
    """Subject-grouped CV of the old model on ``train`` beside hand-crafted features on the same folds."""
    fn = engine(*ASSESS_FN, feature="Assessing the old model (subject-grouped CV vs hand-crafted features)")
    pw = cache.paired_windows_for(settings)
    opts = head_options(settings)
    report = head_report(settings) or {}
    # the old model as the head was built: its calibration (for auto: the choice made when it was trained)
    # and, when fine-tuned, fine-tuning inside every fold from the frozen encoder (the encoder fine-tuned on
    # all of train has seen the held-out folds, so cross-validating it would leak)
    cal = (report.get("old_model") or {}).get("calibration") or ("none" if opts["calibration"] == "auto"
                                                                   else opts["calibration"])
    enc = _encoder(settings, "old", device)
    tune = ({"fine_tune": True, "fine_tune_epochs": opts["epochs"], "fine_tune_lr": opts["lr"]}
            if opts["fine_tune"] else {})
    result = dict(fn(enc, _rows(pw, "train", cal), seed=seed, on_progress=on_progress, calibration=cal, **tune))
    atomic_write_json(head_dir(settings) / "assessment.json", result)
    return result


def old_model_verdict(report: dict | None, assessment: dict | None) -> Any:
    """The old model's verdict: from the CV assessment when there is one, else the held-out test split."""
    old_model_verdict = engine("verdicts", "old_model_verdict", feature="Verdicts")
    names = (report or {}).get("label_names") or (assessment or {}).get("label_names") or []
    n_classes = max(2, len(names))
    if assessment and isinstance(assessment.get("old_model"), dict):
        (mean, sd), (hc_mean, _) = cv_score(assessment["old_model"]), cv_score(assessment.get("handcrafted"))
        folds = assessment["old_model"].get("per_fold") or assessment["old_model"].get("folds") or []
        n_classes = len(assessment.get("label_names") or []) or n_classes
        return old_model_verdict(mean, n_classes=max(2, n_classes), n_eval=assessment.get("n_windows"), fold_std=sd,
                                 n_folds=assessment.get("n_folds") or len(folds) or None, baseline=hc_mean,
                                 source=f"subject-grouped CV on train ({assessment.get('n_subjects', '?')} subjects)")
    test = ((report or {}).get("splits") or {}).get("test")
    if test:
        return old_model_verdict(test.get("balanced_accuracy"), n_classes=n_classes, n_eval=test.get("n"),
                                 source="the held-out test subjects")
    return old_model_verdict(None, n_classes=n_classes)


def alignment_verdict(res: Any, positions: dict | None = None) -> Any:
    """Verdict on the chosen (read, write) cell against its own shuffled-pairs null (debiased CKA)."""
    verdict = engine("verdicts", "alignment_result_verdict", feature="Verdicts")
    rd, wr = (positions or {}).get("read"), (positions or {}).get("write")
    return verdict(res, rd if rd in list(res.new_positions) else None,
                   wr if wr in list(res.old_positions) else None)


def bridge_verdict(run: Any) -> Any:
    """Verdict on a bridge run from its per-epoch agreement with the old model."""
    verdict = engine("verdicts", "bridge_verdict", feature="Verdicts")
    b = run.bridge_metrics
    epochs = (run.config.get("bridge") or {}).get("epochs")
    return verdict(run.history, chance_agreement=b.get("agreement_chance"), n_val=b.get("n_val"), epochs=epochs)


def confidence_warning(run: Any) -> str | None:
    """A warning when the run's confidence temperature sits at its search bound (``verdicts.temperature_at_bound``):
    the fit found no signal, so the bridge's probabilities say nothing; None otherwise."""
    at_bound = engine("verdicts", "temperature_at_bound", feature="Verdicts")
    cal = run.bridge_metrics.get("confidence_calibration")
    if not at_bound(cal):
        return None
    return (f"The confidence temperature hit its search bound (T = {float(cal['temperature']):.3g}): fitted on "
            f"{cal.get('n', '?')} held-out pairs it found no signal, so this bridge's confidence values carry no "
            "information. Judge its predictions by its held-out score only.")


def labels_verdict(settings: dict) -> Any:
    """Labelled windows per class in the train (and test) split of the active dataset."""
    verdict = engine("verdicts", "label_verdict", feature="Verdicts")
    pw = cache.paired_windows_for(settings)
    train, test = label_counts(pw)
    names = list(pw.label_names)
    return verdict({n: train.get(n, 0) for n in names}, test_counts={n: test.get(n, 0) for n in names})


def resume_run(run_dir: Path) -> None:
    """Start a stopped or crashed run again; it continues after its last saved epoch."""
    resume_job = engine("jobs", "resume_job", feature="Resuming runs")
    resume_job(run_dir)


def prediction_summary(frames: dict[str, Any]) -> list[dict]:
    """One row per predicted recording: windows, most frequent class and its share, mean confidence."""
    rows = []
    for name, f in frames.items():
        probs = f[[c for c in f.columns if c.startswith("p_")]].to_numpy()
        counts = f["label"].value_counts()
        rows.append({"recording": name, "windows": len(f),
                     "most frequent class": str(counts.index[0]) if len(counts) else "—",
                     "share": float(counts.iloc[0] / len(f)) if len(f) else None,
                     "mean confidence": float(probs.max(axis=1).mean()) if len(probs) else None})
    return rows
