"""The prototype bridge: config, network and the composed new-modality predictor."""

from .composed import BridgedModel, new_features
from .config import CONSTRAINTS, LOSSES, PROTOTYPE_INITS, BridgeConfig
from .network import Bridge

__all__ = ["Bridge", "BridgeConfig", "BridgedModel", "CONSTRAINTS", "LOSSES", "PROTOTYPE_INITS", "new_features"]
