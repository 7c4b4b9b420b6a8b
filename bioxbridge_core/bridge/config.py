"""BridgeConfig: every setting of one bridge training, checked once.

The allowed values live in ``CONSTRAINTS`` (a table, as scikit-learn does),
so validation, the UI and the tests read the same source.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from .._check import check_option, check_range
from ..errors import ConfigError

PROTOTYPE_INITS = ("tokens", "normal")
LOSSES = ("cosine", "mse", "l1")
TARGET_NORMS = ("standardise", "none")
LOSS_ON = ("pooled", "tokens")
CALIBRATIONS = ("none", "subject")
SELECT_ON = ("loss", "agreement")
TARGET_DTYPES = ("float32", "float16")

#: field -> constraint: ("int"|"float", low, high, low_inclusive) or ("option", allowed)
CONSTRAINTS: dict[str, tuple] = {
    "rank": ("int", 1, 4096, True),
    "n_prototypes": ("int", 1, 100_000, True),
    "prototype_init": ("option", PROTOTYPE_INITS),
    "loss": ("option", LOSSES),
    "target_norm": ("option", TARGET_NORMS),
    "loss_on": ("option", LOSS_ON),
    "calibration": ("option", CALIBRATIONS),
    "lr": ("float", 0.0, 1.0, False),
    "epochs": ("int", 1, 100_000, True),
    "batch_size": ("int", 1, 1_000_000, True),
    "seed": ("int", 0, 2**32 - 1, True),
    "val_fraction": ("float", 0.0, 0.9, True),
    "feature_batch_size": ("int", 1, 1_000_000, True),
    "patience": ("int", 0, 100_000, True),
    "max_params_fraction": ("float", 0.0, 1.0, True),
    "select_on": ("option", SELECT_ON),
    "target_dtype": ("option", TARGET_DTYPES),
}


@dataclass
class BridgeConfig:
    """Settings of the prototype bridge and its training (METHOD.md steps 3-4).

    Parameters
    ----------
    rank : r, the rank of the low-rank map ``B @ A``.
    n_prototypes : Np, prototype vectors in the old layer's space.
    prototype_init : ``"tokens"`` (Np real old-layer tokens from the paired data) or ``"normal"`` (N(0, 1)).
    loss : ``"cosine"`` (1 - cos at the old model's last layer), ``"mse"`` or ``"l1"``.
    target_norm : ``"standardise"`` (default) compares prediction and target after z-scoring every
        flattened last-layer feature with the mean and std of the training pairs' targets;
        ``"none"`` compares raw outputs as the paper does. Why: in small encoders most of the
        last-layer output is the same for every window (two different windows of the demo have
        cosine ~0.73), so the raw cosine is minimised by predicting that common part and the
        bridge collapses to one class; standardising weights the between-window variation that
        the task head reads (measured in bench/RESULTS.md). Needs no labels.
    loss_on : ``"pooled"`` (default) compares the last-layer output mean-pooled over tokens -- the
        vector the old task head reads; ``"tokens"`` compares every token (the paper's flattened
        loss). See ``bridge.objective`` for why pooled is the default (measured on the demo).
    calibration : ``"none"`` or ``"subject"``: per-subject calibration of the bridge input and of
        the pooled target (``bridge.objective``, ``models.subject_norm``). The pipeline sets it
        from ``PipelineConfig.calibration``.
    lr : Adam learning rate (constant). Default 3e-3 with batch 32: at CPU scale (tens to thousands
        of pairs, tens of epochs) 1e-4 under-trains; the paper's 1e-6...1e-4 was for GPU-scale data and
        50-100 epochs. On the 864-window demo (180 s per class, as it was then) with the pooled loss,
        batch 32 / lr 3e-3 reached its best pair-val loss at epoch 15 (1.000 BAcc) where batch 16 /
        lr 1e-3 still improved at epoch 50 (0.926); batch 64 / lr 1e-2 never left its zero start.
        Overfitting is caught by the best-epoch rule on pair-val and early stopping (bench/RESULTS.md).
    epochs : at most this many passes over the training pairs.
    patience : stop when the pair-val loss has not improved for this many epochs (0 = never stop
        early); the best epoch's weights are kept either way.
    select_on : what picks the best epoch (and drives early stopping) on pair-val: ``"loss"`` (the
        bridge loss, as METHOD says) or ``"agreement"`` (the share of pair-val windows where the bridged
        prediction equals the old model's own on the real old window -- label-free; the loss breaks
        ties; needs the old head, else the loss is used).
    max_params_fraction : keep the bridge at most this share of the new encoder's parameters (what
        KD would train) by lowering ``n_prototypes`` (never below 8) once the positions are known
        (``bridge.config.fit_budget``); 0 = use ``n_prototypes`` as given. The paper's bridges are
        1-12 % of KD's; B grows with the old layer's tokens (e.g. 190 for 19-channel EEG).
    batch_size : pairs per step.
    seed : seeds initialisation, prototype sampling, the pair-val split and batch order.
    val_fraction : share of subjects (or windows, with one subject) held out to pick the best epoch.
    feature_batch_size : windows per forward pass when caching the frozen features.
    target_dtype : storage of the cached last-layer targets on disk: ``"float32"`` (default) or
        ``"float16"`` (half the disk and reads; the loss still runs in float32; the difference it
        makes is measured in bench/RESULTS.md).
    """

    rank: int = 8
    n_prototypes: int = 50
    prototype_init: str = "tokens"
    loss: str = "cosine"
    target_norm: str = "standardise"
    loss_on: str = "pooled"
    calibration: str = "none"
    lr: float = 3e-3
    epochs: int = 50
    patience: int = 10
    max_params_fraction: float = 0.04
    select_on: str = "loss"
    batch_size: int = 32
    seed: int = 0
    val_fraction: float = 0.2
    feature_batch_size: int = 64
    target_dtype: str = "float32"

    def __post_init__(self) -> None:
        for name, rule in CONSTRAINTS.items():
            value = getattr(self, name)
            if rule[0] == "option":
                check_option(name, value, rule[1], owner="BridgeConfig")
            else:
                _, low, high, low_inclusive = rule
                check_range(name, value, low=low, high=high, low_inclusive=low_inclusive,
                            owner="BridgeConfig", integer=rule[0] == "int")
        self.lr = float(self.lr)
        self.val_fraction = float(self.val_fraction)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BridgeConfig":
        """Rebuild from ``to_dict`` output; unknown keys are an error (names them)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"BridgeConfig does not know the setting(s) {unknown}; known: {sorted(known)}.")
        return cls(**d)


def fit_budget(config: BridgeConfig, *, d_new: int, n_tokens_old: int, d_old: int, new_params: int) -> BridgeConfig:
    """``config`` with ``n_prototypes`` lowered until the bridge has at most ``max_params_fraction`` x
    ``new_params`` trainable parameters (``r*d_new + r*Np*N_old + Np*d_old``), never below 8 prototypes.

    Returns ``config`` itself when it already fits or the budget is off (0).
    """
    from dataclasses import replace

    if config.max_params_fraction <= 0:
        return config
    budget = config.max_params_fraction * new_params
    r = config.rank

    def count(n_p: int) -> int:
        return r * d_new + r * n_p * n_tokens_old + n_p * d_old

    if count(config.n_prototypes) <= budget:
        return config
    n_p = int((budget - r * d_new) // max(r * n_tokens_old + d_old, 1))
    return replace(config, n_prototypes=max(8, min(config.n_prototypes, n_p)))
