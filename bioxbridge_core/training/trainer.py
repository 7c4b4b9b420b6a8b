"""BridgeTrainer: train only the bridge, with cached frozen features (METHOD.md step 4).

Per step only the old model's stages from l on run (forward and backward); the
loss compares their last-layer output with the cached output of the old model
on the real old window. The best epoch is chosen on a held-out pair-validation
split by subject, never on test data. With ``run_dir`` every epoch is
checkpointed atomically, ``fit`` on the same folder resumes, and a ``STOP``
file (or ``should_stop()``) stops cleanly between steps.

Memory: z and the targets are memory-mapped files of the feature store
(``training.cache``), read one batch at a time. Several processes: launched by
``torchrun`` (``distributed.session``), the bridge alone is wrapped in
DistributedDataParallel (the frozen encoders stay outside), every rank sees the
same global batches and takes its share of each, and rank 0 writes checkpoints,
history and weights; the result equals one process with the same global batch
(see ``distributed``).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import _npy
from .. import distributed as dist
from .._check import check_window_shapes
from .._io import atomic_save_safetensors
from ..bridge.config import BridgeConfig
from ..bridge.network import Bridge
from ..device import resolve_device
from ..errors import ConfigError, NotFittedError, RunError, StopRequested
from ..models.base import EncoderAdapter
from ..runs import schema as S
from ..runs.store import write_history, write_status
from . import checkpoint as ckpt
from .cache import BridgeCache, compute_cache, streaming_target_stats
from .callbacks import StopCheck
from .split import pair_val_split
from ..bridge.objective import BridgeObjective

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
        if a.ndim == 0 or a.shape[0] == 0:
            h.update(np.ascontiguousarray(a).view(np.uint8).data)
            continue
        for sl in _npy.row_chunks(a.shape[0], _npy.rows_per_chunk(a)):  # memory maps: one chunk at a time
            h.update(np.ascontiguousarray(a[sl]).view(np.uint8).data)
            _npy.release(a)
    return h.hexdigest()


class BridgeTrainer:
    """Fit a ``Bridge`` between a frozen new encoder (read at m) and a frozen old encoder (written at l).

    Parameters
    ----------
    config : BridgeConfig (rank, prototypes, loss, lr, epochs, batch size, seed, val fraction).
    device : ``None`` uses the old encoder's device; ``"auto"``/``"cuda"``/``"cpu"`` move both encoders there.
        Under torchrun with CUDA each rank uses ``cuda:<LOCAL_RANK>``.
    cache : where the frozen features live: ``True`` the shared cache folder (reused across runs
        and with alignment), a folder, or ``False`` (in memory; for small data).

    Attributes after ``fit``: ``bridge_`` (best epoch's weights), ``history_`` (per-epoch dicts),
    ``best_epoch_`` (1-based, None if no epoch finished), ``best_val_loss_``, ``initial_loss_``,
    ``n_pairs_``, ``n_train_``, ``n_val_``, ``train_index_``, ``val_index_``, ``n_params_``,
    ``stopped_``, ``resumed_from_`` (epoch resumed after, or None).
    """

    def __init__(self, config: BridgeConfig | None = None, *, device: str | None = None,
                 cache: bool | str | Path = True) -> None:
        self.config = config
        self.device = device
        self.cache = cache

    # -------------------------------------------------------------------------------------------
    def fit(self, old_encoder: EncoderAdapter, new_encoder: EncoderAdapter, x_old: np.ndarray, x_new: np.ndarray,
            *, new_position: str | int, old_position: str | int, groups: Sequence | np.ndarray | None = None,
            run_dir: str | Path | None = None, on_step: StepFn | None = None, on_epoch: StepFn | None = None,
            should_stop: Callable[[], bool] | None = None, on_progress: ProgressFn | None = None,
            head: torch.nn.Module | None = None,
            features: Mapping[str, np.ndarray] | None = None) -> "BridgeTrainer":
        """Train the bridge on paired windows ``x_old`` (n, C_old, T_old) / ``x_new`` (n, C_new, T_new).

        With ``head`` (the old task head), every epoch also reports ``val_agreement``: the share of
        held-out pairs where the bridged prediction equals the old model's own prediction on the
        real old signal (no labels needed). ``features`` (``{"new:out:<m>": z, "old:last": targets}``,
        e.g. the union of ``features`` shards, rows in the order of ``x_old``) replaces the pass of
        both encoders over all pairs. Windows may be memory maps; they are read in batches.
        """
        cfg = self.config if self.config is not None else BridgeConfig()
        if not isinstance(cfg, BridgeConfig):
            raise ConfigError(f"config must be a BridgeConfig, got {type(cfg).__name__}.")
        x_old = check_window_shapes(x_old, old_encoder, "x_old")
        x_new = check_window_shapes(x_new, new_encoder, "x_new")
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
        want = dist.rank_device(self.device)
        device = resolve_device(want) if want is not None else old_encoder._param_device()
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
            "config": {k: v for k, v in cfg.to_dict().items() if k not in ("epochs", "feature_batch_size", "patience")},
        }
        resume = ckpt.load_checkpoint(run_dir) if run_dir is not None else None
        if resume is not None and resume[0].get("fingerprint") != fingerprint:
            old_fp = resume[0].get("fingerprint") or {}
            diff = sorted(k for k in set(old_fp) | set(fingerprint) if old_fp.get(k) != fingerprint.get(k))
            raise RunError(f"{ckpt.checkpoint_path(run_dir)} was written for different settings or data "
                           f"({', '.join(diff)}); use a new run folder or delete its checkpoint.")

        flags = (_frozen(old_encoder), _frozen(new_encoder))
        self._groups = groups  # subjects of the pairs (per-subject calibration, bridge.objective)
        try:
            with dist.main_first():  # rank 0 fills the disk cache; the others then read it
                cache = compute_cache(
                    old_encoder, new_encoder, x_old, x_new, new_position=new_pos.index,
                    old_position=old_pos.index, batch_size=cfg.feature_batch_size, proto_rows=train_idx,
                    n_proto_tokens=cfg.n_prototypes if (cfg.prototype_init == "tokens" and resume is None) else 0,
                    seed=cfg.seed, on_progress=on_progress if dist.is_main() else None,
                    cache=self.cache,
                    target_dtype=cfg.target_dtype, features=features)
            if device.type != "cpu" and cache.nbytes() < 2 * 1024**3:
                cache = cache.to(device)
            return self._train(cfg, old_encoder, cache, new_pos, old_pos, device, train_idx, val_idx, fingerprint,
                               resume, run_dir, stop, on_step, on_epoch, on_progress, head)
        finally:
            _restore(old_encoder, flags[0])
            _restore(new_encoder, flags[1])

    # -------------------------------------------------------------------------------------------
    def _train(self, cfg: BridgeConfig, old_encoder: EncoderAdapter, cache: BridgeCache, new_pos, old_pos,
               device: torch.device, train_idx: np.ndarray, val_idx: np.ndarray, fingerprint: dict,
               resume, run_dir: Path | None, stop: StopCheck, on_step, on_epoch, on_progress,
               head: torch.nn.Module | None = None) -> "BridgeTrainer":
        bridge = Bridge.from_positions(new_pos, old_pos, cfg)
        if cfg.prototype_init == "tokens" and cache.proto_tokens is not None:
            bridge.init_prototypes(cache.proto_tokens, seed=cfg.seed)
        bridge.to(device)
        model = dist.wrap_ddp(bridge, device)  # only the trainable part; frozen encoders stay outside
        main = dist.is_main()
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
        last_layout = old_encoder.positions[-1].out_layout
        objective = BridgeObjective(cfg, last_layout)  # pooled / calibrated views of z and the targets
        cache = objective.prepare(cache, getattr(self, "_groups", None), train_idx)
        objective.attach(bridge)
        stats = None
        if cfg.target_norm == "standardise":
            stats = tuple(t.to(device) for t in streaming_target_stats(cache, train_idx))
        gen = torch.Generator().manual_seed(cfg.seed)
        l_idx = old_pos.index

        def predict(idx: np.ndarray, net: torch.nn.Module = bridge) -> torch.Tensor:
            return objective.view(old_encoder.forward_from(net(cache.rows("z", idx, device)), l_idx))

        if head is not None:
            head.to(device)

        @torch.no_grad()
        def evaluate(idx: np.ndarray) -> tuple[float | None, float | None]:
            """Mean loss over ``idx`` and, with a head, the share of windows where the bridged prediction
            equals the old model's own (one pass for both)."""
            if len(idx) == 0:
                return None, None
            total, same, pooled = 0.0, 0.0, []
            step = max(cfg.batch_size, cfg.feature_batch_size)
            mine_rows = dist.split_rows(idx)  # each rank scores its share; sums are added over ranks
            for s in range(0, len(mine_rows), step):
                b = mine_rows[s: s + step]
                pred, target = predict(b), cache.rows("target", b, device)
                total += float(per_sample_loss(pred, target, cfg.loss, stats).sum())
                if head is not None:
                    pooled.append(pred if objective.pooled else objective.pool(pred))
            if head is not None and len(mine_rows):  # calibrated heads see all of a rank's rows at once
                same = objective.agreement(head, torch.cat(pooled), mine_rows) * len(mine_rows)
            total, same = (float(v) for v in dist.all_reduce_sum(torch.tensor([total, float(same)],
                                                                              dtype=torch.float64)))
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
        if main and run_dir is not None and stop.stop_file is not None and stop.stop_file.exists():
            logger.warning("%s exists: training stops before the next step (delete it to continue).", stop.stop_file)

        steps_per_epoch = int(np.ceil(len(train_idx) / cfg.batch_size))
        total_steps = steps_per_epoch * cfg.epochs
        last_val = history[-1]["val_loss"] if history else self.initial_loss_.get("val")
        self.stopped_ = False
        world = dist.world_size()
        if not main:  # progress and callbacks come from rank 0 only
            on_step = on_epoch = on_progress = None
        bridge.train()
        try:
            for epoch in range(start_epoch + 1, cfg.epochs + 1):
                t0 = time.perf_counter()
                perm = torch.randperm(len(train_idx), generator=gen).numpy()  # same on every rank
                loss_sum = 0.0
                for step in range(steps_per_epoch):
                    if dist.any_rank(stop()):
                        raise StopRequested(f"stop requested during epoch {epoch}")
                    b = train_idx[perm[step * cfg.batch_size: (step + 1) * cfg.batch_size]]  # the global batch
                    mine, weight = dist.local_share(b), 1.0
                    if len(mine) == 0:  # fewer pairs than ranks in the last batch: take part with weight 0
                        mine, weight = b[:1], 0.0
                    per_pair = per_sample_loss(predict(mine, model), cache.rows("target", mine, device), cfg.loss,
                                               stats)
                    # DDP averages gradients over ranks: scale so that the result is the global batch's mean
                    loss = per_pair.sum() * (weight * world / len(b))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    loss_sum += float(per_pair.detach().sum()) * weight
                    global_step = (epoch - 1) * steps_per_epoch + step + 1
                    if on_step is not None:
                        on_step({"epoch": epoch, "step": step + 1, "steps_per_epoch": steps_per_epoch,
                                 "global_step": global_step, "total_steps": total_steps,
                                 "train_loss": float(per_pair.detach().mean()), "val_loss": last_val})
                    if on_progress is not None:
                        on_progress(global_step, total_steps, f"epoch {epoch}/{cfg.epochs}")
                loss_sum = float(dist.all_reduce_sum(torch.tensor([loss_sum], dtype=torch.float64))[0])
                _npy.trim_heap()  # an epoch's freed batches back to the OS: memory stays flat
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
                if cfg.select_on == "agreement" and val_agreement is not None:
                    score = (1.0 - val_agreement) + 1e-3 * score  # agreement first, loss breaks ties
                if score < best_score:
                    best_score, best_epoch = score, epoch
                    best_state = copy.deepcopy(bridge.state_dict())
                if run_dir is not None and main:
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
                if cfg.patience and best_epoch is not None and epoch - best_epoch >= cfg.patience:
                    logger.info("early stop: pair-val score has not improved for %d epochs (best epoch %d)",
                                cfg.patience, best_epoch)
                    break
        except StopRequested as exc:
            self.stopped_ = True
            done = history[-1]["epoch"] if history else 0
            logger.info("%s; keeping epoch %s (checkpoint after epoch %d)", exc, best_epoch, done)
            if run_dir is not None and main:
                write_status(run_dir, "stopped", f"stopped by request after epoch {done} of {cfg.epochs}")
        finally:
            cache.release()

        if best_state is not None:
            bridge.load_state_dict(best_state)
        bridge.eval()
        self.bridge_, self.history_, self.best_epoch_ = bridge, history, best_epoch
        self.best_val_loss_ = min((r["val_loss"] for r in history if r["val_loss"] is not None), default=None)
        self.config_ = cfg
        self.new_position_, self.old_position_ = new_pos.name, old_pos.name
        if run_dir is not None and main:
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
