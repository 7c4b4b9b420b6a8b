"""Long work in a separate process, so the app survives page switches and reloads.

``start_job(run_dir)`` launches ``python -m bioxbridge_core.jobs RUN_DIR``
detached, with stdout/stderr in ``run_dir/log.txt``. The worker reads
``config.json`` and dispatches on ``config["kind"]`` to a registered job
function, keeping ``status.json`` up to date (running -> completed, failed with
the reason, or stopped). A failure marks only that run failed.
``job_state(run_dir)`` also notices a worker that died without saying so.
``resume_job(run_dir)`` restarts a stopped or crashed run in its own folder: the trainer
continues from the last epoch's checkpoint. Every worker started here is waited for by a
small daemon thread, so a finished worker never lingers as a zombie of the server.
The worker's CPU threads are chosen by ``cpus.choose_threads`` (cores allowed minus busy).

Registering a kind: ``register_job("pipeline", fn)`` at import time of the module that
defines ``fn(ctx: JobContext) -> str | None``. The worker knows ``"bridge"``; for other
kinds it imports ``config["job_module"]`` (if given) and ``bioxbridge_core.pipeline``.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import BioXError, RunError, StopRequested
from .paths import REPO_ROOT
from .runs import schema as S
from .runs.store import RunHandle, clear_stop, read_config, read_status, write_metrics, write_status
from .training.callbacks import StopCheck, Throttled

logger = logging.getLogger(__name__)

JobFn = Callable[["JobContext"], "str | None"]
_JOBS: dict[str, JobFn] = {}
_CHILDREN: dict[int, subprocess.Popen] = {}
DEFAULT_JOB_MODULES = ("bioxbridge_core.pipeline",)


def register_job(kind: str, fn: JobFn | None = None):
    """Register ``fn`` for runs of ``kind`` (usable as a decorator)."""
    def deco(f: JobFn) -> JobFn:
        _JOBS[kind] = f
        return f
    return deco(fn) if fn is not None else deco


def registered_jobs() -> list[str]:
    return sorted(_JOBS)


@dataclass
class JobContext:
    """What a job function gets: its run, config, a throttled progress callback and a stop check."""

    run: RunHandle
    config: dict[str, Any]
    stopped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = StopCheck(self.run.path)
        self._progress = Throttled(self._write_progress, 1.0)

    def _write_progress(self, step: int, total: int, message: str) -> None:
        write_status(self.run.path, "running", message, {"step": int(step), "total": int(total), "message": message})

    def on_progress(self, step: int, total: int, message: str) -> None:
        self._progress(step, total, message)

    def should_stop(self) -> bool:
        return self._stop()

    def mark_stopped(self) -> None:
        """Call when the job stopped early on request (the worker then marks the run stopped)."""
        self.stopped = True


# -- process management -------------------------------------------------------------------------
def start_job(run_dir: str | Path, *, env: dict[str, str] | None = None) -> int:
    """Launch the worker for ``run_dir`` detached; returns its pid. Clears an old ``STOP`` file."""
    run_dir = Path(run_dir).resolve()
    read_config(run_dir)  # fail here, not in the child, when the folder is not a run
    status = read_status(run_dir, missing_ok=True) or {}
    if status.get("state") == "running" and status.get("pid") and pid_alive(int(status["pid"])):
        raise RunError(f"run {run_dir.name} is already running (pid {status['pid']}).")
    clear_stop(run_dir)
    from .cpus import THREAD_ENV_VARS, thread_env

    child_env = {**os.environ, **(env or {})}
    if not (env and any(v in env for v in THREAD_ENV_VARS)):  # the caller's choice wins
        child_env.update(thread_env())
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH", "")) if p)
    write_status(run_dir, "queued", "starting worker", {"step": 0, "total": 0, "message": "starting"}, pid=None)
    with open(run_dir / S.LOG, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bioxbridge_core.jobs", str(run_dir)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(run_dir),
                                env=child_env, start_new_session=True, close_fds=True)
    _CHILDREN[proc.pid] = proc
    threading.Thread(target=_reap, args=(proc,), name=f"reap-{proc.pid}", daemon=True).start()
    current = read_status(run_dir, missing_ok=True) or {}
    if current.get("state") == "queued" and current.get("pid") is None:  # the worker has not written yet
        write_status(run_dir, "queued", "starting worker", pid=proc.pid)
    logger.info("started job for %s (pid %d)", run_dir, proc.pid)
    return proc.pid


def _reap(proc: subprocess.Popen) -> None:
    """Wait for a worker so its exit status is collected at once (no zombie left behind)."""
    try:
        proc.wait()
    except Exception:  # noqa: BLE001 - a reaper must never raise
        logger.debug("reaping pid %s failed", proc.pid, exc_info=True)


RESUMABLE = ("stopped", "failed")


def can_resume(run_dir: str | Path) -> bool:
    """True for a stopped or failed run whose worker is gone (it continues from its checkpoint, if any)."""
    run_dir = Path(run_dir)
    status = read_status(run_dir, missing_ok=True) or {}
    if status.get("state") in ("queued", "running"):
        status = job_state(run_dir)
    return status.get("state") in RESUMABLE and (run_dir / S.CONFIG).exists()


def resume_job(run_dir: str | Path, *, env: dict[str, str] | None = None) -> int:
    """Start a stopped or crashed run again in its folder; training continues after the last saved epoch.

    Raises ``RunError`` when the run is still active or already completed.
    """
    run_dir = Path(run_dir)
    if not can_resume(run_dir):
        state = (read_status(run_dir, missing_ok=True) or {}).get("state", "unknown")
        raise RunError(f"run {run_dir.name} is {state}; only a stopped or failed run can be resumed.")
    return start_job(run_dir, env=env)


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (zombies of our own children are reaped and count as dead)."""
    proc = _CHILDREN.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        if state in (b"Z", b"X"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"bioxbridge_core.jobs" in fh.read()  # the pid was not reused by another program
    except (OSError, IndexError):
        return True


def job_state(run_dir: str | Path) -> dict:
    """``status.json``, with a dead worker (gone while 'queued'/'running') marked failed on disk."""
    status = read_status(run_dir, missing_ok=True)
    if status is None:
        raise RunError(f"{Path(run_dir)}: no {S.STATUS}; not a run folder.")
    pid = status.get("pid")
    if status.get("state") in ("queued", "running") and pid and not pid_alive(int(pid)):
        status = write_status(run_dir, "failed", "worker exited unexpectedly")
    return status


def stop_job(run_dir: str | Path) -> None:
    """Ask the job to stop between steps (writes ``STOP``)."""
    from .runs.store import request_stop

    request_stop(run_dir)


def kill_job(run_dir: str | Path) -> bool:
    """Terminate the worker at once (SIGTERM to its process group); True if one was running."""
    status = read_status(run_dir, missing_ok=True) or {}
    pid = status.get("pid")
    if not pid or not pid_alive(int(pid)):
        return False
    try:
        os.killpg(int(pid), signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        os.kill(int(pid), signal.SIGTERM)
    return True


# -- the worker ---------------------------------------------------------------------------------
def _resolve(kind: str, config: dict) -> JobFn:
    if kind in _JOBS:
        return _JOBS[kind]
    for mod in ([config["job_module"]] if config.get("job_module") else []) + list(DEFAULT_JOB_MODULES):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name and mod.startswith(exc.name):
                continue
            raise
        if kind in _JOBS:
            return _JOBS[kind]
    raise RunError(f"unknown run kind {kind!r}; known kinds: {', '.join(registered_jobs())}.")


def run_worker(run_dir: str | Path) -> int:
    """Body of the worker process: dispatch, keep ``status.json`` right, return an exit code."""
    run = RunHandle(Path(run_dir))
    try:
        config = run.config
        write_status(run.path, "running", f"running {config.get('kind')}", pid=os.getpid())
        fn = _resolve(str(config.get("kind")), config)
        ctx = JobContext(run, config)
        if ctx.should_stop():
            raise StopRequested("stop requested before the job started")
        message = fn(ctx)
    except StopRequested as exc:
        write_status(run.path, "stopped", str(exc), pid=None)
        return 0
    except BaseException as exc:  # noqa: BLE001 - the run must say why it failed
        logger.error("job failed:\n%s", traceback.format_exc())
        reason = str(exc) if isinstance(exc, BioXError) else f"{type(exc).__name__}: {exc}"
        write_status(run.path, "failed", reason)
        return 1
    if ctx.stopped:
        # pid cleared: the worker is done (the trainer wrote 'stopped' earlier, while the best epoch was still
        # being saved; a stopped status that keeps a live pid means "still finishing")
        current = read_status(run.path) or {}
        write_status(run.path, "stopped", message or current.get("message") or "stopped by request", pid=None)
    else:
        write_status(run.path, "completed", message or "done")
    return 0


# -- the built-in "bridge" job --------------------------------------------------------------------
def _encoder_loader(config: dict) -> Callable[..., Any]:
    target = config.get("encoder_factory")
    if target:
        mod, _, name = str(target).partition(":")
        return getattr(importlib.import_module(mod), name)
    from .models.registry import load_encoder

    return load_encoder


@register_job("bridge")
def bridge_job(ctx: JobContext) -> str:
    """Train a bridge from a saved PairedWindows file; save the bundle when a head is given.

    Config keys: ``windows`` (PairedWindows .npz), ``splits`` (default ``["pair"]``; ``[]`` = all),
    ``old_encoder``, ``new_encoder``, ``old_ch_names``, ``new_ch_names``, ``old_position``, ``new_position``,
    ``bridge`` (BridgeConfig dict), optional ``head`` (TaskHead safetensors path), ``old_encoder_state``
    (the whole old encoder fine-tuned with that head, ``models.heads.save_encoder_state``; loaded over the
    registry's encoder), ``device``, ``encoder_factory`` ("module:function" replacing the registry).

    The old model must be used as its head was trained: the bridge's ``calibration`` must equal the
    head's, and a head trained with a fine-tuned encoder needs ``old_encoder_state`` (and only such a
    head may have one); otherwise ``ConfigError`` before any training.

    With a head, the bundle is saved whether training finished or was stopped (then from the best
    epoch so far), with a temperature fitted on the pair-validation windows (``calibration.py``),
    and evaluated on the test split like a finished run. A run stopped before its first epoch ends
    keeps no bundle.
    """
    from .bridge.config import BridgeConfig
    from .data.windows import PairedWindows
    from .training.split import pair_val_split
    from .training.trainer import BridgeTrainer

    cfg = ctx.config
    missing = [k for k in ("windows", "old_encoder", "new_encoder", "old_position", "new_position") if k not in cfg]
    if missing:
        raise RunError(f"{ctx.run.path / S.CONFIG}: bridge job needs {missing}.")
    all_windows = PairedWindows.load(cfg["windows"])
    splits: Sequence[str] = cfg.get("splits", ["pair"])
    pw = all_windows.split(*splits) if splits else all_windows
    if pw.x_old is None or pw.x_new is None or len(pw) == 0:
        raise RunError(f"{cfg['windows']}: no paired windows in split(s) {list(splits)}.")
    bcfg = BridgeConfig.from_dict(cfg.get("bridge", {}))
    load = _encoder_loader(cfg)
    device = cfg.get("device")
    # the registry builds each encoder at the window the pairs were cut with (positions follow it)
    win = {} if cfg.get("encoder_factory") else {"window_s": float(pw.window_s)}
    old = load(cfg["old_encoder"], device=device, ch_names=cfg.get("old_ch_names"), **win)
    if cfg.get("old_encoder_state"):  # the old encoder as fine-tuned with its head
        from .models.heads import load_encoder_state

        load_encoder_state(old, cfg["old_encoder_state"])
    new = load(cfg["new_encoder"], device=device, ch_names=cfg.get("new_ch_names"), **win)
    head = None
    metrics: dict[str, Any] = {"bridge": {}}
    val_targets = None
    if cfg.get("head"):
        from .models.heads import TaskHead
        from .verdicts import majority_share

        head = TaskHead.load(cfg["head"])
        check_old_model(cfg, bcfg, head, where=ctx.run.path / S.CONFIG)
        # what a bridge that always says the old model's most common class would agree on (shown live)
        _, val_idx = pair_val_split(len(pw), pw.subjects, bcfg.val_fraction, seed=bcfg.seed)
        val_targets = head.predict(old, pw.x_old[val_idx], subjects=pw.subjects[val_idx]) if len(val_idx) else None
        metrics["bridge"].update(agreement_chance=majority_share(val_targets) if val_targets is not None else None,
                                 n_val=int(len(val_idx)))
        write_metrics(ctx.run.path, metrics)
    trainer = BridgeTrainer(bcfg, device=device).fit(
        old, new, pw.x_old, pw.x_new, new_position=cfg["new_position"], old_position=cfg["old_position"],
        groups=pw.subjects, run_dir=ctx.run.path, should_stop=None, on_progress=ctx.on_progress, head=head)
    if trainer.stopped_:
        ctx.mark_stopped()
        write_status(ctx.run.path, "running", f"stop requested: keeping the best epoch ({trainer.best_epoch_})")
    metrics["bridge"].update({
        "trainable_params": trainer.n_params_, "best_epoch": trainer.best_epoch_,
        "best_val_loss": trainer.best_val_loss_, "initial_loss": trainer.initial_loss_,
        "n_pairs": trainer.n_pairs_, "n_train": trainer.n_train_, "n_val": trainer.n_val_,
        "epochs_run": len(trainer.history_), "epochs": bcfg.epochs,
        "resumed_from_epoch": trainer.resumed_from_, "stopped": trainer.stopped_})
    write_metrics(ctx.run.path, metrics)
    done = len(trainer.history_)
    if head is not None and trainer.best_epoch_ is not None:
        from .bridge.composed import BridgedModel
        from .calibration import calibrate_bridge
        from .pipeline import old_model_bundle_fields
        from .runs.bundle import save_bundle

        model = BridgedModel(new, old, trainer.bridge_, head, new_position=trainer.new_position_,
                             old_position=trainer.old_position_)
        val = trainer.val_index_
        calibration = calibrate_bridge(model, old, head, pw.x_old[val], pw.x_new[val], subjects=pw.subjects[val],
                                       targets=val_targets if val_targets is not None and len(val_targets) == len(val)
                                       else None)
        metrics["bridge"]["confidence_calibration"] = calibration.to_dict()
        save_bundle(ctx.run.path, trainer.bridge_, head, {
            "old_encoder": cfg["old_encoder"], "new_encoder": cfg["new_encoder"],
            "old_ch_names": pw.old_channels or cfg.get("old_ch_names"),
            "new_ch_names": pw.new_channels or cfg.get("new_ch_names"),
            "old_position": trainer.old_position_, "new_position": trainer.new_position_,
            "label_names": list(getattr(head, "label_names", pw.label_names)), "window_s": pw.window_s,
            "step_s": pw.step_s, "preprocessing": pw.preprocessing, "bridge_config": bcfg,
            "best_epoch": trainer.best_epoch_, "epochs_run": done, "stopped": trainer.stopped_,
            **old_model_bundle_fields(old, head, trainer.old_position_),
            "confidence_calibration": calibration.to_dict()})
        write_metrics(ctx.run.path, metrics)
        _evaluate_on_test(ctx, cfg, all_windows, old, new, head, trainer, bcfg, pw, metrics, model=model,
                          temperature=calibration.temperature)
    if trainer.stopped_:
        if trainer.best_epoch_ is None:
            return f"stopped after epoch {done} of {bcfg.epochs}: no epoch finished, nothing to keep"
        kept = " kept as a usable bridge" if head is not None else ""
        return f"stopped after epoch {done} of {bcfg.epochs}; best epoch {trainer.best_epoch_}{kept}"
    return f"trained {done} epochs; best epoch {trainer.best_epoch_}"


def check_old_model(cfg: dict, bcfg, head, *, where: str | Path = "bridge job config") -> None:
    """Refuse a bridge job whose settings would use the old model otherwise than its head was trained.

    ``bcfg.calibration`` must equal ``head.calibration``; ``cfg["old_encoder_state"]`` is required
    for a head trained with a fine-tuned encoder (``head.fine_tuned``) and refused for any other
    head. Raises ``ConfigError`` naming ``where`` and the fix. Without a head nothing is checked.
    """
    from .errors import ConfigError

    if head is None:
        return
    if bcfg.calibration != head.calibration:
        raise ConfigError(f"{where}: bridge calibration {bcfg.calibration!r} differs from the task head's "
                          f"{head.calibration!r} ({cfg.get('head')}); the bridge must calibrate as the head does.")
    state = cfg.get("old_encoder_state")
    if head.fine_tuned and not state:
        raise ConfigError(f"{where}: the task head {cfg.get('head')} was trained with a fine-tuned old encoder; "
                          "set 'old_encoder_state' to that encoder's weights.")
    if state and not head.fine_tuned:
        raise ConfigError(f"{where}: 'old_encoder_state' is given but the task head {cfg.get('head')} was trained "
                          "on the frozen old encoder; drop one of them.")


def _wants_kd(cfg: dict) -> bool:
    b = cfg.get("baselines") or {}
    return bool(b.get("kd")) if isinstance(b, dict) else "kd" in b


def confidence_summary(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    """Mean top-class probability on right and on wrong predictions (None where there are none)."""
    proba = np.asarray(proba)
    right = proba.argmax(axis=1) == np.asarray(y_true)
    conf = proba.max(axis=1)
    return {"mean_right": float(conf[right].mean()) if right.any() else None,
            "mean_wrong": float(conf[~right].mean()) if (~right).any() else None,
            "n_right": int(right.sum()), "n_wrong": int((~right).sum())}


def _evaluate_on_test(ctx: JobContext, cfg: dict, all_windows, old, new, head, trainer, bcfg, pairs,
                      metrics: dict, *, model=None, temperature: float = 1.0) -> None:
    """Score the bridge, the oracle, chance (and KD when asked, unless stopped) on the labelled test split.

    Also records the bridge's mean confidence on right/wrong test windows, raw and calibrated.
    """
    from .bridge.composed import BridgedModel
    from .calibration import apply_temperature
    from .inference.predict import predict_logits
    from .metrics import chance_metrics
    from .pipeline import evaluate_predictions, run_kd

    # with per-subject calibration every test window (labelled or not) feeds its subject's statistics,
    # as in pipeline.run_pipeline; only labelled windows are scored
    test = all_windows.split("test")
    test = test if bcfg.calibration == "subject" else test.labelled()
    y = test.labels() if len(test) else np.zeros(0, dtype=np.int64)
    lab = y >= 0
    if not lab.any():
        return
    n_classes = len(test.label_names)
    if model is None:
        model = BridgedModel(new, old, trainer.bridge_, head, new_position=trainer.new_position_,
                             old_position=trainer.old_position_)
    logits = predict_logits(model, test.x_new, subjects=test.subjects)
    metrics["bridge"]["test"] = evaluate_predictions(y, logits, n_classes)
    metrics["bridge"]["test_confidence"] = {
        "raw": confidence_summary(y[lab], apply_temperature(logits, 1.0)[lab]),
        "calibrated": confidence_summary(y[lab], apply_temperature(logits, temperature)[lab])}
    metrics["oracle"] = {"test": evaluate_predictions(y, head.predict_proba(old, test.x_old, subjects=test.subjects),
                                                      n_classes)}
    metrics["chance"] = {"test": chance_metrics(y[lab], n_classes, seed=bcfg.seed)}
    write_metrics(ctx.run.path, metrics)
    if _wants_kd(cfg) and not trainer.stopped_:
        ctx.on_progress(0, 1, "training the KD baseline")
        kd = run_kd(new, old, head, pairs, test, epochs=int(cfg.get("kd_epochs") or bcfg.epochs),
                    lr=float(cfg.get("kd_lr", 1e-4)), batch_size=bcfg.batch_size, seed=bcfg.seed,
                    val_fraction=bcfg.val_fraction, device=cfg.get("device"), should_stop=ctx.should_stop,
                    on_progress=ctx.on_progress, calibration=bcfg.calibration)
        metrics["kd"] = {"test": kd.pop("metrics"), **kd}
        write_metrics(ctx.run.path, metrics)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m bioxbridge_core.jobs RUN_DIR\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .cpus import apply_thread_env

    apply_thread_env()  # start_job passed the choice in OMP_NUM_THREADS; a direct call chooses here
    return run_worker(args[0])


if __name__ == "__main__":
    # run through the importable module so job kinds registered by other modules land in one registry
    from bioxbridge_core.jobs import main as _main

    sys.exit(_main())
