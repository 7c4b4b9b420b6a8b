"""Self-supervised pre-training of the built-in encoders by masked reconstruction.

Random contiguous spans of each z-scored input window are set to zero; a
small linear decoder maps the encoder's last-layer tokens back to the
window, and the loss is the mean squared error on the masked samples only
(SimMIM-style, Xie et al. 2022; LaBraM and HuBERT-ECG pre-train with masked
objectives too). The decoder is thrown away; only the adapter's
``state_dict()`` is saved. EEG windows are trained with a random subset of
their channels per batch so the electrode embeddings learn to work for any
montage; the EEG weights carry no montage (the electrode table covers all
10-20 names).

Training is time-boxed but deterministic: a short timing probe on a copy
of the model turns ``minutes`` into a fixed number of steps, and the
learning-rate schedule, batches, masks and dropout depend only on ``seed``
and that step count (``steps=`` replays a run exactly).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._check import check_option, check_range
from .._io import atomic_save_safetensors, atomic_write_json
from ..device import resolve_device
from ..models.base import EncoderAdapter
from .data import PREPS, WindowSet

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]


@dataclass
class PretrainConfig:
    """Settings of one pre-training run (all stored in the weights' metadata)."""

    encoder: str = "ecg"
    minutes: float = 8.0
    steps: int | None = None           # fixed step count (overrides minutes; replays a run exactly)
    seed: int = 0
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_frac: float = 0.05
    mask_ratio: float = 0.5            # fraction of each window (per channel) that is masked
    mask_span_s: tuple[float, float] = (0.3, 1.5)  # lengths of masked spans (ECG/PPG)
    eeg_mask: str = "patch"            # EEG: "patch" (whole 1 s channel patches) or "span" (like ECG/PPG)
    min_chans: int = 3                 # EEG: fewest channels in a random subset
    val_frac: float = 0.03
    eval_every: int = 50
    max_overrun: float = 1.25          # hard stop at max_overrun * minutes

    def __post_init__(self) -> None:
        check_option("encoder", self.encoder, ("ecg", "ppg", "eeg"), owner="PretrainConfig")
        check_range("minutes", self.minutes, low=0, low_inclusive=False, owner="PretrainConfig")
        if self.steps is not None:
            check_range("steps", self.steps, low=1, integer=True, owner="PretrainConfig")
        check_range("batch_size", self.batch_size, low=1, integer=True, owner="PretrainConfig")
        check_range("mask_ratio", self.mask_ratio, low=0.05, high=0.9, owner="PretrainConfig")
        check_option("eeg_mask", self.eeg_mask, ("patch", "span"), owner="PretrainConfig")


@dataclass
class PretrainResult:
    """What a run produced: the trained adapter, its loss curve and bookkeeping."""

    encoder: EncoderAdapter
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    planned_steps: int = 0
    seconds: float = 0.0
    n_windows: int = 0
    first_loss: float = float("nan")
    last_loss: float = float("nan")


class TokenDecoder(nn.Module):
    """Last-layer tokens -> reconstructed window (discarded after pre-training).

    Single-channel encoders: token i predicts ``ceil(n_times / n_tokens)`` samples,
    linearly resampled to ``n_times``. Multi-channel (EEG, channel-major tokens):
    each (channel, patch) token predicts its own patch.
    """

    def __init__(self, width: int, samples_per_token: int) -> None:
        super().__init__()
        self.samples_per_token = samples_per_token
        self.head = nn.Linear(width, samples_per_token)

    def forward(self, tokens: torch.Tensor, n_chans: int, n_times: int) -> torch.Tensor:
        b, n, _ = tokens.shape
        out = self.head(tokens)  # (B, N, P)
        per_chan = n // n_chans
        sig = out.reshape(b, n_chans, per_chan * self.samples_per_token)
        if sig.shape[-1] != n_times:
            sig = F.interpolate(sig, size=n_times, mode="linear", align_corners=False)
        return sig


def span_mask(rng: np.random.Generator, n_chans: int, n_times: int, *, ratio: float, span: tuple[int, int]
              ) -> np.ndarray:
    """Boolean (n_chans, n_times): random contiguous spans covering about ``ratio`` of each channel."""
    mask = np.zeros((n_chans, n_times), dtype=bool)
    target = int(ratio * n_times)
    for c in range(n_chans):
        for _ in range(200):
            if mask[c].sum() >= target:
                break
            length = int(rng.integers(span[0], span[1] + 1))
            start = int(rng.integers(0, max(1, n_times - length)))
            mask[c, start:start + length] = True
    return mask


def patch_mask(rng: np.random.Generator, n_chans: int, n_times: int, *, ratio: float, patch: int) -> np.ndarray:
    """Boolean (n_chans, n_times): whole (channel, patch) cells masked, about ``ratio`` of them."""
    n_patch = n_times // patch
    cells = rng.random((n_chans, n_patch)) < ratio
    cells[0, int(rng.integers(n_patch))] = True  # never an empty mask
    mask = np.repeat(cells, patch, axis=1)
    return np.pad(mask, ((0, 0), (0, n_times - mask.shape[1])))


class MaskedPretrainer:
    """Masked-reconstruction trainer for one adapter (the adapter is trained in place)."""

    def __init__(self, encoder: EncoderAdapter, config: PretrainConfig, *, device=None) -> None:
        self.encoder = encoder
        self.config = config
        self.device = resolve_device(device)
        self.sfreq = float(encoder.spec.sfreq)
        self.multichannel = config.encoder == "eeg"
        self.patch = int(getattr(getattr(encoder, "config", None), "patch_samples", 0) or 0)
        self.all_electrodes = (encoder.embed.electrodes.clone() if self.multichannel else None)  # type: ignore[union-attr]

    # -- pieces --------------------------------------------------------------------
    def _decoder(self, n_times: int) -> TokenDecoder:
        x = torch.zeros(1, self.encoder.spec.n_chans or 1, n_times, device=self.device)
        with torch.no_grad():
            was = self.encoder.training
            self.encoder.eval()
            tok = self.encoder.last_tokens(x)
            self.encoder.train(was)
        n_tokens, width = tok.shape[1] // x.shape[1], tok.shape[2]
        return TokenDecoder(width, self.patch if self.multichannel else math.ceil(n_times / n_tokens))

    def _masks(self, rng: np.random.Generator, b: int, c: int, t: int) -> np.ndarray:
        cfg = self.config
        if self.multichannel and cfg.eeg_mask == "patch":
            return np.stack([patch_mask(rng, c, t, ratio=cfg.mask_ratio, patch=self.patch) for _ in range(b)])
        span = (max(1, int(cfg.mask_span_s[0] * self.sfreq)), max(1, int(cfg.mask_span_s[1] * self.sfreq)))
        return np.stack([span_mask(rng, c, t, ratio=cfg.mask_ratio, span=span) for _ in range(b)])

    def _select_channels(self, rng: np.random.Generator, n_chans: int) -> np.ndarray:
        k = int(rng.integers(min(self.config.min_chans, n_chans), n_chans + 1))
        return np.sort(rng.choice(n_chans, size=k, replace=False))

    def _loss(self, decoder: TokenDecoder, x: np.ndarray, mask: np.ndarray, chans: np.ndarray | None
              ) -> torch.Tensor:
        xt = torch.from_numpy(x).to(self.device)
        mt = torch.from_numpy(mask).to(self.device)
        if chans is not None:
            self.encoder.embed.electrodes = self.all_electrodes[torch.as_tensor(chans)].to(self.device)  # type: ignore[union-attr,index]
        tokens = self.encoder.last_tokens(xt.masked_fill(mt, 0.0))
        rec = decoder(tokens, xt.shape[1], xt.shape[2])
        return ((rec - xt) ** 2)[mt].mean()

    def _lr(self, step: int, total: int) -> float:
        warm = max(1, int(self.config.warmup_frac * total))
        if step < warm:
            return self.config.lr * (step + 1) / warm
        prog = (step - warm) / max(1, total - warm)
        return self.config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, prog)))

    # -- the loop ------------------------------------------------------------------
    def _run(self, x: np.ndarray, total: int, *, seed: int, deadline_s: float | None,
             on_progress: ProgressFn | None, val: np.ndarray | None, history: list[dict] | None) -> int:
        cfg = self.config
        rng = np.random.default_rng(seed)
        self.encoder.to(self.device).unfreeze().train()
        decoder = self._decoder(x.shape[2]).to(self.device)
        params = [p for p in list(self.encoder.parameters()) + list(decoder.parameters()) if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        val_rng = np.random.default_rng(seed + 1)
        val_batches = []
        if val is not None and len(val):
            for i in range(0, min(len(val), 4 * cfg.batch_size), cfg.batch_size):
                xv = val[i:i + cfg.batch_size]
                chans = self._select_channels(val_rng, xv.shape[1]) if self.multichannel else None
                xv = xv[:, chans] if chans is not None else xv
                val_batches.append((xv, self._masks(val_rng, *xv.shape), chans))
        t0 = time.perf_counter()
        running: list[float] = []
        done = 0
        for step in range(total):
            if deadline_s is not None and time.perf_counter() - t0 > deadline_s:
                log.warning("pre-training hit its hard time limit after %d of %d steps", step, total)
                break
            idx = rng.choice(len(x), size=min(cfg.batch_size, len(x)), replace=False)
            xb = x[idx]
            chans = self._select_channels(rng, xb.shape[1]) if self.multichannel else None
            if chans is not None:
                xb = xb[:, chans]
            mask = self._masks(rng, *xb.shape)
            for g in opt.param_groups:
                g["lr"] = self._lr(step, total)
            loss = self._loss(decoder, np.ascontiguousarray(xb), mask, chans)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            running.append(float(loss.detach()))
            done = step + 1
            last = step == total - 1
            if history is not None and ((step + 1) % cfg.eval_every == 0 or last or step == 0):
                rec = {"step": step + 1, "train_loss": float(np.mean(running)), "lr": self._lr(step, total),
                       "seconds": round(time.perf_counter() - t0, 2)}
                if val_batches:
                    self.encoder.eval()
                    with torch.no_grad():
                        rec["val_loss"] = float(np.mean([float(self._loss(decoder, xv, mv, cv))
                                                         for xv, mv, cv in val_batches]))
                    self.encoder.train()
                history.append(rec)
                running = []
                log.info("step %d/%d train %.4f val %s", step + 1, total, rec["train_loss"], rec.get("val_loss"))
            if on_progress is not None:
                on_progress(step + 1, total, f"masked reconstruction loss {running[-1]:.4f}")
        if self.multichannel:
            self.encoder.embed.electrodes = self.all_electrodes.to(self.device)  # type: ignore[union-attr]
        self.encoder.eval()
        return done

    def fit(self, windows: np.ndarray, *, on_progress: ProgressFn | None = None) -> PretrainResult:
        """Train on z-scored windows ``(n, n_chans, n_times)``; returns the trained encoder and history."""
        cfg = self.config
        x = np.ascontiguousarray(windows, dtype=np.float32)
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(x))
        n_val = int(cfg.val_frac * len(x)) if len(x) >= 100 else 0
        val, train = x[order[:n_val]], x[order[n_val:]]
        with torch.random.fork_rng(devices=[]):
            if cfg.steps is not None:
                total = int(cfg.steps)
            else:  # timing probe on a copy: fixes the step count, leaves the model untouched
                probe = MaskedPretrainer(copy.deepcopy(self.encoder), cfg, device=self.device)
                torch.manual_seed(cfg.seed)
                ticks: list[float] = []
                probe._run(train, 8, seed=cfg.seed + 99, deadline_s=None, val=None, history=None,
                           on_progress=lambda *_: ticks.append(time.perf_counter()))
                sec_per_step = (ticks[-1] - ticks[2]) / (len(ticks) - 3)  # the first steps are slow (warm-up)
                total = max(10, int(cfg.minutes * 60 / sec_per_step))
                log.info("timing probe: %.3f s/step -> %d steps in %.1f min", sec_per_step, total, cfg.minutes)
            torch.manual_seed(cfg.seed)
            history: list[dict] = []
            t0 = time.perf_counter()
            deadline = cfg.max_overrun * cfg.minutes * 60 if cfg.steps is None else None
            done = self._run(train, total, seed=cfg.seed, deadline_s=deadline, on_progress=on_progress,
                             val=val, history=history)
            seconds = time.perf_counter() - t0
        self.encoder.freeze()
        return PretrainResult(self.encoder, history, done, total, seconds, len(x),
                              history[0]["train_loss"] if history else float("nan"),
                              history[-1]["train_loss"] if history else float("nan"))


def pretrain_windows(name: str, data_root: str | Path | None, *, seed: int = 0,
                     include_simulated: bool = True) -> tuple[WindowSet, dict]:
    """The unlabelled windows each encoder is pre-trained on, and a description of them.

    CinC windows stop at 280 s so the labelled 284-300 s span used by the probe is never seen.
    """
    from . import data as zd

    parts: list[WindowSet] = []
    used: dict[str, int] = {}
    if data_root is not None:
        root = Path(data_root)
        if name in ("ecg", "eeg"):
            kind = name.upper()
            ws = zd.eegmat_windows(root, kind, step_s=5.0)
            parts.append(ws)
            used[f"eegmat {kind} (step 5 s)"] = len(ws)
        if name in ("ecg", "ppg"):
            kind = name.upper()
            ws = zd.cinc_windows(root, kind, step_s=5.0 if name == "ecg" else 2.5, span_s=(0.0, 280.0))
            parts.append(ws)
            used[f"cinc2015_vt {kind} 0-280 s (step {5.0 if name == 'ecg' else 2.5:g} s)"] = len(ws)
    if include_simulated and name in ("ecg", "ppg"):
        ws = zd.simulated_windows(name.upper(), n_signals=60, duration_s=60.0, step_s=5.0, seed=seed)
        parts.append(ws)
        used[f"neurokit2 {name}_simulate (60 x 60 s, step 5 s)"] = len(ws)
    return WindowSet.concat(parts), used


def save_pretrained(result: PretrainResult, config: PretrainConfig, out_dir: str | Path, *,
                    data_used: dict, objective: str = "masked reconstruction (MSE on masked samples)") -> Path:
    """Write ``<name>.safetensors`` (adapter weights + metadata) and ``pretrain_<name>.json`` (loss curve)."""
    import platform

    out = Path(out_dir)
    name = config.encoder
    meta = {
        "encoder": f"builtin:{name}", "objective": objective, "data": "; ".join(f"{k}: {v}" for k, v in data_used.items()),
        "seed": str(config.seed), "steps": str(result.steps), "planned_steps": str(result.planned_steps),
        "minutes": f"{result.seconds / 60:.2f}", "batch_size": str(config.batch_size), "lr": str(config.lr),
        "mask_ratio": str(config.mask_ratio), "n_windows": str(result.n_windows),
        "torch": torch.__version__, "hardware": f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s)",
    }
    state = {k: v for k, v in result.encoder.state_dict().items()}
    path = atomic_save_safetensors(out / f"{name}.safetensors", state, metadata=meta)
    atomic_write_json(out / f"pretrain_{name}.json", {
        "config": asdict(config), "metadata": meta, "data": data_used, "history": result.history,
        "first_loss": result.first_loss, "last_loss": result.last_loss, "seconds": result.seconds,
    })
    return path


def run_pretraining(name: str, *, data_root: str | Path | None, out_dir: str | Path, minutes: float = 8.0,
                    steps: int | None = None, seed: int = 0, device=None,
                    on_progress: ProgressFn | None = None, **overrides) -> PretrainResult:
    """Build the random ``builtin:<name>``, pre-train it on the development data, save weights and curve.

    ``overrides`` are further ``PretrainConfig`` fields (``lr``, ``batch_size``, ``mask_span_s``...).
    """
    from ..models.builtin import build_builtin

    config = PretrainConfig(encoder=name, minutes=minutes, steps=steps, seed=seed, **overrides)
    ws, used = pretrain_windows(name, data_root, seed=seed)
    ch_names: Sequence[str] | None = ws.ch_names if name == "eeg" else None
    encoder = build_builtin(name, ch_names=ch_names, seed=seed)
    assert ws.x.shape[2] == PREPS[name].n_times
    log.info("pre-training builtin:%s on %d windows %s", name, len(ws), used)
    result = MaskedPretrainer(encoder, config, device=device).fit(ws.x, on_progress=on_progress)
    save_pretrained(result, config, out_dir, data_used=used)
    return result
