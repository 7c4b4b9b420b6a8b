"""Pre-training of the built-in encoders: masked reconstruction plus physiology targets.

Each step draws one window length (log-uniform over the encoder's whole range, whole seconds)
and a batch of windows of that length from the annotated corpus (``zoo.corpus``), z-scored per
window and channel as the product feeds them. The batch is split in two:

- *masked reconstruction* (first half): random contiguous spans of the input are set to zero;
  a linear decoder maps each last-layer token back to its stretch of signal; the loss is the
  mean squared error on the masked samples only (SimMIM-style, Xie et al. 2022; LaBraM and
  HuBERT-ECG pre-train with masked objectives too);
- *physiology regression* (second half, unmasked): one linear layer on the mean-pooled
  last-layer tokens -- exactly the features the task head, the probe and the bridge's position
  selection read -- predicts the window's physiological measures (``zoo.physio``), standardised
  over the training corpus; windows where a measure is undefined (too few beats) are masked out
  of the loss. This follows PaPaGei's morphology-aware pre-training (Pillai et al., ICLR 2025):
  the encoder is asked to predict what a physiologist would measure, so those quantities become
  linearly readable from pooled features.

Batch size scales inversely with the token count so each step costs about the same whatever
the window length; for EEG a long window also uses fewer channels (a random subset of
electrodes per step, which additionally teaches the electrode embeddings any montage). The
decoder and the physiology head are thrown away; only the adapter's ``state_dict()`` is saved.

Training is time-boxed but deterministic: a short timing probe on a copy of the model turns
``minutes`` into a fixed number of steps, and the learning-rate schedule, lengths, batches,
masks and dropout depend only on ``seed`` and that step count (``steps=`` replays a run).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .._check import check_option, check_range
from .._io import atomic_save_safetensors, atomic_write_json
from ..data.recording import EEG_1020
from ..device import resolve_device
from ..models.base import EncoderAdapter
from .corpus import Corpus, Signal
from .data import zscore
from .physio import TARGET_NAMES, eeg_band_targets, window_targets

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]
ENCODERS = ("ecg", "ppg", "eeg", "eda")
#: default masked-span lengths in seconds per encoder (EDA is slow: 4 Hz, responses over seconds)
DEFAULT_MASK_SPAN_S = {"ecg": (0.1, 0.5), "ppg": (0.1, 0.5), "eeg": (0.1, 0.5), "eda": (1.0, 4.0)}
#: tokens per sample at the reference batch: the EEG's 19 channels x 10 patches
EEG_TOKEN_BUDGET = 190


@dataclass
class PretrainConfig:
    """Settings of one pre-training run (all stored in the weights' metadata and ``pretrain_<name>.json``)."""

    encoder: str = "ecg"
    minutes: float = 30.0
    steps: int | None = None           # fixed step count (overrides minutes; replays a run exactly)
    seed: int = 0
    batch_size: int = 16               # windows per step at the 10 s reference length (scaled by length)
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_frac: float = 0.05
    mask_ratio: float = 0.5            # fraction of each masked window (per channel) set to zero
    mask_span_s: tuple[float, float] | None = None  # masked span lengths; None = DEFAULT_MASK_SPAN_S
    eeg_mask: str = "span"             # EEG: "span" (like ECG/PPG) or "patch" (whole 1 s channel patches)
    min_chans: int = 3                 # EEG: fewest channels in a random subset
    physio_weight: float = 1.0         # weight of the physiology loss against the reconstruction loss
    recon_frac: float = 0.5            # share of each batch used for masked reconstruction
    min_window_s: float | None = None  # window lengths drawn; None = the encoder's declared range
    max_window_s: float | None = None
    val_frac: float = 0.1              # share of subjects per dataset held out for the validation curves
    val_windows: int = 32              # validation windows per length (4, 10 and 30 s)
    stat_windows: int = 1500           # windows drawn to standardise the targets
    eval_every: int = 200
    plan_margin: float = 0.9           # --minutes plans this share of the time box (shared CPUs slow down)
    max_overrun: float = 1.25          # hard stop at max_overrun * minutes

    def __post_init__(self) -> None:
        check_option("encoder", self.encoder, ENCODERS, owner="PretrainConfig")
        check_range("minutes", self.minutes, low=0, low_inclusive=False, owner="PretrainConfig")
        if self.steps is not None:
            check_range("steps", self.steps, low=1, integer=True, owner="PretrainConfig")
        check_range("batch_size", self.batch_size, low=2, integer=True, owner="PretrainConfig")
        check_range("mask_ratio", self.mask_ratio, low=0.05, high=0.9, owner="PretrainConfig")
        check_range("physio_weight", self.physio_weight, low=0, owner="PretrainConfig")
        check_range("recon_frac", self.recon_frac, low=0, high=1, owner="PretrainConfig")
        check_range("val_frac", self.val_frac, low=0, high=0.5, owner="PretrainConfig")
        check_option("eeg_mask", self.eeg_mask, ("patch", "span"), owner="PretrainConfig")
        if self.mask_span_s is None:
            self.mask_span_s = DEFAULT_MASK_SPAN_S[self.encoder]
        self.mask_span_s = (float(self.mask_span_s[0]), float(self.mask_span_s[1]))


@dataclass
class PretrainResult:
    """What a run produced: the trained adapter, its curves and bookkeeping."""

    encoder: EncoderAdapter
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    planned_steps: int = 0
    seconds: float = 0.0
    target_stats: dict = field(default_factory=dict)
    final_val: dict = field(default_factory=dict)
    first_loss: float = float("nan")
    last_loss: float = float("nan")


class TokenDecoder(nn.Module):
    """Last-layer tokens -> reconstructed window (discarded after pre-training).

    Each token predicts ``samples_per_token`` samples; per channel the predictions are laid end
    to end and linearly resampled to ``n_times`` (tokens are channel-major for EEG).
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
    target = max(1, int(ratio * n_times))
    lo, hi = max(1, min(span[0], n_times - 1)), max(1, min(span[1], n_times - 1))
    for c in range(n_chans):
        for _ in range(200):
            if mask[c].sum() >= target:
                break
            length = int(rng.integers(lo, max(lo, hi) + 1))
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


def held_out_subjects(corpus: Corpus, frac: float, seed: int) -> set[tuple[str, str]]:
    """(dataset, subject) pairs held out for validation: ``frac`` of each dataset's subjects (at least one
    when the dataset has three or more), chosen by ``seed``."""
    out: set[tuple[str, str]] = set()
    by_ds: dict[str, list[str]] = {}
    for s in corpus.signals:
        by_ds.setdefault(s.dataset, [])
        if s.subject not in by_ds[s.dataset]:
            by_ds[s.dataset].append(s.subject)
    for ds, subs in sorted(by_ds.items()):
        if frac <= 0 or len(subs) < 3:
            continue
        order = sorted(subs, key=lambda s: hashlib.sha1(f"{seed}:{ds}:{s}".encode()).hexdigest())
        out |= {(ds, s) for s in order[:max(1, int(round(frac * len(subs))))]}
    return out


@dataclass
class Batch:
    """One step's windows: z-scored ``x`` (B, C, T), standardised targets (B, K) (NaN = undefined)."""

    x: np.ndarray
    targets: np.ndarray
    chans: np.ndarray | None     # EEG: rows of the corpus montage used
    electrodes: np.ndarray | None  # EEG: electrode-table rows of those channels


class Pretrainer:
    """Masked reconstruction + physiology regression for one adapter (trained in place)."""

    def __init__(self, encoder: EncoderAdapter, config: PretrainConfig, *, device=None) -> None:
        self.encoder = encoder
        self.config = config
        self.device = resolve_device(device)
        self.name = config.encoder
        self.sfreq = float(encoder.spec.sfreq)
        lo, hi = encoder.spec.window_range
        self.min_s = max(lo, config.min_window_s or lo)
        self.max_s = min(hi, config.max_window_s or hi)
        self.multichannel = self.name == "eeg"
        self.patch = int(getattr(getattr(encoder, "config", None), "patch_samples", 0) or 0)
        self.n_table = len(EEG_1020)
        self.all_electrodes = encoder.embed.electrodes.clone() if self.multichannel else None  # type: ignore[union-attr]
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def n_base_targets(self) -> int:
        return len(TARGET_NAMES[self.name])

    @property
    def n_targets(self) -> int:
        """Global targets, plus for EEG one block per electrode-table row (NaN where absent)."""
        k = self.n_base_targets
        return k * (1 + self.n_table) if self.multichannel else k

    def draw_length(self, rng: np.random.Generator) -> float:
        """A window length in whole seconds, log-uniform over [min_s, max_s]."""
        lo, hi = math.ceil(self.min_s), math.floor(self.max_s)
        return float(min(hi, max(lo, round(math.exp(rng.uniform(math.log(lo), math.log(hi + 0.5)))))))

    def _batch_shape(self, rng: np.random.Generator, length_s: float, n_corpus_chans: int) -> tuple[int, int]:
        """(windows, channels) for one step at ``length_s``."""
        bs = self.config.batch_size
        if not self.multichannel:
            return int(np.clip(round(bs * 10.0 / length_s), 2, 4 * bs)), 1
        n_patch = int(length_s)
        hi = int(np.clip(EEG_TOKEN_BUDGET // n_patch, self.config.min_chans, n_corpus_chans))
        k = int(rng.integers(min(self.config.min_chans, hi), hi + 1))
        return int(np.clip(round(bs * EEG_TOKEN_BUDGET / (k * n_patch)), 2, 4 * bs)), k

    # -- data -----------------------------------------------------------------------------------
    def raw_targets(self, corpus: Corpus, picks: list[tuple[int, int]], n_times: int, windows: np.ndarray,
                    chans: np.ndarray | None) -> np.ndarray:
        """Unstandardised targets (B, n_targets) of windows ``picks`` (filtered signal ``windows``)."""
        if self.multichannel:
            per_ch = eeg_band_targets(windows, self.sfreq)  # (B, C, K)
            k = self.n_base_targets
            out = np.full((len(picks), self.n_targets), np.nan)
            out[:, :k] = per_ch.mean(axis=1)
            rows = self.all_electrodes[torch.as_tensor(chans)].numpy()  # type: ignore[index]
            for c, r in enumerate(rows):
                out[:, k * (1 + r):k * (2 + r)] = per_ch[:, c]
            return out
        return np.stack([window_targets(self.name, corpus.signals[i].ann, s, n_times, self.sfreq, windows[j, 0])
                         for j, (i, s) in enumerate(picks)])

    def make_batch(self, corpus: Corpus, rng: np.random.Generator, length_s: float, *,
                   count: int | None = None, n_chans: int | None = None) -> Batch:
        n_times = int(round(length_s * self.sfreq))
        n_corpus = corpus.signals[0].x.shape[0]
        b, k = self._batch_shape(rng, length_s, n_corpus)
        b, k = count or b, n_chans or k
        chans = np.sort(rng.choice(n_corpus, size=k, replace=False)) if self.multichannel else None
        picks = corpus.sample(rng, n_times, b)
        windows = np.stack([corpus.window(i, s, n_times, chans) for i, s in picks]).astype(np.float64)
        x, _ = zscore(windows)
        t = self.raw_targets(corpus, picks, n_times, windows, chans)
        if self.mean is not None:
            t = np.clip((t - self.mean) / self.std, -5.0, 5.0)
        electrodes = self.all_electrodes[torch.as_tensor(chans)].numpy() if chans is not None else None  # type: ignore[index]
        return Batch(x, t, chans, electrodes)

    def fit_target_stats(self, corpus: Corpus, rng: np.random.Generator, n_windows: int | None = None) -> dict:
        """Mean and SD of each target over windows of random lengths (after clipping the 1 % tails)."""
        import warnings

        n_windows = self.config.stat_windows if n_windows is None else n_windows
        rows = []
        while sum(len(r) for r in rows) < n_windows:
            L = self.draw_length(rng)
            rows.append(self.make_batch(corpus, rng, L).targets)
        t = np.concatenate(rows)
        with warnings.catch_warnings():  # EEG electrodes absent from the corpus have no values at all
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanpercentile(t, 1, axis=0), np.nanpercentile(t, 99, axis=0)
            tc = np.clip(t, lo, hi)
            self.mean = np.nan_to_num(np.nanmean(tc, axis=0))
            self.std = np.nan_to_num(np.nanstd(tc, axis=0), nan=1.0)
        self.std[self.std < 1e-6] = 1.0
        k = self.n_base_targets
        names = TARGET_NAMES[self.name]
        return {"n_windows": int(len(t)),
                "mean": dict(zip(names, map(float, self.mean[:k]))), "std": dict(zip(names, map(float, self.std[:k]))),
                "defined": dict(zip(names, map(float, np.isfinite(t[:, :k]).mean(axis=0))))}

    # -- model pieces ---------------------------------------------------------------------------
    def _heads(self) -> tuple[TokenDecoder, nn.Linear]:
        x = torch.zeros(1, self.encoder.spec.n_chans or 1, int(round(10 * self.sfreq)), device=self.device)
        with torch.no_grad():
            was = self.encoder.training
            self.encoder.eval()
            tok = self.encoder.last_tokens(x)
            self.encoder.train(was)
        n_tok, width = tok.shape[1] // x.shape[1], tok.shape[2]
        spt = self.patch if self.multichannel else math.ceil(x.shape[2] / n_tok)
        return TokenDecoder(width, spt), nn.Linear(width, self.n_targets)

    def _masks(self, rng: np.random.Generator, b: int, c: int, t: int) -> np.ndarray:
        cfg = self.config
        if self.multichannel and cfg.eeg_mask == "patch":
            return np.stack([patch_mask(rng, c, t, ratio=cfg.mask_ratio, patch=self.patch) for _ in range(b)])
        span = (max(1, int(cfg.mask_span_s[0] * self.sfreq)), max(1, int(cfg.mask_span_s[1] * self.sfreq)))
        return np.stack([span_mask(rng, c, t, ratio=cfg.mask_ratio, span=span) for _ in range(b)])

    def _set_montage(self, batch: Batch) -> None:
        if self.multichannel:
            self.encoder.embed.electrodes = torch.as_tensor(batch.electrodes, device=self.device)  # type: ignore[union-attr]

    def _losses(self, decoder: TokenDecoder, head: nn.Linear, batch: Batch, mask: np.ndarray, n_rec: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction loss on the first ``n_rec`` windows, physiology loss on the rest)."""
        xt = torch.from_numpy(np.ascontiguousarray(batch.x)).to(self.device)
        inp = xt.clone()
        if n_rec:
            inp[:n_rec] = inp[:n_rec].masked_fill(torch.from_numpy(mask).to(self.device), 0.0)
        self._set_montage(batch)
        tokens = self.encoder.last_tokens(inp)
        zero = tokens.sum() * 0.0
        rec_loss = zero
        if n_rec:
            rec = decoder(tokens[:n_rec], xt.shape[1], xt.shape[2])
            mt = torch.from_numpy(mask).to(self.device)
            rec_loss = ((rec - xt[:n_rec]) ** 2)[mt].mean()
        phys_loss = zero
        if n_rec < len(xt):
            pred = self._predict(head, tokens[n_rec:], batch)
            tgt = torch.from_numpy(batch.targets[n_rec:]).to(self.device, torch.float32)
            ok = torch.isfinite(tgt)
            if ok.any():
                phys_loss = ((pred - torch.nan_to_num(tgt)) ** 2)[ok].mean()
        return rec_loss, phys_loss

    def _predict(self, head: nn.Linear, tokens: torch.Tensor, batch: Batch) -> torch.Tensor:
        return head(tokens.mean(dim=1))

    def _lr(self, step: int, total: int) -> float:
        warm = max(1, int(self.config.warmup_frac * total))
        if step < warm:
            return self.config.lr * (step + 1) / warm
        prog = (step - warm) / max(1, total - warm)
        return self.config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, prog)))

    # -- validation -------------------------------------------------------------------------------
    def make_val(self, corpus: Corpus, seed: int) -> list[tuple[float, Batch, np.ndarray]]:
        """Fixed validation batches at 4, 10 and 30 s (all channels for EEG), with their masks."""
        rng = np.random.default_rng(seed + 7)
        out = []
        n_corpus = corpus.signals[0].x.shape[0] if corpus.signals else 1
        for L in (4.0, 10.0, 30.0):
            if not (self.min_s <= L <= self.max_s):
                continue
            b = self.make_batch(corpus, rng, L, count=self.config.val_windows,
                                n_chans=n_corpus if self.multichannel else None)
            out.append((L, b, self._masks(rng, *b.x.shape)))
        return out

    @torch.no_grad()
    def evaluate(self, decoder: TokenDecoder, head: nn.Linear, val: list[tuple[float, Batch, np.ndarray]]) -> dict:
        """Masked-reconstruction MSE and per-target R^2 of the physiology head on the validation batches."""
        was = self.encoder.training
        self.encoder.eval()
        rec, preds, tgts = [], [], []
        for _L, b, m in val:
            for sl in range(0, len(b.x), 16):
                sub = Batch(b.x[sl:sl + 16], b.targets[sl:sl + 16], b.chans, b.electrodes)
                r, _ = self._losses(decoder, head, sub, m[sl:sl + 16], len(sub.x))
                rec.append(float(r))
                self._set_montage(sub)
                tok = self.encoder.last_tokens(torch.from_numpy(np.ascontiguousarray(sub.x)).to(self.device))
                preds.append(self._predict(head, tok, sub).cpu().numpy()[:, :self.n_base_targets])
                tgts.append(sub.targets[:, :self.n_base_targets])
        self.encoder.train(was)
        p, t = np.concatenate(preds), np.concatenate(tgts)
        r2 = {}
        for j, name in enumerate(TARGET_NAMES[self.name]):
            ok = np.isfinite(t[:, j])
            if ok.sum() >= 5 and np.var(t[ok, j]) > 1e-9:
                r2[name] = float(1 - np.mean((p[ok, j] - t[ok, j]) ** 2) / np.var(t[ok, j]))
        return {"val_recon": float(np.mean(rec)), "val_r2": r2,
                "val_r2_mean": float(np.mean(list(r2.values()))) if r2 else float("nan")}

    # -- the loop ---------------------------------------------------------------------------------
    def _run(self, corpus: Corpus, total: int, *, seed: int, deadline_s: float | None,
             on_progress: ProgressFn | None, val: list | None, history: list[dict] | None
             ) -> tuple[int, TokenDecoder, nn.Linear]:
        cfg = self.config
        rng = np.random.default_rng(seed)
        self.encoder.to(self.device).unfreeze().train()
        decoder, head = self._heads()
        decoder, head = decoder.to(self.device), head.to(self.device)
        params = [p for m in (self.encoder, decoder, head) for p in m.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        t0 = time.perf_counter()
        run_rec: list[float] = []
        run_phys: list[float] = []
        done = 0
        for step in range(total):
            if deadline_s is not None and time.perf_counter() - t0 > deadline_s:
                log.warning("pre-training hit its hard time limit after %d of %d steps", step, total)
                break
            L = self.draw_length(rng)
            batch = self.make_batch(corpus, rng, L)
            n_rec = int(round(cfg.recon_frac * len(batch.x))) if cfg.physio_weight > 0 else len(batch.x)
            n_rec = min(max(n_rec, 1 if cfg.recon_frac > 0 else 0), len(batch.x) - (1 if cfg.recon_frac < 1 else 0))
            mask = self._masks(rng, n_rec, batch.x.shape[1], batch.x.shape[2]) if n_rec else np.zeros((0,), bool)
            for g in opt.param_groups:
                g["lr"] = self._lr(step, total)
            rec_loss, phys_loss = self._losses(decoder, head, batch, mask, n_rec)
            loss = rec_loss + cfg.physio_weight * phys_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            run_rec.append(float(rec_loss.detach()))
            run_phys.append(float(phys_loss.detach()))
            done = step + 1
            last = step == total - 1
            if history is not None and ((step + 1) % cfg.eval_every == 0 or last or step == 0):
                rec = {"step": step + 1, "recon_loss": float(np.mean(run_rec)),
                       "physio_loss": float(np.mean(run_phys)), "lr": self._lr(step, total),
                       "seconds": round(time.perf_counter() - t0, 2)}
                if val:
                    rec.update(self.evaluate(decoder, head, val))
                history.append(rec)
                run_rec, run_phys = [], []
                log.info("step %d/%d recon %.4f physio %.4f val %s", step + 1, total, rec["recon_loss"],
                         rec["physio_loss"], {k: round(v, 3) for k, v in rec.items() if k in ("val_recon", "val_r2_mean")})
            if on_progress is not None:
                on_progress(step + 1, total, f"loss {float(loss.detach()):.4f}")
        if self.multichannel:
            self.encoder.embed.electrodes = self.all_electrodes.to(self.device)  # type: ignore[union-attr]
        self.encoder.eval()
        return done, decoder, head

    def fit(self, corpus: Corpus, *, on_progress: ProgressFn | None = None) -> PretrainResult:
        """Train on ``corpus`` (validation subjects held out); returns the trained, frozen encoder and curves."""
        cfg = self.config
        held = held_out_subjects(corpus, cfg.val_frac, cfg.seed)
        train, val_corpus = corpus.split(lambda s: (s.dataset, s.subject) in held)
        rng = np.random.default_rng(cfg.seed + 3)
        stats = self.fit_target_stats(train, rng)
        val = self.make_val(val_corpus, cfg.seed) if val_corpus.signals else None
        with torch.random.fork_rng(devices=[]):
            if cfg.steps is not None:
                total = int(cfg.steps)
            else:  # timing probe on a copy: fixes the step count, leaves the model untouched
                probe = Pretrainer(copy.deepcopy(self.encoder), cfg, device=self.device)
                probe.mean, probe.std = self.mean, self.std
                torch.manual_seed(cfg.seed)
                ticks: list[float] = []
                probe._run(train, 32, seed=cfg.seed + 99, deadline_s=None, val=None, history=None,
                           on_progress=lambda *_: ticks.append(time.perf_counter()))
                sec_per_step = (ticks[-1] - ticks[3]) / (len(ticks) - 4)  # the first steps are slow (warm-up)
                total = max(10, int(cfg.plan_margin * cfg.minutes * 60 / sec_per_step))
                log.info("timing probe: %.3f s/step -> %d steps in %.1f min", sec_per_step, total, cfg.minutes)
            torch.manual_seed(cfg.seed)
            history: list[dict] = []
            t0 = time.perf_counter()
            deadline = cfg.max_overrun * cfg.minutes * 60 if cfg.steps is None else None
            done, decoder, head = self._run(train, total, seed=cfg.seed, deadline_s=deadline,
                                            on_progress=on_progress, val=val, history=history)
            seconds = time.perf_counter() - t0
            final = self.evaluate(decoder, head, val) if val else {}
        self.encoder.freeze()
        stats["held_out_subjects"] = sorted(f"{d}:{s}" for d, s in held)
        return PretrainResult(self.encoder, history, done, total, seconds, stats, final,
                              history[0]["recon_loss"] if history else float("nan"),
                              history[-1]["recon_loss"] if history else float("nan"))


# -- saving and the one-call entry point ------------------------------------------------------------
def save_pretrained(result: PretrainResult, config: PretrainConfig, out_dir: str | Path, *,
                    data_used: dict, command: str = "") -> Path:
    """Write ``<name>.safetensors`` (adapter weights + metadata) and ``pretrain_<name>.json`` (curves)."""
    import platform

    out = Path(out_dir)
    name = config.encoder
    objective = ("masked reconstruction (MSE on masked samples) + physiology regression from pooled tokens "
                 f"({', '.join(TARGET_NAMES[name])}{' per channel' if name == 'eeg' else ''})")
    meta = {
        "encoder": f"builtin:{name}", "objective": objective,
        "data": "; ".join(f"{k}: {v}" for k, v in data_used.items()),
        "seed": str(config.seed), "steps": str(result.steps), "planned_steps": str(result.planned_steps),
        "minutes": f"{result.seconds / 60:.2f}", "batch_size": str(config.batch_size), "lr": str(config.lr),
        "mask_ratio": str(config.mask_ratio), "physio_weight": str(config.physio_weight),
        "torch": torch.__version__, "hardware": f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s)",
        "command": command,
    }
    state = {k: v.detach().cpu().contiguous() for k, v in result.encoder.state_dict().items()}
    path = atomic_save_safetensors(out / f"{name}.safetensors", state, metadata=meta)
    atomic_write_json(out / f"pretrain_{name}.json", {
        "config": asdict(config), "metadata": meta, "data": data_used, "history": result.history,
        "target_stats": result.target_stats, "final_val": result.final_val,
        "first_loss": result.first_loss, "last_loss": result.last_loss, "seconds": result.seconds,
    })
    return path


def run_pretraining(name: str, *, data_root: str | Path | None, out_dir: str | Path, minutes: float = 30.0,
                    steps: int | None = None, seed: int = 0, device=None, command: str = "",
                    include_simulated: bool = True, on_progress: ProgressFn | None = None,
                    **overrides) -> PretrainResult:
    """Build the random ``builtin:<name>``, pre-train it on the development data, save weights and curves.

    ``overrides`` are further ``PretrainConfig`` fields (``lr``, ``batch_size``, ``mask_span_s``...).
    """
    from ..models.builtin import build_builtin
    from .corpus import build_corpus

    config = PretrainConfig(encoder=name, minutes=minutes, steps=steps, seed=seed, **overrides)
    corpus = build_corpus(name, data_root, seed=seed, include_simulated=include_simulated)
    used = corpus.describe()
    encoder = build_builtin(name, ch_names=corpus.ch_names or None, seed=seed)
    log.info("pre-training builtin:%s on %s", name, used)
    result = Pretrainer(encoder, config, device=device).fit(corpus, on_progress=on_progress)
    save_pretrained(result, config, out_dir, data_used=used, command=command)
    return result


__all__ = ["PretrainConfig", "PretrainResult", "Pretrainer", "TokenDecoder", "span_mask", "patch_mask",
           "held_out_subjects", "save_pretrained", "run_pretraining", "Signal"]
