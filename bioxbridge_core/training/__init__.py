"""Bridge training: cached frozen features, the trainer, checkpoints and stop checks."""

from .cache import BridgeCache, compute_cache
from .callbacks import StopCheck, Throttled
from .split import pair_val_split
from .trainer import BridgeTrainer, per_sample_loss, save_bridge

__all__ = ["BridgeCache", "BridgeTrainer", "StopCheck", "Throttled", "compute_cache", "pair_val_split",
           "per_sample_loss", "save_bridge"]
