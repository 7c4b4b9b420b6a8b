"""The headless pipeline: old head -> positions -> bridge -> evaluation -> report.

Each stage is a public function so the CLI, the app and the benchmarks run
exactly the same code; ``run_pipeline`` chains them and writes ``report.json``
beside the bridge bundle. Splits come from the manifest (by subject):
``train`` trains the old head, ``pair`` (+ ``val``) trains the bridge and
selects positions, ``test`` evaluates on the new modality alone.

The old model can be strengthened before anything is transferred
(``old_finetune``: fine-tune the old encoder with its head on ``train``;
``calibration="subject"``: per-subject feature calibration for old model,
bridge and KD alike, see ``models.subject_norm``). A fine-tuned old encoder is
the one everything downstream uses (pseudo labels, alignment, bridge targets
and the layers above l, KD teacher) and its stages from l on go into the bundle.
``assess_old_model`` scores the old model by subject-grouped cross-validation on
``train`` next to a hand-crafted-feature baseline, before anything else is trained.

Under ``torchrun`` (``distributed``), rank 0 trains the head and selects the
positions while the others wait, every rank trains the bridge (and KD) with
DistributedDataParallel, and rank 0 evaluates and writes every file; ``--out``
must then be a folder all ranks see.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import distributed as dist
from ._check import check_option, check_range
from ._io import atomic_write_json
from .errors import ConfigError, StopRequested, WindowingError
from .resources import measure

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
BASELINES = ("kd",)
#: the whole fine-tuned old encoder, written only for the other ranks of a torchrun run (not part of the bundle)
FINETUNED_ENCODER = "old_encoder_finetuned.safetensors"
PAIR_SPLITS = ("pair", "val")


@dataclass
class PipelineConfig:
    """Everything one headless run needs; saved as ``config.json`` with the run.

    Parameters
    ----------
    old, new : encoder names (``builtin:ecg``, ``hubert-ecg:/path``...).
    manifest : manifest CSV path; or ``demo`` = ``"ecg-ppg"`` / ``"eeg-ecg"`` for the built-in demo.
    window_s, step_s : window length/step in seconds (default: the old encoder's window, no overlap).
    seed : seeds the subject split, head, bridge and KD.
    bridge : BridgeConfig fields (rank, n_prototypes, prototype_init, loss, lr, epochs, batch_size...).
    baselines : extra methods to run on the same splits (``"kd"``).
    kd_epochs, kd_lr : KD student settings (default: the bridge's epochs and patience, lr 1e-4).
    new_position, old_position : override the selected positions.
    head : path of a saved TaskHead to use instead of training one (not with ``old_finetune``).
    device : ``None``/``"auto"`` picks CUDA when present.
    calibration : ``"subject"`` standardises each subject's pooled features with that subject's own
        (unlabelled) windows, for the old model, the bridge and KD alike; at prediction on a new
        upload the statistics come from the upload's own windows. ``"none"`` never does. ``"auto"``
        (default) decides on ``train`` before anything else is trained: subject calibration when it
        raises the frozen old model's subject-grouped CV balanced accuracy by >= 0.02
        (``models.assess.choose_calibration``); the choice is in the report and the bundle.
    old_finetune : fine-tune the old encoder with its head on ``train`` (else only the linear head).
    old_finetune_epochs, old_finetune_lr : fine-tuning epochs and encoder learning rate.
    write_tie_break : ``"none"`` (default): the highest CKA, as METHOD step 2; ``"cheaper"``: when other
        write positions score within the CKA noise (2 shuffled-pairs SDs) of the best, take the latest
        of them (``prefer_cheaper_write``; faster training, but on the demo, seed 0, writing at ``norm``
        instead of ``blocks.5`` cost 0.19 balanced accuracy).
    assess_old : first score the old model by subject-grouped CV on ``train`` next to the
        hand-crafted baseline (``assess``; saved as ``assessment.json`` and in the report).
    """

    old: str
    new: str
    manifest: str | None = None
    demo: str | None = None
    window_s: float | None = None
    step_s: float | None = None
    seed: int = 0
    bridge: dict[str, Any] = field(default_factory=dict)
    baselines: list[str] = field(default_factory=list)
    kd_epochs: int | None = None
    kd_lr: float = 1e-4
    new_position: str | None = None
    old_position: str | None = None
    head: str | None = None
    device: str | None = None
    calibration: str = "auto"
    old_finetune: bool = False
    old_finetune_epochs: int = 5
    old_finetune_lr: float = 3e-5
    assess_old: bool = True
    write_tie_break: str = "none"

    def __post_init__(self) -> None:
        if (self.manifest is None) == (self.demo is None):
            raise ConfigError("PipelineConfig needs exactly one of 'manifest' or 'demo'.")
        if self.demo is not None:
            check_option("demo", self.demo, ("ecg-ppg", "eeg-ecg"), owner="PipelineConfig")
        for b in self.baselines:
            check_option("baselines", b, BASELINES, owner="PipelineConfig")
        from .bridge.config import BridgeConfig
        from .models.subject_norm import check_calibration

        if self.calibration != "auto":
            check_calibration(self.calibration, owner="PipelineConfig")
        check_option("write_tie_break", self.write_tie_break, ("cheaper", "none"), owner="PipelineConfig")
        check_range("old_finetune_epochs", self.old_finetune_epochs, low=1, owner="PipelineConfig", integer=True)
        check_range("old_finetune_lr", self.old_finetune_lr, low=0, low_inclusive=False, high=1.0,
                    owner="PipelineConfig")
        if self.old_finetune and self.head:
            raise ConfigError("PipelineConfig: 'old_finetune' trains the old encoder, so it cannot reuse a saved "
                              "'head'; drop one of them.")
        given = dict(self.bridge)
        # the bridge's calibration follows the pipeline's ("auto" is resolved at run time; "none" until then)
        fixed = "none" if self.calibration == "auto" else self.calibration
        if "calibration" in given and given["calibration"] != fixed:
            raise ConfigError(f"PipelineConfig: bridge calibration {given['calibration']!r} differs from "
                              f"calibration {self.calibration!r}; set only 'calibration'.")
        self.bridge = BridgeConfig.from_dict({"seed": self.seed, **given, "calibration": fixed}).to_dict()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PipelineConfig":
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class PreparedData:
    """Paired windows plus the two loaded encoders they were made for."""

    windows: Any  # PairedWindows
    old_encoder: Any
    new_encoder: Any
    manifest_path: str


def _step(on_progress: ProgressFn | None, i: int, total: int, msg: str) -> None:
    logger.info(msg)
    if on_progress is not None:
        on_progress(i, total, msg)


def resolve_manifest(config: PipelineConfig) -> str:
    """Path of the manifest CSV (generating the demo on first use)."""
    if config.demo is not None:
        from .data.demo import demo_manifest

        return str(demo_manifest(config.demo, seed=0))
    return str(config.manifest)


def check_windows(old: str, new: str, window_s: float | None = None, step_s: float | None = None,
                  ) -> tuple[float, float]:
    """The window length and step a run of ``old`` -> ``new`` will use, checked before any work.

    Reads only the two encoders' specs (no weights, no data). ``window_s`` defaults to the old
    encoder's own window, ``step_s`` to ``window_s``. Raises ``ConfigError`` naming the encoder and
    its allowed range when either does not accept the length (``SignalSpec.check_window``), or
    ``EncoderError`` for an unknown encoder. The CLI (``windows``, ``run``, ``align``) and the app
    call this first.
    """
    from .data.pairing import check_window_request
    from .models.registry import encoder_spec

    return check_window_request(encoder_spec(old), encoder_spec(new), window_s, step_s, old_name=old, new_name=new)


def prepare_data(config: PipelineConfig, *, cache: bool = True, on_progress: ProgressFn | None = None) -> PreparedData:
    """Check the window length, read the manifest, cut paired windows, load both encoders at that length.

    The encoders come from ``load_encoder(..., window_s=...)``, so their positions -- and the
    bridge's size and cached targets derived from them -- follow the window in use.
    ``cache=False`` recomputes the windows instead of reusing the disk cache. A window length
    outside either encoder's range raises ``ConfigError`` before any file is read.
    """
    from .data.manifest import naming, read_manifest, row_where
    from .data.pairing import make_paired_windows
    from .models.registry import encoder_spec, load_encoder

    window_s, step_s = check_windows(config.old, config.new, config.window_s, config.step_s)
    path = resolve_manifest(config)
    manifest = read_manifest(path, seed=config.seed)
    first = manifest.table.iloc[0]
    old_ch, new_ch = list(first["old_channels"]), list(first["new_channels"])
    with naming(row_where(manifest, "old")):  # an encoder refusing the row's channels names file and row
        old_spec = encoder_spec(config.old, ch_names=old_ch, window_s=window_s)
    with naming(row_where(manifest, "new")):
        new_spec = encoder_spec(config.new, ch_names=new_ch, window_s=window_s)
    windows = make_paired_windows(manifest, old_spec=old_spec, new_spec=new_spec, window_s=window_s,
                                  step_s=step_s, cache=cache, on_progress=on_progress)
    old = load_encoder(config.old, device=config.device, ch_names=old_ch, window_s=window_s)
    new = load_encoder(config.new, device=config.device, ch_names=new_ch, window_s=window_s)
    return PreparedData(windows, old, new, path)


def bundle_config(config: PipelineConfig, windows, *, new_position: str, old_position: str, bridge_config) -> dict:
    """What ``runs.bundle.save_bundle`` stores beside the bridge (encoders, channels, positions, windows)."""
    return {"old_encoder": config.old, "new_encoder": config.new,
            "old_ch_names": windows.old_channels, "new_ch_names": windows.new_channels,
            "old_position": old_position, "new_position": new_position,
            "label_names": list(windows.label_names), "window_s": windows.window_s,
            "step_s": windows.step_s, "preprocessing": windows.preprocessing, "bridge_config": bridge_config}


def old_model_bundle_fields(old_encoder, head, old_position: str) -> dict[str, Any]:
    """The bundle keys that rebuild the old model as it was trained (``run_pipeline`` and the app's bridge job).

    ``calibration`` (the head's: ``"none"``/``"subject"``), ``old_finetuned`` and, for a head trained
    with a fine-tuned encoder, ``old_layers``: that encoder's stages from ``old_position`` (the
    bridge's write position l) on (``models.heads.stage_state``); ``runs.bundle.load_bundle``
    applies them over the registry's encoder. ``old_encoder`` must be the fine-tuned one then.
    """
    from .models.heads import stage_state

    fine_tuned = bool(getattr(head, "fine_tuned", False))
    return {"calibration": getattr(head, "calibration", "none"), "old_finetuned": fine_tuned,
            "old_layers": stage_state(old_encoder, old_position) if fine_tuned else None}


def split_windows(windows) -> dict[str, Any]:
    """``train`` (labelled), ``pair`` (pair + val, labels ignored) and ``test`` (labelled) windows."""
    parts = {
        "train": windows.split("train").labelled(),
        "pair": windows.split(*PAIR_SPLITS),
        "test": windows.split("test").labelled(),
    }
    for name, part in parts.items():
        if len(part) == 0:
            raise WindowingError(
                f"the '{name}' split has no usable windows; per split and class: {windows.summary()['per_split']}. "
                "Add subjects or set the manifest's 'split' column."
            )
    return parts


def _rows_to_use(windows, parts: dict, name: str, calibration: str):
    """The windows to feed for split ``name``: all of them, labelled or not, when calibrating per
    subject (each subject's statistics come from all of its windows), else the labelled ones."""
    return windows.split(name) if calibration == "subject" else parts[name]


def fit_old_head(old_encoder, train, *, seed: int = 0, head_path: str | None = None,
                 on_progress: ProgressFn | None = None, calibration: str = "none", fine_tune: bool = False,
                 epochs: int = 5, lr_encoder: float = 3e-5):
    """Train (or load) the old model's task head on the ``train`` windows (labels -1 are used only to calibrate).

    ``fine_tune`` also trains ``old_encoder`` in place (see ``models.heads.train_task_head``).
    """
    from .models.heads import TaskHead, train_task_head

    if head_path:
        head = TaskHead.load(head_path)
        if list(head.label_names) != list(train.label_names):
            raise ConfigError(f"head {head_path} predicts {list(head.label_names)} but the data's classes are "
                              f"{train.label_names}.")
        if head.calibration != calibration:
            raise ConfigError(f"head {head_path} was trained with calibration {head.calibration!r} but this run "
                              f"uses {calibration!r}.")
        return head
    return train_task_head(old_encoder, train.x_old, train.labels(), label_names=train.label_names,
                           groups=train.subjects, seed=seed, on_progress=on_progress, calibration=calibration,
                           fine_tune=fine_tune, epochs=epochs, lr_encoder=lr_encoder)


def select_positions(old_encoder, new_encoder, head, pair, *, seed: int = 0,
                     on_progress: ProgressFn | None = None):
    """Pseudo-label the pairs with the old model and score every (m, l) pair (METHOD steps 1-2)."""
    from .alignment import align
    from .models.heads import pseudo_labels

    pseudo = pseudo_labels(old_encoder, head, pair.x_old, subjects=pair.subjects)
    return align(old_encoder, new_encoder, pair.x_old, pair.x_new, pseudo, groups=pair.subjects, seed=seed,
                 on_progress=on_progress)


def prefer_cheaper_write(alignment, *, noise_sds: float = 2.0):
    """Among old write positions whose CKA is within ``noise_sds`` shuffled-pairs SDs of the best one
    (for the selected read position), take the latest: differences below the estimator's noise say
    nothing, and a later position leaves fewer old layers to run at every bridge training step.

    Returns ``(alignment, note)``; the alignment is unchanged when the best is already the latest
    candidate or the shuffled-pairs SD is unknown. METHOD step 2 picks the highest CKA; this only breaks
    statistical ties, by cost.
    """
    sel = alignment.selected
    try:
        i = list(alignment.new_positions).index(sel["new_position"])
        j_best = list(alignment.old_positions).index(sel["old_position"])
        row = np.asarray(alignment.cka, dtype=float)[i]
        sd = float(np.asarray(alignment.null_cka_std, dtype=float)[i, j_best])
    except (ValueError, IndexError, TypeError):
        return alignment, None
    if not np.isfinite(sd) or not np.isfinite(row[j_best]):
        return alignment, None
    tol = noise_sds * sd
    j = max(k for k in range(len(row)) if np.isfinite(row[k]) and row[k] >= row[j_best] - tol)
    if j <= j_best:
        return alignment, None
    note = (f"write position {alignment.old_positions[j]} instead of {alignment.old_positions[j_best]}: CKA "
            f"{row[j]:.4f} vs {row[j_best]:.4f}, within {noise_sds:g} shuffled-pairs SDs ({tol:.4f}); "
            "the later position is cheaper to train through")
    return alignment.with_override(old_position=alignment.old_positions[j]), note


def evaluate_predictions(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> dict:
    """``classification_metrics`` of ``argmax proba`` on the windows with ``y_true >= 0``."""
    from .metrics import classification_metrics

    y = np.asarray(y_true)
    lab = y >= 0
    return classification_metrics(y[lab], np.asarray(proba).argmax(axis=1)[lab], n_classes)


def old_model_settings(config: PipelineConfig) -> dict:
    """How the old model is built (for reports and model cards)."""
    return {"fine_tuned": bool(config.old_finetune), "calibration_requested": config.calibration,
            **({"finetune_epochs": config.old_finetune_epochs, "finetune_lr": config.old_finetune_lr}
               if config.old_finetune else {}), "head": config.head}


def run_pipeline(config: PipelineConfig, out_dir: str | Path, *, on_progress: ProgressFn | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 on_assessment: Callable[[dict], None] | None = None) -> dict:
    """Run (assessment ->) head -> alignment -> bridge (-> KD); write ``report.json`` + the bundle in ``out_dir``.

    ``on_assessment(result)`` is called with the old model's assessment as soon as it exists.
    """
    from .bridge.composed import BridgedModel
    from .bridge.config import BridgeConfig, fit_budget
    from .metrics import chance_metrics
    from .runs.bundle import save_bundle
    from .training.trainer import BridgeTrainer
    from .verdicts import majority_share, run_verdicts

    check_windows(config.old, config.new, config.window_s, config.step_s)  # before anything is written
    out = Path(out_dir)
    main = dist.is_main()
    if not main:
        on_progress = None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "pipeline_config.json", config.to_dict())
    total = (6 if "kd" in config.baselines else 5) + int(config.assess_old)
    t_start = time.perf_counter()

    _step(on_progress, 0, total, "preparing paired windows")
    with dist.main_first():  # one process per machine fills the windows cache
        data = prepare_data(config, on_progress=None)
    parts = split_windows(data.windows)
    train, pair, test = parts["train"], parts["pair"], parts["test"]
    n_classes = len(data.windows.label_names)
    k = int(config.assess_old)  # steps shift by one when the old model is assessed first

    cal, cal_note, assessment, write_note, head_seconds = config.calibration, None, None, None, 0.0
    if main:
        if config.assess_old:
            _step(on_progress, 1, total, f"assessing the old model by subject-grouped CV on {len(train)} windows")
        cal, cal_note, assessment = resolve_calibration(config, data)
        if config.assess_old:
            atomic_write_json(out / "assessment.json", assessment)
            logger.info("%s", assessment.get("verdict") or assessment.get("error"))
            if on_assessment is not None:
                on_assessment(assessment)
        train_in = _rows_to_use(data.windows, parts, "train", cal)
        test_in = _rows_to_use(data.windows, parts, "test", cal)

        what = "fine-tuning the old encoder and its head" if config.old_finetune else "training the old task head"
        _step(on_progress, 1 + k, total, f"{what} on {len(train)} windows")
        with measure() as head_usage:
            head = fit_old_head(data.old_encoder, train_in, seed=config.seed, head_path=config.head,
                                calibration=cal, fine_tune=config.old_finetune, epochs=config.old_finetune_epochs,
                                lr_encoder=config.old_finetune_lr)
        head_seconds = head_usage.seconds
        head.save(out / "old_head.safetensors")
        if head.fine_tuned and dist.world_size() > 1:  # the other ranks need the whole fine-tuned encoder
            from .models.heads import save_encoder_state

            save_encoder_state(data.old_encoder, out / FINETUNED_ENCODER)
        y_test = test_in.labels()
        oracle = evaluate_predictions(
            y_test, head.predict_proba(data.old_encoder, test_in.x_old, subjects=test_in.subjects), n_classes)

        _step(on_progress, 2 + k, total, f"scoring positions on {len(pair)} pairs")
        alignment = select_positions(data.old_encoder, data.new_encoder, head, pair, seed=config.seed)
        if config.new_position or config.old_position:
            alignment = alignment.with_override(new_position=config.new_position, old_position=config.old_position)
        elif config.write_tie_break == "cheaper":
            alignment, write_note = prefer_cheaper_write(alignment)
            if write_note:
                logger.info("%s", write_note)
        alignment.save(out)
    dist.barrier()  # the other ranks take rank 0's head, positions (and fine-tuned encoder) from the run folder
    if not main:
        from .alignment.result import AlignmentResult
        from .models.heads import TaskHead, load_encoder_state

        head = TaskHead.load(out / "old_head.safetensors")
        alignment = AlignmentResult.load(out, features=False)
        cal = head.calibration
        if head.fine_tuned:
            load_encoder_state(data.old_encoder, out / FINETUNED_ENCODER)
        test_in = _rows_to_use(data.windows, parts, "test", cal)
    new_pos, old_pos = alignment.selected["new_position"], alignment.selected["old_position"]

    _step(on_progress, 3 + k, total, f"training the bridge {new_pos} -> {old_pos}")
    np_pos, op_pos = data.new_encoder.position(new_pos), data.old_encoder.position(old_pos)
    bcfg = fit_budget(BridgeConfig.from_dict({**config.bridge, "calibration": cal}), d_new=np_pos.out_width,
                      n_tokens_old=op_pos.in_tokens,
                      d_old=op_pos.in_width, new_params=data.new_encoder.n_params())
    if bcfg.n_prototypes != config.bridge["n_prototypes"]:
        logger.info("bridge: %d prototypes instead of %d to stay within %.0f %% of the new encoder's parameters",
                    bcfg.n_prototypes, config.bridge["n_prototypes"], 100 * bcfg.max_params_fraction)
    if should_stop is not None and should_stop():
        raise StopRequested("stopped before bridge training")
    with measure() as bridge_usage:
        trainer = BridgeTrainer(bcfg, device=config.device).fit(
            data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, new_position=new_pos,
            old_position=old_pos, groups=pair.subjects, run_dir=out, should_stop=should_stop, head=head)
    if not main:  # rank 0 evaluates and writes; the others only take part in KD training
        if "kd" in config.baselines:
            run_kd(data.new_encoder, data.old_encoder, head, pair, test_in,
                   epochs=config.kd_epochs or int(config.bridge["epochs"]), lr=config.kd_lr,
                   batch_size=int(config.bridge["batch_size"]), seed=config.seed,
                   val_fraction=float(config.bridge["val_fraction"]), device=config.device, should_stop=should_stop,
                   calibration=cal, patience=int(config.bridge["patience"]))
        dist.barrier()
        return {}
    bridged = BridgedModel(data.new_encoder, data.old_encoder, trainer.bridge_, head,
                           new_position=new_pos, old_position=old_pos)
    # calibrated confidence: a temperature fitted on the pair-val windows against the old model (label-free)
    from .calibration import calibrate_bridge

    val = trainer.val_index_
    # the old model's class per pair-val window: the calibration targets, and what a constant bridge agrees on
    val_targets = (np.asarray(head.predict(data.old_encoder, pair.x_old[val], subjects=pair.subjects[val]))
                   if len(val) else None)
    confidence = calibrate_bridge(bridged, data.old_encoder, head, pair.x_old[val], pair.x_new[val],
                                  targets=val_targets, subjects=pair.subjects[val]).to_dict()
    save_bundle(out, trainer.bridge_, head, {
        **bundle_config(config, data.windows, new_position=new_pos, old_position=old_pos, bridge_config=bcfg),
        **old_model_bundle_fields(data.old_encoder, head, old_pos), "confidence_calibration": confidence})

    _step(on_progress, 4 + k, total, f"evaluating on {len(test)} test windows (new modality only)")
    bridge_metrics = evaluate_predictions(
        y_test, bridged.predict_proba(test_in.x_new, subjects=test_in.subjects), n_classes)
    hist = trainer.history_

    report: dict[str, Any] = {
        "old": config.old, "new": config.new,
        "positions": {"new_position": new_pos, "old_position": old_pos, "write_tie_break": write_note},
        "n_windows": {"train": len(train), "pair": len(pair), "test": len(test)},
        "label_names": list(data.windows.label_names),
        "subjects": {k: sorted(map(str, set(parts[k].subjects))) for k in ("train", "pair", "test")},
        "old_model": {**old_model_settings(config), "calibration": cal, "calibration_choice": cal_note,
                      "train_seconds": round(head_seconds, 3), "assessment": assessment},
        "oracle": {"metrics": oracle},
        "bridge": {"trainable_params": int(trainer.n_params_), "train_seconds": round(bridge_usage.seconds, 3),
                   "peak_rss_mb": round(bridge_usage.peak_rss_mb, 1),
                   "start_rss_mb": round(bridge_usage.start_rss_mb, 1), "best_epoch": trainer.best_epoch_,
                   "epochs_run": len(hist), "metrics": bridge_metrics,
                   "n_prototypes": bcfg.n_prototypes, "rank": bcfg.rank,
                   "initial_val_loss": trainer.initial_loss_.get("val"),
                   "best_val_loss": trainer.best_val_loss_, "confidence_calibration": confidence,
                   "epochs": int(bcfg.epochs), "n_val": int(len(val)),
                   "agreement_chance": majority_share(val_targets) if val_targets is not None else None},
        "chance": {"metrics": chance_metrics(y_test[y_test >= 0], n_classes, seed=config.seed)},
        "manifest": data.manifest_path, "seed": config.seed, "window_s": data.windows.window_s,
        "calibration": cal,
        "dropped_windows": dict(data.windows.dropped),
    }

    if "kd" in config.baselines:
        _step(on_progress, 5 + k, total, "training the KD baseline (the new encoder as a student)")
        report["kd"] = run_kd(data.new_encoder, data.old_encoder, head, pair, test_in,
                              epochs=config.kd_epochs or int(config.bridge["epochs"]), lr=config.kd_lr,
                              batch_size=int(config.bridge["batch_size"]), seed=config.seed,
                              val_fraction=float(config.bridge["val_fraction"]), device=config.device,
                              should_stop=should_stop, calibration=cal, patience=int(config.bridge["patience"]))

    report["verdicts"] = run_verdicts(report, alignment=alignment, history=hist)
    report["total_seconds"] = round(time.perf_counter() - t_start, 2)
    atomic_write_json(out / "report.json", report)
    _step(on_progress, total, total, "done")
    dist.barrier()
    return report


def run_kd(new_encoder, old_encoder, head, pair, test, *, epochs: int, lr: float = 1e-4, batch_size: int = 16,
           seed: int = 0, val_fraction: float = 0.2, device: str | None = None,
           should_stop: Callable[[], bool] | None = None, on_progress: ProgressFn | None = None,
           calibration: str = "none", patience: int = 0) -> dict:
    """Distil the old model into the whole new encoder on the same pairs; evaluate on the same test split.

    ``test`` may hold unlabelled windows (label -1): they are predicted (calibration statistics) but not scored.
    """
    from .baselines.kd import KDStudent

    with measure() as usage:
        student = KDStudent(new_encoder, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                            val_fraction=val_fraction, device=device, calibration=calibration, patience=patience)
        student.fit(old_encoder, head, pair.x_old, pair.x_new, groups=pair.subjects, should_stop=should_stop,
                    on_progress=on_progress)
    proba = student.predict_proba(test.x_new, subjects=test.subjects)
    metrics = evaluate_predictions(test.labels(), proba, len(test.label_names))
    return {"trainable_params": int(student.trainable_params), "train_seconds": round(usage.seconds, 3),
            "peak_rss_mb": round(usage.peak_rss_mb, 1), "start_rss_mb": round(usage.start_rss_mb, 1),
            "epochs": epochs, "epochs_run": len(student.history_),
            "best_epoch": student.best_epoch_, "metrics": metrics}


def assess(config: PipelineConfig, *, n_folds: int = 5, on_progress: ProgressFn | None = None,
           data: PreparedData | None = None, calibration: str | None = None) -> dict:
    """``models.assess.assess_old_model`` on the ``train`` split of ``config``'s data.

    Uses the config's old encoder, fine-tuning settings and calibration (``calibration`` overrides it;
    ``"auto"`` is assessed without calibration and compared with it: see ``resolve_calibration``).
    ``data`` reuses already prepared windows and encoders. Returns the assessment dict (see there).
    """
    from .models.assess import assess_old_model

    data = data if data is not None else prepare_data(config)
    cal = calibration or config.calibration
    cal = "none" if cal == "auto" else cal
    train = data.windows.split("train")
    return assess_old_model(data.old_encoder, train, n_folds=n_folds, seed=config.seed, calibration=cal,
                            fine_tune=config.old_finetune, fine_tune_epochs=config.old_finetune_epochs,
                            fine_tune_lr=config.old_finetune_lr, on_progress=on_progress)


def resolve_calibration(config: PipelineConfig, data: PreparedData) -> tuple[str, str | None, dict | None]:
    """``(calibration, reason, assessment)`` for a run: ``"auto"`` becomes ``"none"`` or ``"subject"``.

    The choice compares the frozen old model with and without per-subject calibration by
    subject-grouped CV on ``train`` (``models.assess.choose_calibration``; never the test split). The
    assessment (when ``config.assess_old``) is made with the chosen calibration; when it cannot be
    made (e.g. one training subject) it holds ``{"error": message}`` and auto calibration stays off.
    """
    from .models.assess import assess_old_model, choose_calibration, with_calibration

    cal, note, assessment = config.calibration, None, None
    if cal == "auto" and config.head:  # a saved head fixes it
        from .models.heads import TaskHead

        cal, note = TaskHead.load(config.head).calibration, f"as the saved head {config.head}"
    try:
        if cal == "auto":
            if config.assess_old and not config.old_finetune:
                assessment = assess(config, data=data, calibration="none")
                cal, note = choose_calibration(assessment)
                assessment = with_calibration(assessment, cal)  # show the chosen setting first
            else:  # the frozen comparison alone (cheap: one encoder pass, linear fits)
                quick = assess_old_model(data.old_encoder, data.windows.split("train"), seed=config.seed,
                                         calibration="none", handcrafted=False)
                cal, note = choose_calibration(quick)
        if config.assess_old and assessment is None:
            assessment = assess(config, data=data, calibration=cal)
    except ValueError as exc:  # ConfigError and scikit-learn's refusals of too-small folds: the run goes on
        if cal == "auto":
            cal, note = "none", f"cannot compare calibrations ({exc}); calibration off"
        assessment = {"error": str(exc)} if config.assess_old else None
    if assessment is not None:
        assessment["calibration_choice"] = {"requested": config.calibration, "chosen": cal, "reason": note}
    if note:
        logger.info("calibration: %s", note)
    return cal, note, assessment


def format_assessment(result: dict) -> str:
    """The assessment as a few lines of text (for the CLI)."""
    if "error" in result:
        return f"old model not assessed: {result['error']}"
    lines = [f"old model on 'train' ({result['n_windows']} labelled windows, {result['n_subjects']} subjects, "
             f"{result['n_folds']} subject-grouped folds; calibration {result['calibration']}"
             f"{', fine-tuned' if result['fine_tuned'] else ''}):",
             f"  {'model':12s} {'BAcc':>6s} {'± SD':>6s} {'F1-M':>6s}"]
    for name, key in (("old model", "old_model"), ("hand-crafted", "handcrafted")):
        r = result.get(key)
        if r:
            lines.append(f"  {name:12s} {r['balanced_accuracy']:6.3f} {r['balanced_accuracy_sd']:6.3f} "
                         f"{r['f1_macro']:6.3f}")
    for name, r in (result.get("alternatives") or {}).items():
        lines.append(f"  {'  ' + name:12s} {r['balanced_accuracy']:6.3f} {r['balanced_accuracy_sd']:6.3f} "
                     f"{r['f1_macro']:6.3f}  (old model)")
    lines.append(f"  {'chance':12s} {result['chance']:6.3f}")
    lines.append("  " + result["verdict"])
    choice = result.get("calibration_choice") or {}
    if choice.get("requested") == "auto":
        lines.append(f"  calibration: {choice.get('chosen')} ({choice.get('reason')})")
    return "\n".join(lines)


def register_jobs() -> None:
    """Make ``pipeline`` a job kind for the app's background worker."""
    from .jobs import register_job

    @register_job("pipeline")
    def _pipeline_job(ctx) -> str:
        cfg = PipelineConfig.from_dict(ctx.config["pipeline"])
        report = run_pipeline(cfg, ctx.run.path, on_progress=ctx.on_progress, should_stop=ctx.should_stop)
        b = report["bridge"]["metrics"]["balanced_accuracy"]
        return f"bridge balanced accuracy {b:.3f} on {report['n_windows']['test']} test windows"


register_jobs()


def summarise(report: dict, methods: Sequence[str] = ("oracle", "bridge", "kd", "chance")) -> str:
    """A small text table of a report (for the CLI)."""
    lines = [f"{'method':8s} {'BAcc':>6s} {'F1-M':>6s} {'kappa':>6s} {'params':>10s} {'train s':>8s} {'peak MB':>8s}"]
    for m in methods:
        if m not in report:
            continue
        r, mt = report[m], report[m]["metrics"]
        lines.append(f"{m:8s} {mt['balanced_accuracy']:6.3f} {mt['f1_macro']:6.3f} {mt['cohen_kappa']:6.3f} "
                     f"{r.get('trainable_params', ''):>10} {r.get('train_seconds', ''):>8} {r.get('peak_rss_mb', ''):>8}")
    return "\n".join(lines)


def format_verdicts(report: dict) -> str:
    """One verdict line per stage (old model, alignment, bridge) with the deciding numbers, plus a warning
    when the predictions are not trustworthy (``verdicts.trust_warning``); for the CLI."""
    from .verdicts import format_verdict_line, trust_warning

    lines = [format_verdict_line(v) for v in (report.get("verdicts") or {}).values()]
    warning = trust_warning(report)
    if warning:
        lines.append("warning: " + warning)
    return "\n".join(lines)
