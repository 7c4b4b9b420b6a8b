"""BridgeTrainer: train only the bridge, with cached frozen features (METHOD.md step 4).

Per step only the old model's stages from l on run (forward and backward); the
loss compares their last-layer output with the cached output of the old model
on the real old window. The best epoch is chosen on a held-out pair-validation
split by subject, never on test data. With ``run_dir`` every epoch is
checkpointed atomically, ``fit`` on the same folder resumes, and a ``STOP``
file (or ``should_stop()``) stops cleanly between steps.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .._check import check_windows
from .._io import atomic_save_safetensors
from ..bridge.config import BridgeConfig
from ..bridge.network import Bridge
from ..device import resolve_device
from ..errors import ConfigError, NotFittedError, RunError, StopRequested
from ..models.base import EncoderAdapter, to_tokens
from ..runs import schema as S
from ..runs.store import write_history, write_status
from . import checkpoint as ckpt
from .cache import BridgeCache, compute_cache
from .callbacks import StopCheck
from .split import pair_val_split

logger = logging.getLogger(__name__)

StepFn = Callable[[dict], None]
ProgressFn = Callable[[int, int, str], None]


def target_stats(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of every flattened last-layer feature over the training pairs (for ``target_norm``)."""
    flat = target.flatten(1).float()
    mean, std = flat.mean(dim=0), flat.std(dim=0)
    return mean, std.clamp_min(1e-3 * float(std.mean()) + 1e-8)


def per_sample_loss(pred: torch.Tensor, target: torch.Tensor, kind: str,
                    stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Loss per window at the old model's last layer: ``1 - cos`` of flattened outputs, MSE or L1.

    With ``stats`` (mean, std per flattened feature), both sides are standardised first.
    """
    p, t = pred.flatten(1), target.flatten(1)
    if stats is not None:
        mean, std = stats
        p, t = (p - mean) / std, (t - mean) / std
    if kind == "cosine":
        return 1.0 - F.cosine_similarity(p, t, dim=1, eps=1e-8)
    if kind == "mse":
        return ((p - t) ** 2).mean(dim=1)
    if kind == "l1":
        return (p - t).abs().mean(dim=1)
    raise ConfigError(f"unknown loss {kind!r}")


def match_window(enc: EncoderAdapter, n_times: int) -> None:
    """Make ``enc``'s positions describe windows of ``n_times`` samples (at ``enc.spec.sfreq``).

    A flexible-length encoder whose spec says another length is switched to this one with
    ``set_window`` (its positions are discovered again, logged); a length outside its range
    raises ``ConfigError`` with the allowed range.
    """
    if int(n_times) == enc.spec.n_times:
        return
    window_s = int(n_times) / float(enc.spec.sfreq)
    before = enc.spec.window_s
    enc.set_window(window_s)
    logger.info("%s: windows of %g s (%d samples) but positions were found at %g s; found them again at %g s.",
                enc.encoder_name, window_s, int(n_times), before, window_s)


def _frozen(enc: EncoderAdapter) -> list[bool]:
    flags = [p.requires_grad for p in enc.parameters()]
    enc.freeze()
    return flags


def _restore(enc: EncoderAdapter, flags: list[bool]) -> None:
    for p, f in zip(enc.parameters(), flags):
        p.requires_grad_(f)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=12)
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).view(np.uint8).data)
    return h.hexdigest()


class BridgeTrainer:
    """Fit a ``Bridge`` between a frozen new encoder (read at m) and a frozen old encoder (written at l).

    Parameters
    ----------
    config : BridgeConfig (rank, prototypes, loss, lr, epochs, batch size, seed, val fraction).
    device : ``None`` uses the old encoder's device; ``"auto"``/``"cuda"``/``"cpu"`` move both encoders there.

    Attributes after ``fit``: ``bridge_`` (best epoch's weights), ``history_`` (per-epoch dicts),
    ``best_epoch_`` (1-based, None if no epoch finished), ``best_val_loss_``, ``initial_loss_``,
    ``n_pairs_``, ``n_train_``, ``n_val_``, ``train_index_``, ``val_index_``, ``n_params_``,
    ``stopped_``, ``resumed_from_`` (epoch resumed after, or None).
    """

    def __init__(self, config: BridgeConfig | None = None, *, device: str | None = None) -> None:
        self.config = config
        self.device = device

    # -------------------------------------------------------------------------------------------
    def fit(self, old_encoder: EncoderAdapter, new_encoder: EncoderAdapter, x_old: np.ndarray, x_new: np.ndarray,
            *, new_position: str | int, old_position: str | int, groups: Sequence | np.ndarray | None = None,
            run_dir: str | Path | None = None, on_step: StepFn | None = None, on_epoch: StepFn | None = None,
            should_stop: Callable[[], bool] | None = None, on_progress: ProgressFn | None = None,
            head: torch.nn.Module | None = None) -> "BridgeTrainer":
        """Train the bridge on paired windows ``x_old`` (n, C_old, T_old) / ``x_new`` (n, C_new, T_new).

        With ``head`` (the old task head), every epoch also reports ``val_agreement``: the share of
        held-out pairs where the bridged prediction equals the old model's own prediction on the
        real old signal (no labels needed).
        """
        cfg = self.config if self.config is not None else BridgeConfig()
        if not isinstance(cfg, BridgeConfig):
            raise ConfigError(f"config must be a BridgeConfig, got {type(cfg).__name__}.")
        x_old = self._windows(x_old, old_encoder, "x_old")
        x_new = self._windows(x_new, new_encoder, "x_new")
        if len(x_old) != len(x_new):
            raise ConfigError(f"x_old has {len(x_old)} windows but x_new has {len(x_new)}; pairs must be row-aligned.")
        # the bridge (N_old) and the cached targets are sized from the positions, which must come
        # from a dry pass at the window length in use, not the encoder's default
        match_window(old_encoder, x_old.shape[2])
        match_window(new_encoder, x_new.shape[2])
        new_pos, old_pos = new_encoder.position(new_position), old_encoder.position(old_position)
        if old_pos.index == 0 or old_pos.in_tokens < 1:
            raise ConfigError(f"old position '{old_pos.name}' cannot take a bridge input; use one of "
                              f"{[p.name for p in old_encoder.write_positions]}.")
        device = resolve_device(self.device) if self.device is not None else old_encoder._param_device()
        for enc in (old_encoder, new_encoder):
            if enc._param_device() != device:
                enc.to(device)
        run_dir = Path(run_dir) if run_dir is not None else None
        stop = StopCheck(run_dir, should_stop)

        train_idx, val_idx = pair_val_split(len(x_old), groups, cfg.val_fraction, seed=cfg.seed)
        self.n_pairs_, self.n_train_, self.n_val_ = len(x_old), len(train_idx), len(val_idx)
        self.train_index_, self.val_index_ = train_idx, val_idx
        fingerprint = {
            "old_encoder": old_encoder.encoder_name, "new_encoder": new_encoder.encoder_name,
            "old_position": old_pos.name, "new_position": new_pos.name, "n_pairs": len(x_old),
            "data": _digest(x_old, x_new, val_idx),
            "config": {k: v for k, v in cfg.to_dict().items() if k not in ("epochs", "feature_batch_size")},
        }
        resume = ckpt.load_checkpoint(run_dir) if run_dir is not None else None
        if resume is not None and resume[0].get("fingerprint") != fingerprint:
            old_fp = resume[0].get("fingerprint") or {}
            diff = sorted(k for k in set(old_fp) | set(fingerprint) if old_fp.get(k) != fingerprint.get(k))
            raise RunError(f"{ckpt.checkpoint_path(run_dir)} was written for different settings or data "
                           f"({', '.join(diff)}); use a new run folder or delete its checkpoint.")

        flags = (_frozen(old_encoder), _frozen(new_encoder))
        try:
            cache = compute_cache(
                old_encoder, new_encoder, x_old, x_new, new_position=new_pos.index, old_position=old_pos.index,
                batch_size=cfg.feature_batch_size, proto_rows=train_idx,
                n_proto_tokens=cfg.n_prototypes if (cfg.prototype_init == "tokens" and resume is None) else 0,
                seed=cfg.seed, on_progress=on_progress)
            if device.type != "cpu" and cache.nbytes() < 2 * 1024**3:
                cache = cache.to(device)
            return self._train(cfg, old_encoder, cache, new_pos, old_pos, device, train_idx, val_idx, fingerprint,
                               resume, run_dir, stop, on_step, on_epoch, on_progress, head)
        finally:
            _restore(old_encoder, flags[0])
            _restore(new_encoder, flags[1])

    # -------------------------------------------------------------------------------------------
    @staticmethod
    def _windows(x: Any, enc: EncoderAdapter, name: str) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
        n_times = None if enc.spec.flexible_length else enc.spec.n_times
        return check_windows(x, n_chans=enc.spec.n_chans, n_times=n_times, name=name, encoder=enc.encoder_name)

    def _train(self, cfg: BridgeConfig, old_encoder: EncoderAdapter, cache: BridgeCache, new_pos, old_pos,
               device: torch.device, train_idx: np.ndarray, val_idx: np.ndarray, fingerprint: dict,
               resume, run_dir: Path | None, stop: StopCheck, on_step, on_epoch, on_progress,
               head: torch.nn.Module | None = None) -> "BridgeTrainer":
        bridge = Bridge.from_positions(new_pos, old_pos, cfg)
        if cfg.prototype_init == "tokens" and cache.proto_tokens is not None:
            bridge.init_prototypes(cache.proto_tokens, seed=cfg.seed)
        bridge.to(device)
        self.n_params_ = bridge.n_params()
        logger.info("bridge %s -> %s: %d trainable parameters (r=%d, Np=%d, d_new=%d, N_old=%d, d_old=%d, %s); "
                    "%d training / %d validation pairs", new_pos.name, old_pos.name, self.n_params_, cfg.rank,
                    cfg.n_prototypes, bridge.d_new, bridge.n_tokens_old, bridge.d_old, bridge.out_layout,
                    len(train_idx), len(val_idx))
        optimizer = torch.optim.Adam(bridge.parameters(), lr=cfg.lr)
        last_shape = tuple(old_encoder.positions[-1].out_shape)
        if tuple(cache.target.shape[1:]) != last_shape:  # positions and windows disagree: say so, never crash later
            raise ConfigError(
                f"{old_encoder.encoder_name}: its last layer gives {last_shape} per window at the "
                f"{old_encoder.spec.window_s:g} s its positions were found at, but the cached targets are "
                f"{tuple(cache.target.shape[1:])}; load it with load_encoder(..., window_s=<window in use>).")
        stats = None
        if cfg.target_norm == "standardise":
            stats = tuple(t.to(device) for t in target_stats(cache.target[torch.as_tensor(train_idx)]))
        gen = torch.Generator().manual_seed(cfg.seed)
        l_idx = old_pos.index

        def predict(idx: np.ndarray) -> torch.Tensor:
            return old_encoder.forward_from(bridge(cache.z[idx].to(device)), l_idx)

        last_layout = old_encoder.positions[-1].out_layout
        if head is not None:
            head.to(device)

        @torch.no_grad()
        def evaluate(idx: np.ndarray) -> tuple[float | None, float | None]:
            """Mean loss over ``idx`` and, with a head, the share of windows where the bridged prediction
            equals the old model's own (one pass for both)."""
            if len(idx) == 0:
                return None, None
            total, same = 0.0, 0
            step = max(cfg.batch_size, cfg.feature_batch_size)
            for s in range(0, len(idx), step):
                b = idx[s: s + step]
                pred, target = predict(b), cache.target[b].to(device)
                total += float(per_sample_loss(pred, target, cfg.loss, stats).sum())
                if head is not None:
                    mine = head(to_tokens(pred, last_layout)).argmax(dim=1)
                    same += int((mine == head(to_tokens(target, last_layout)).argmax(dim=1)).sum())
            return total / len(idx), (same / len(idx) if head is not None else None)

        history: list[dict] = []
        best_state, best_score, best_epoch, start_epoch = None, float("inf"), None, 0
        self.resumed_from_ = None
        if resume is not None:
            state, tensors = resume
            bridge.load_state_dict({k: v.to(device) for k, v in ckpt.split_tensors(tensors, "bridge").items()})
            optimizer.load_state_dict(ckpt.optimizer_state(tensors, optimizer))
            gen.set_state(tensors["rng.shuffle"])
            best = ckpt.split_tensors(tensors, "best")
            best_state = {k: v.to(device) for k, v in best.items()} if best else None
            history = [dict(r) for r in state["history"]]
            best_epoch, start_epoch = state.get("best_epoch"), int(state["epoch"])
            best_score = float(state["best_score"]) if state.get("best_score") is not None else float("inf")
            self.initial_loss_ = state.get("initial_loss", {})
            self.resumed_from_ = start_epoch
            logger.info("resuming from the checkpoint after epoch %d of %d", start_epoch, cfg.epochs)
        else:
            self.initial_loss_ = {"train": evaluate(train_idx)[0], "val": evaluate(val_idx)[0]}
        if run_dir is not None and stop.stop_file is not None and stop.stop_file.exists():
            logger.warning("%s exists: training stops before the next step (delete it to continue).", stop.stop_file)

        steps_per_epoch = int(np.ceil(len(train_idx) / cfg.batch_size))
        total_steps = steps_per_epoch * cfg.epochs
        last_val = history[-1]["val_loss"] if history else self.initial_loss_.get("val")
        self.stopped_ = False
        bridge.train()
        try:
            for epoch in range(start_epoch + 1, cfg.epochs + 1):
                t0 = time.perf_counter()
                perm = torch.randperm(len(train_idx), generator=gen).numpy()
                loss_sum = 0.0
                for step in range(steps_per_epoch):
                    if stop():
                        raise StopRequested(f"stop requested during epoch {epoch}")
                    b = train_idx[perm[step * cfg.batch_size: (step + 1) * cfg.batch_size]]
                    loss = per_sample_loss(predict(b), cache.target[b].to(device), cfg.loss, stats).mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    loss_sum += float(loss.detach()) * len(b)
                    global_step = (epoch - 1) * steps_per_epoch + step + 1
                    if on_step is not None:
                        on_step({"epoch": epoch, "step": step + 1, "steps_per_epoch": steps_per_epoch,
                                 "global_step": global_step, "total_steps": total_steps,
                                 "train_loss": float(loss.detach()), "val_loss": last_val})
                    if on_progress is not None:
                        on_progress(global_step, total_steps, f"epoch {epoch}/{cfg.epochs}")
                bridge.eval()
                val_loss, val_agreement = evaluate(val_idx)
                bridge.train()
                last_val = val_loss
                row = {"epoch": epoch, "train_loss": loss_sum / len(train_idx), "val_loss": val_loss,
                       "seconds": time.perf_counter() - t0}
                if head is not None:
                    row["val_agreement"] = val_agreement
                history.append(row)
                score = val_loss if val_loss is not None else row["train_loss"]
                if score < best_score:
                    best_score, best_epoch = score, epoch
                    best_state = copy.deepcopy(bridge.state_dict())
                if run_dir is not None:
                    ckpt.save_checkpoint(run_dir, bridge=bridge, best_state=best_state, optimizer=optimizer,
                                         generator=gen, state={
                                             "epoch": epoch, "epochs": cfg.epochs, "history": history,
                                             "best_epoch": best_epoch, "best_score": best_score,
                                             "initial_loss": self.initial_loss_, "fingerprint": fingerprint,
                                             "n_params": self.n_params_})
                    write_history(run_dir, history)
                if on_epoch is not None:
                    on_epoch(dict(row, best_epoch=best_epoch))
                logger.info("epoch %d/%d: train %.5f, val %s (%.1f s)", epoch, cfg.epochs, row["train_loss"],
                            "n/a" if val_loss is None else f"{val_loss:.5f}", row["seconds"])
        except StopRequested as exc:
            self.stopped_ = True
            done = history[-1]["epoch"] if history else 0
            logger.info("%s; keeping epoch %s (checkpoint after epoch %d)", exc, best_epoch, done)
            if run_dir is not None:
                write_status(run_dir, "stopped", f"stopped by request after epoch {done} of {cfg.epochs}")

        if best_state is not None:
            bridge.load_state_dict(best_state)
        bridge.eval()
        self.bridge_, self.history_, self.best_epoch_ = bridge, history, best_epoch
        self.best_val_loss_ = min((r["val_loss"] for r in history if r["val_loss"] is not None), default=None)
        self.config_ = cfg
        self.new_position_, self.old_position_ = new_pos.name, old_pos.name
        if run_dir is not None:
            save_bridge(run_dir / S.BRIDGE_WEIGHTS, bridge, cfg, extra={"best_epoch": best_epoch,
                                                                        "new_position": new_pos.name,
                                                                        "old_position": old_pos.name})
        return self

    def check_fitted(self) -> None:
        if not hasattr(self, "bridge_"):
            raise NotFittedError("BridgeTrainer is not fitted; call fit(...) first.")


def save_bridge(path: str | Path, bridge: Bridge, config: BridgeConfig, *, extra: dict | None = None) -> Path:
    """Bridge weights as safetensors, with its shape and config in the header."""
    import json

    meta = {"dims": json.dumps(bridge.dims()), "config": json.dumps(config.to_dict()),
            "extra": json.dumps(extra or {}, default=str), "schema_version": str(S.SCHEMA_VERSION)}
    return atomic_save_safetensors(path, bridge.state_dict(), metadata=meta)
