"""Long work in a separate process, so the app survives page switches and reloads.

``start_job(run_dir)`` launches ``python -m bioxbridge_core.jobs RUN_DIR``
detached, with stdout/stderr in ``run_dir/log.txt``. The worker reads
``config.json`` and dispatches on ``config["kind"]`` to a registered job
function, keeping ``status.json`` up to date (running -> completed, failed with
the reason, or stopped). A failure marks only that run failed.
``job_state(run_dir)`` also notices a worker that died without saying so.

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
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

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
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH", "")) if p)
    write_status(run_dir, "queued", "starting worker", {"step": 0, "total": 0, "message": "starting"}, pid=None)
    with open(run_dir / S.LOG, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "bioxbridge_core.jobs", str(run_dir)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(run_dir),
                                env=child_env, start_new_session=True, close_fds=True)
    _CHILDREN[proc.pid] = proc
    current = read_status(run_dir, missing_ok=True) or {}
    if current.get("state") == "queued" and current.get("pid") is None:  # the worker has not written yet
        write_status(run_dir, "queued", "starting worker", pid=proc.pid)
    logger.info("started job for %s (pid %d)", run_dir, proc.pid)
    return proc.pid


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
        write_status(run.path, "stopped", str(exc))
        return 0
    except BaseException as exc:  # noqa: BLE001 - the run must say why it failed
        logger.error("job failed:\n%s", traceback.format_exc())
        reason = str(exc) if isinstance(exc, BioXError) else f"{type(exc).__name__}: {exc}"
        write_status(run.path, "failed", reason)
        return 1
    if ctx.stopped:
        current = read_status(run.path) or {}
        write_status(run.path, "stopped", message or current.get("message") or "stopped by request")
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
    ``bridge`` (BridgeConfig dict), optional ``head`` (TaskHead safetensors path), ``device``,
    ``encoder_factory`` ("module:function" replacing the registry).
    """
    from .bridge.config import BridgeConfig
    from .data.windows import PairedWindows
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
    load = _encoder_loader(cfg)
    device = cfg.get("device")
    old = load(cfg["old_encoder"], device=device, ch_names=cfg.get("old_ch_names"))
    new = load(cfg["new_encoder"], device=device, ch_names=cfg.get("new_ch_names"))
    bcfg = BridgeConfig.from_dict(cfg.get("bridge", {}))
    head = None
    if cfg.get("head"):
        from .models.heads import TaskHead

        head = TaskHead.load(cfg["head"])
    trainer = BridgeTrainer(bcfg, device=device).fit(
        old, new, pw.x_old, pw.x_new, new_position=cfg["new_position"], old_position=cfg["old_position"],
        groups=pw.subjects, run_dir=ctx.run.path, should_stop=None, on_progress=ctx.on_progress, head=head)
    metrics: dict[str, Any] = {"bridge": {
        "trainable_params": trainer.n_params_, "best_epoch": trainer.best_epoch_,
        "best_val_loss": trainer.best_val_loss_, "initial_loss": trainer.initial_loss_,
        "n_pairs": trainer.n_pairs_, "n_train": trainer.n_train_, "n_val": trainer.n_val_,
        "resumed_from_epoch": trainer.resumed_from_, "stopped": trainer.stopped_}}
    write_metrics(ctx.run.path, metrics)
    if head is not None and not trainer.stopped_:
        from .runs.bundle import save_bundle

        save_bundle(ctx.run.path, trainer.bridge_, head, {
            "old_encoder": cfg["old_encoder"], "new_encoder": cfg["new_encoder"],
            "old_ch_names": pw.old_channels or cfg.get("old_ch_names"),
            "new_ch_names": pw.new_channels or cfg.get("new_ch_names"),
            "old_position": trainer.old_position_, "new_position": trainer.new_position_,
            "label_names": list(getattr(head, "label_names", pw.label_names)), "window_s": pw.window_s,
            "step_s": pw.step_s, "preprocessing": pw.preprocessing, "bridge_config": bcfg})
        _evaluate_on_test(ctx, cfg, all_windows, old, new, head, trainer, bcfg, pw, metrics)
    if trainer.stopped_:
        ctx.mark_stopped()
        return f"stopped after epoch {len(trainer.history_)} of {bcfg.epochs}"
    return f"trained {len(trainer.history_)} epochs; best epoch {trainer.best_epoch_}"


def _wants_kd(cfg: dict) -> bool:
    b = cfg.get("baselines") or {}
    return bool(b.get("kd")) if isinstance(b, dict) else "kd" in b


def _evaluate_on_test(ctx: JobContext, cfg: dict, all_windows, old, new, head, trainer, bcfg, pairs,
                      metrics: dict) -> None:
    """Score the bridge, the oracle, chance (and KD when asked) on the labelled test split, if any."""
    from .bridge.composed import BridgedModel
    from .metrics import chance_metrics
    from .pipeline import evaluate_predictions, run_kd

    test = all_windows.split("test").labelled()
    if len(test) == 0:
        return
    n_classes = len(test.label_names)
    y = test.labels()
    model = BridgedModel(new, old, trainer.bridge_, head, new_position=trainer.new_position_,
                         old_position=trainer.old_position_)
    metrics["bridge"]["test"] = evaluate_predictions(y, model.predict_proba(test.x_new), n_classes)
    metrics["oracle"] = {"test": evaluate_predictions(y, head.predict_proba(old, test.x_old), n_classes)}
    metrics["chance"] = {"test": chance_metrics(y, n_classes, seed=bcfg.seed)}
    write_metrics(ctx.run.path, metrics)
    if _wants_kd(cfg):
        ctx.on_progress(0, 1, "training the KD baseline")
        kd = run_kd(new, old, head, pairs, test, epochs=int(cfg.get("kd_epochs") or bcfg.epochs),
                    lr=float(cfg.get("kd_lr", 1e-4)), batch_size=bcfg.batch_size, seed=bcfg.seed,
                    val_fraction=bcfg.val_fraction, device=cfg.get("device"), should_stop=ctx.should_stop,
                    on_progress=ctx.on_progress)
        metrics["kd"] = {"test": kd.pop("metrics"), **kd}
        write_metrics(ctx.run.path, metrics)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m bioxbridge_core.jobs RUN_DIR\n")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_worker(args[0])


if __name__ == "__main__":
    # run through the importable module so job kinds registered by other modules land in one registry
    from bioxbridge_core.jobs import main as _main

    sys.exit(_main())
