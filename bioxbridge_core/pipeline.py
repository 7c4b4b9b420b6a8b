"""The headless pipeline: old head -> positions -> bridge -> evaluation -> report.

Each stage is a public function so the CLI, the app and the benchmarks run
exactly the same code; ``run_pipeline`` chains them and writes ``report.json``
beside the bridge bundle. Splits come from the manifest (by subject):
``train`` trains the old head, ``pair`` (+ ``val``) trains the bridge and
selects positions, ``test`` evaluates on the new modality alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ._check import check_option
from ._io import atomic_write_json
from .errors import ConfigError, StopRequested, WindowingError
from .resources import measure

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
BASELINES = ("kd",)
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
    kd_epochs, kd_lr : KD student settings (default: the bridge's epochs, lr 1e-4).
    new_position, old_position : override the selected positions.
    head : path of a saved TaskHead to use instead of training one.
    device : ``None``/``"auto"`` picks CUDA when present.
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

    def __post_init__(self) -> None:
        if (self.manifest is None) == (self.demo is None):
            raise ConfigError("PipelineConfig needs exactly one of 'manifest' or 'demo'.")
        if self.demo is not None:
            check_option("demo", self.demo, ("ecg-ppg", "eeg-ecg"), owner="PipelineConfig")
        for b in self.baselines:
            check_option("baselines", b, BASELINES, owner="PipelineConfig")
        from .bridge.config import BridgeConfig

        self.bridge = BridgeConfig.from_dict({"seed": self.seed, **dict(self.bridge)}).to_dict()

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
    from .data.manifest import read_manifest
    from .data.pairing import make_paired_windows
    from .models.registry import encoder_spec, load_encoder

    window_s, step_s = check_windows(config.old, config.new, config.window_s, config.step_s)
    path = resolve_manifest(config)
    manifest = read_manifest(path, seed=config.seed)
    first = manifest.table.iloc[0]
    old_ch, new_ch = list(first["old_channels"]), list(first["new_channels"])
    old_spec = encoder_spec(config.old, ch_names=old_ch, window_s=window_s)
    new_spec = encoder_spec(config.new, ch_names=new_ch, window_s=window_s)
    windows = make_paired_windows(manifest, old_spec=old_spec, new_spec=new_spec, window_s=window_s,
                                  step_s=step_s, cache=cache, on_progress=on_progress)
    old = load_encoder(config.old, device=config.device, ch_names=old_ch, window_s=window_s)
    new = load_encoder(config.new, device=config.device, ch_names=new_ch, window_s=window_s)
    return PreparedData(windows, old, new, path)


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


def fit_old_head(old_encoder, train, *, seed: int = 0, head_path: str | None = None,
                 on_progress: ProgressFn | None = None):
    """Train (or load) the old model's task head on the labelled ``train`` windows."""
    from .models.heads import TaskHead, train_task_head

    if head_path:
        head = TaskHead.load(head_path)
        if list(head.label_names) != list(train.label_names):
            raise ConfigError(f"head {head_path} predicts {list(head.label_names)} but the data's classes are "
                              f"{train.label_names}.")
        return head
    return train_task_head(old_encoder, train.x_old, train.labels(), label_names=train.label_names,
                           groups=train.subjects, seed=seed, on_progress=on_progress)


def select_positions(old_encoder, new_encoder, head, pair, *, seed: int = 0,
                     on_progress: ProgressFn | None = None):
    """Pseudo-label the pairs with the old model and score every (m, l) pair (METHOD steps 1-2)."""
    from .alignment import align
    from .models.heads import pseudo_labels

    pseudo = pseudo_labels(old_encoder, head, pair.x_old)
    return align(old_encoder, new_encoder, pair.x_old, pair.x_new, pseudo, groups=pair.subjects, seed=seed,
                 on_progress=on_progress)


def evaluate_predictions(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> dict:
    from .metrics import classification_metrics

    return classification_metrics(y_true, np.asarray(proba).argmax(axis=1), n_classes)


def run_pipeline(config: PipelineConfig, out_dir: str | Path, *, on_progress: ProgressFn | None = None,
                 should_stop: Callable[[], bool] | None = None) -> dict:
    """Run head -> alignment -> bridge (-> KD) and write ``report.json`` + the bridge bundle in ``out_dir``."""
    from .bridge.composed import BridgedModel
    from .bridge.config import BridgeConfig
    from .metrics import chance_metrics
    from .runs.bundle import save_bundle
    from .training.trainer import BridgeTrainer

    check_windows(config.old, config.new, config.window_s, config.step_s)  # before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "pipeline_config.json", config.to_dict())
    total = 6 if "kd" in config.baselines else 5
    t_start = time.perf_counter()

    _step(on_progress, 0, total, "preparing paired windows")
    data = prepare_data(config, on_progress=None)
    parts = split_windows(data.windows)
    train, pair, test = parts["train"], parts["pair"], parts["test"]
    n_classes = len(data.windows.label_names)

    _step(on_progress, 1, total, f"training the old task head on {len(train)} windows")
    head = fit_old_head(data.old_encoder, train, seed=config.seed, head_path=config.head)
    head.save(out / "old_head.safetensors")
    y_test = test.labels()
    oracle = evaluate_predictions(y_test, head.predict_proba(data.old_encoder, test.x_old), n_classes)

    _step(on_progress, 2, total, f"scoring positions on {len(pair)} pairs")
    alignment = select_positions(data.old_encoder, data.new_encoder, head, pair, seed=config.seed)
    if config.new_position or config.old_position:
        alignment = alignment.with_override(new_position=config.new_position, old_position=config.old_position)
    alignment.save(out)
    new_pos, old_pos = alignment.selected["new_position"], alignment.selected["old_position"]

    _step(on_progress, 3, total, f"training the bridge {new_pos} -> {old_pos}")
    bcfg = BridgeConfig.from_dict(config.bridge)
    if should_stop is not None and should_stop():
        raise StopRequested("stopped before bridge training")
    with measure() as bridge_usage:
        trainer = BridgeTrainer(bcfg, device=config.device).fit(
            data.old_encoder, data.new_encoder, pair.x_old, pair.x_new, new_position=new_pos,
            old_position=old_pos, groups=pair.subjects, run_dir=out, should_stop=should_stop, head=head)
    save_bundle(out, trainer.bridge_, head, {
        "old_encoder": config.old, "new_encoder": config.new,
        "old_ch_names": data.windows.old_channels, "new_ch_names": data.windows.new_channels,
        "old_position": old_pos, "new_position": new_pos,
        "label_names": list(data.windows.label_names), "window_s": data.windows.window_s,
        "step_s": data.windows.step_s, "preprocessing": data.windows.preprocessing, "bridge_config": bcfg})

    _step(on_progress, 4, total, f"evaluating on {len(test)} test windows (new modality only)")
    bridged = BridgedModel(data.new_encoder, data.old_encoder, trainer.bridge_, head,
                           new_position=new_pos, old_position=old_pos)
    bridge_metrics = evaluate_predictions(y_test, bridged.predict_proba(test.x_new), n_classes)

    report: dict[str, Any] = {
        "old": config.old, "new": config.new,
        "positions": {"new_position": new_pos, "old_position": old_pos},
        "n_windows": {"train": len(train), "pair": len(pair), "test": len(test)},
        "label_names": list(data.windows.label_names),
        "subjects": {k: sorted(map(str, set(v.subjects))) for k, v in parts.items()},
        "oracle": {"metrics": oracle},
        "bridge": {"trainable_params": int(trainer.n_params_), "train_seconds": round(bridge_usage.seconds, 3),
                   "peak_rss_mb": round(bridge_usage.peak_rss_mb, 1), "best_epoch": trainer.best_epoch_,
                   "epochs_run": len(trainer.history_), "metrics": bridge_metrics},
        "chance": {"metrics": chance_metrics(y_test, n_classes, seed=config.seed)},
        "manifest": data.manifest_path, "seed": config.seed, "window_s": data.windows.window_s,
        "dropped_windows": dict(data.windows.dropped),
    }

    if "kd" in config.baselines:
        _step(on_progress, 5, total, "training the KD baseline (the new encoder as a student)")
        report["kd"] = run_kd(data.new_encoder, data.old_encoder, head, pair, test,
                              epochs=config.kd_epochs or int(config.bridge["epochs"]), lr=config.kd_lr,
                              batch_size=int(config.bridge["batch_size"]), seed=config.seed,
                              val_fraction=float(config.bridge["val_fraction"]), device=config.device,
                              should_stop=should_stop)

    report["total_seconds"] = round(time.perf_counter() - t_start, 2)
    atomic_write_json(out / "report.json", report)
    _step(on_progress, total, total, "done")
    return report


def run_kd(new_encoder, old_encoder, head, pair, test, *, epochs: int, lr: float = 1e-4, batch_size: int = 16,
           seed: int = 0, val_fraction: float = 0.2, device: str | None = None,
           should_stop: Callable[[], bool] | None = None, on_progress: ProgressFn | None = None) -> dict:
    """Distil the old model into the whole new encoder on the same pairs; evaluate on the same test split."""
    from .baselines.kd import KDStudent

    with measure() as usage:
        student = KDStudent(new_encoder, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                            val_fraction=val_fraction, device=device)
        student.fit(old_encoder, head, pair.x_old, pair.x_new, groups=pair.subjects, should_stop=should_stop,
                    on_progress=on_progress)
    metrics = evaluate_predictions(test.labels(), student.predict_proba(test.x_new), len(test.label_names))
    return {"trainable_params": int(student.trainable_params), "train_seconds": round(usage.seconds, 3),
            "peak_rss_mb": round(usage.peak_rss_mb, 1), "epochs": epochs, "metrics": metrics}


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
