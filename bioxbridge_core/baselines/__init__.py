"""Baselines to compare the bridge with (KD here; oracle and chance live in the pipeline)."""

from .kd import KDStudent

__all__ = ["KDStudent"]
